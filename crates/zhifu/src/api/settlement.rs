//! Settlement over HTTP (SPEC §5): the operator binds a merchant's payout card and can run a
//! settlement by hand; merchants list theirs. The daily run itself is the server's
//! (`serve::Reconciler`), after `--settlement-hour` China Standard Time.

use super::error::ApiError;
use super::merchant_signing::SignedBy;
use super::operator::require_operator;
use super::time::rfc3339_from_ms;
use crate::serve::AppState;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use zhifu_domain::acquiring::merchants::{MerchantError, MerchantId};
use zhifu_domain::acquiring::settlement::{self, SettlementError};
use zhifu_domain::bank::Holder;
use zhifu_domain::wallet::identity::{CardNumber, IdNumber, Phone};
use zhifu_store::SettlementRow;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardRequest {
    card_number: String,
    /// The card holder's (the merchant's legal representative's) name, ID number and phone:
    /// the bank's four-element check.
    name: String,
    id_number: String,
    phone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The cut-off day, `YYYY-MM-DD` (China Standard Time): pays what was settled before its
    /// 00:00. Today when absent.
    date: Option<String>,
}

pub fn settlement_json(row: &SettlementRow) -> Value {
    json!({
        "merchant_id": row.merchant_id,
        "cutoff_at": rfc3339_from_ms(row.cutoff_ms),
        "amount_minor": row.amount_minor,
        "currency": "CNY",
        "state": row.state,
        "created_at": rfc3339_from_ms(row.created_ms),
        "finished_at": row.finished_ms.map(rfc3339_from_ms),
    })
}

fn settlement_error(e: SettlementError) -> ApiError {
    match e {
        SettlementError::Merchant(e) => ApiError::Merchant(e),
        SettlementError::Bank(e) => {
            ApiError::People(zhifu_domain::wallet::people::PeopleError::Bank(e))
        }
        SettlementError::Store(e) => ApiError::Merchant(MerchantError::Store(e)),
        SettlementError::Engine(_) | SettlementError::Ledger(_) => ApiError::Internal,
    }
}

/// `PUT /api/v1/operator/merchants/{id}/settlement-card`: binds the merchant's payout card.
pub async fn set_card(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<CardRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    require_operator(&state, &headers)?;
    let Json(request) = body?;
    let merchant_id = MerchantId::parse(&id).ok_or(MerchantError::MerchantNotFound)?;
    let card = CardNumber::parse(&request.card_number)?;
    let id_number = IdNumber::parse(&request.id_number)?;
    let phone = Phone::parse(&request.phone)?;
    let bank = state.bank();
    let name = request.name;
    let card = state
        .with_people(move |people| {
            let holder = Holder {
                name: &name,
                id_number: &id_number,
                phone: &phone,
            };
            settlement::set_card(people, bank.as_ref(), merchant_id, &card, &holder)
        })
        .await?
        .map_err(settlement_error)?;
    Ok(Json(json!({
        "merchant_id": merchant_id.get(),
        "bank": card.bank,
        "last_four": card.last_four,
    })))
}

/// `POST /api/v1/operator/settlements`: runs the settlement of a cut-off now (it is
/// idempotent: a merchant's settlement of a cut-off is made once) and reports it.
pub async fn run(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<RunRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    require_operator(&state, &headers)?;
    let Json(request) = body?;
    let now_ms = state.now_ms();
    let cutoff_ms = match request.date.as_deref() {
        None => zhifu_domain::time::shanghai_day_start_ms(now_ms),
        Some(date) => super::bills::day_start_ms(date).ok_or(ApiError::QueryInvalid)?,
    };
    if cutoff_ms > now_ms {
        return Err(ApiError::QueryInvalid);
    }
    let report = run_now(&state, cutoff_ms, now_ms).await?;
    let total_minor: u64 = report
        .settlements
        .iter()
        .filter(|row| row.state == settlement::SUCCESS)
        .map(|row| row.amount_minor)
        .sum();
    Ok(Json(json!({
        "cutoff_at": rfc3339_from_ms(cutoff_ms),
        "settlements": report.settlements.iter().map(settlement_json).collect::<Vec<_>>(),
        "paid_minor": total_minor,
        "nothing_due": report.nothing_due,
        "earlier_resolved": report.resolved,
    })))
}

/// One run, on the blocking pool with the ledger's read connection.
pub async fn run_now(
    state: &AppState,
    cutoff_ms: i64,
    now_ms: i64,
) -> Result<settlement::Report, ApiError> {
    let (people, engine, bank) = (state.people_blocking(), state.engine_shared(), state.bank());
    state
        .with_reader(move |ledger| {
            settlement::run(&people, &engine, ledger, bank.as_ref(), cutoff_ms, now_ms)
        })
        .await?
        .map_err(settlement_error)
}

/// `GET /merchant/v1/settlements`: the merchant's last 50 settlements, newest first.
pub async fn of_merchant(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
) -> Result<Json<Value>, ApiError> {
    let (rows, card) = state
        .with_people(move |people| {
            Ok::<_, zhifu_store::StoreError>((
                settlement::of_merchant(people, merchant_id, 50)?,
                settlement::card(people, merchant_id)?,
            ))
        })
        .await?
        .map_err(|e| ApiError::Merchant(MerchantError::Store(e)))?;
    Ok(Json(json!({
        "card": card.map(|card| json!({"bank": card.bank, "last_four": card.last_four})),
        "settlements": rows.iter().map(settlement_json).collect::<Vec<_>>(),
    })))
}

//! The person's balance and statement.

use super::error::ApiError;
use super::people::session_person;
use super::time::rfc3339_from_ms;
use crate::serve::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use zhifu_domain::wallet::chart::{self, wallet_account_id};
use zhifu_ledger::{BalanceRule, Currency, Money};
use zhifu_store::Side;

/// Entries per statement page unless the caller asks for fewer or more.
const PAGE_LEN_DEFAULT: usize = 20;
const PAGE_LEN_MAX: usize = 100;

/// `GET /api/v1/wallet`
pub async fn balance(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let person = session_person(&state, &headers).await?;
    let account = wallet_account(&state, person.user_id).await?;
    let balance_minor = account.balances.posted_net_minor();
    let available_minor = account.balances.available_minor(BalanceRule::NO_OVERDRAFT);
    Ok(Json(json!({
        "currency": account.currency.code(),
        "balance_minor": balance_minor,
        "available_minor": available_minor,
        "balance": display(balance_minor, account.currency),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// The `next` of the previous page.
    before: Option<String>,
    limit: Option<usize>,
    /// Only entries of this kind: `top_up`, `withdrawal`, `withdrawal_fee`, `transfer`,
    /// `red_packet`, `code_payment`, `merchant_payment`, `merchant_refund`.
    kind: Option<String>,
    /// Only money in (`in`) or out (`out`).
    direction: Option<String>,
}

/// The statement's kinds, by the ledger's business code.
const KINDS: [(&str, u16); 8] = [
    ("top_up", chart::CODE_TOP_UP),
    ("withdrawal", chart::CODE_WITHDRAWAL),
    ("withdrawal_fee", chart::CODE_WITHDRAWAL_FEE),
    ("transfer", chart::CODE_P2P),
    ("red_packet", chart::CODE_RED_PACKET),
    ("code_payment", chart::CODE_RECEIVE_CODE),
    ("merchant_payment", chart::CODE_MERCHANT_PAYMENT),
    ("merchant_refund", chart::CODE_MERCHANT_REFUND),
];

/// What the entry did to the money: `posted` (moved), `held` (set aside, still the person's),
/// `released` (a hold paid out), `returned` (a hold given back, by a void or its timeout). A
/// withdrawal is a hold and then its release: two entries, one movement of money.
fn movement(kind: zhifu_ledger::TransferKind) -> &'static str {
    use zhifu_ledger::TransferKind;
    match kind {
        TransferKind::Posted => "posted",
        TransferKind::Pending => "held",
        TransferKind::PostPending => "released",
        TransferKind::VoidPending | TransferKind::Expiry => "returned",
    }
}

/// Entries a filtered page may look through before it answers with what it found and a
/// cursor to go on from: bounds the work of one request whatever the filter.
const FILTER_SCAN_MAX: usize = 5_000;

/// Which entries a listing keeps.
#[derive(Clone, Copy, Default)]
struct StatementFilter {
    code: Option<u16>,
    side: Option<Side>,
}

impl StatementFilter {
    fn parse(kind: Option<&str>, direction: Option<&str>) -> Result<StatementFilter, ApiError> {
        let code = match kind {
            None => None,
            Some(kind) => Some(
                KINDS
                    .iter()
                    .find(|(name, _)| *name == kind)
                    .map(|(_, code)| *code)
                    .ok_or(ApiError::QueryInvalid)?,
            ),
        };
        let side = match direction {
            None => None,
            Some("in") => Some(Side::Credit),
            Some("out") => Some(Side::Debit),
            Some(_) => return Err(ApiError::QueryInvalid),
        };
        Ok(StatementFilter { code, side })
    }

    fn keeps(&self, entry: &zhifu_store::StatementEntry) -> bool {
        self.code.is_none_or(|code| entry.code == code)
            && self.side.is_none_or(|side| entry.side == side)
    }

    fn is_all(&self) -> bool {
        self.code.is_none() && self.side.is_none()
    }
}

/// `GET /api/v1/wallet/statement?before=…&limit=…&kind=…&direction=…`: newest first.
pub async fn statement(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StatementQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::QueryInvalid)?;
    let filter = StatementFilter::parse(query.kind.as_deref(), query.direction.as_deref())?;
    let person = session_person(&state, &headers).await?;
    let before = match query.before.as_deref() {
        None => None,
        Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| ApiError::QueryInvalid)?),
    };
    let limit = query
        .limit
        .unwrap_or(PAGE_LEN_DEFAULT)
        .clamp(1, PAGE_LEN_MAX);
    let (entries, next) = filtered_page(&state, person.user_id, before, limit, filter).await?;
    let entries: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let signed_minor = match entry.side {
                Side::Credit => i128::from(entry.amount_minor),
                Side::Debit => -i128::from(entry.amount_minor),
            };
            json!({
                "transfer_id": entry.transfer_id.get().to_string(),
                "at": rfc3339_from_ms(entry.timestamp_ns / 1_000_000),
                "amount_minor": signed_minor,
                "balance_after_minor": entry.balances_after.posted_net_minor(),
                "code": entry.code,
                "kind": KINDS.iter().find(|(_, code)| *code == entry.code).map(|(name, _)| *name),
                "movement": movement(entry.kind),
                "reference": entry.reference.as_ref().map(|r| r.as_str()),
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries, "next": next })))
}

/// Up to `limit` entries the filter keeps, and the cursor of the next page: the last entry
/// looked at, which may be past the last one kept when the scan reached its bound.
async fn filtered_page(
    state: &AppState,
    user_id: i64,
    mut before: Option<i64>,
    limit: usize,
    filter: StatementFilter,
) -> Result<(Vec<zhifu_store::StatementEntry>, Option<String>), ApiError> {
    let mut kept = Vec::with_capacity(limit);
    let mut scanned = 0;
    loop {
        let page_len = if filter.is_all() { limit } else { PAGE_LEN_MAX };
        let page = statement_page(state, user_id, before, page_len).await?;
        let exhausted = page.len() < page_len;
        for entry in page {
            scanned += 1;
            before = Some(entry.timestamp_ns);
            if filter.keeps(&entry) {
                kept.push(entry);
                if kept.len() == limit {
                    return Ok((kept, before.map(|b| b.to_string())));
                }
            }
        }
        if exhausted {
            return Ok((kept, None));
        }
        if scanned >= FILTER_SCAN_MAX {
            return Ok((kept, before.map(|b| b.to_string())));
        }
    }
}

/// The person's wallet account with its balances.
pub async fn wallet_account(
    state: &AppState,
    user_id: i64,
) -> Result<zhifu_ledger::Account, ApiError> {
    let id = wallet_account_id(user_id);
    state
        .with_reader(move |reader| zhifu_store::balance(reader, id))
        .await?
        .map_err(|_| ApiError::Internal)?
        .ok_or(ApiError::Internal)
}

/// One page of the person's statement, newest first.
pub async fn statement_page(
    state: &AppState,
    user_id: i64,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<zhifu_store::StatementEntry>, ApiError> {
    let id = wallet_account_id(user_id);
    state
        .with_reader(move |reader| zhifu_store::statement(reader, id, before, limit))
        .await?
        .map_err(|_| ApiError::Internal)
}

/// The other side of a person's entry, as the person may see it.
pub enum Counterparty {
    /// Another person, by masked phone.
    Person(String),
    /// A merchant, by its name.
    Merchant(String),
    BankCard,
    Fee,
    RedPacket,
    Institution,
}

/// One of the person's entries by transfer id, with its other side; someone else's transfer
/// does not exist, as far as this person can tell.
pub async fn receipt_entry(
    state: &AppState,
    user_id: i64,
    transfer_id: &str,
) -> Result<(zhifu_store::StatementEntry, Counterparty), ApiError> {
    use zhifu_domain::wallet::chart::{Owner, owner};
    let id = transfer_id
        .parse::<u128>()
        .ok()
        .and_then(zhifu_ledger::TransferId::new)
        .ok_or(ApiError::NotFound)?;
    let transfer = state
        .with_reader(move |reader| reader.transfer(id))
        .await?
        .map_err(|_| ApiError::Internal)?
        .ok_or(ApiError::NotFound)?;
    let wallet = wallet_account_id(user_id);
    if transfer.debit_account_id != wallet && transfer.credit_account_id != wallet {
        return Err(ApiError::NotFound);
    }
    let entry = zhifu_store::StatementEntry::from_transfer(wallet, transfer);
    let counterparty = match owner(entry.counterparty_account_id) {
        Owner::Person(other) => Counterparty::Person(
            state
                .with_people(move |people| people.phone_masked(other))
                .await??
                .unwrap_or_else(|| "?".into()),
        ),
        Owner::Merchant(id) => {
            use zhifu_domain::acquiring::merchants::{self, MerchantId};
            let id = MerchantId::new(id).ok_or(ApiError::Internal)?;
            Counterparty::Merchant(
                state
                    .with_people(move |people| merchants::merchant(people, id))
                    .await??
                    .name,
            )
        }
        Owner::BankSettlement => Counterparty::BankCard,
        Owner::FeeIncome => Counterparty::Fee,
        Owner::RedPacketHold => Counterparty::RedPacket,
        Owner::Other => Counterparty::Institution,
    };
    Ok((entry, counterparty))
}

/// "12.34" for people; the API's numbers are the minor units.
pub fn display(amount_minor: i128, currency: Currency) -> String {
    match i64::try_from(amount_minor) {
        Ok(minor) => Money::new(minor, currency).to_string(),
        Err(_) => amount_minor.to_string(),
    }
}

/// Entries in one export at most (pages of the statement, newest first).
const EXPORT_ENTRIES_MAX: usize = 10_000;

/// The person's statement as CSV (RFC 4180), newest first, at most [`EXPORT_ENTRIES_MAX`]
/// entries: `transfer_id,time,code,amount_minor,balance_after_minor,reference`.
pub async fn statement_csv(state: &AppState, user_id: i64) -> Result<String, ApiError> {
    let id = wallet_account_id(user_id);
    let pages_max = EXPORT_ENTRIES_MAX / zhifu_store::PAGE_LEN_MAX;
    let entries = state
        .with_reader(move |reader| zhifu_store::statement_all(reader, id, pages_max))
        .await?
        .map_err(|_| ApiError::Internal)?;
    let mut csv =
        String::from("transfer_id,time,code,amount_minor,balance_after_minor,reference\r\n");
    for entry in &entries {
        let signed_minor = match entry.side {
            Side::Credit => i128::from(entry.amount_minor),
            Side::Debit => -i128::from(entry.amount_minor),
        };
        // A reference may hold any visible ASCII, commas and quotes included: quoted.
        let reference = entry.reference.as_ref().map(|r| r.as_str()).unwrap_or("");
        csv.push_str(&format!(
            "{},{},{},{},{},\"{}\"\r\n",
            entry.transfer_id.get(),
            rfc3339_from_ms(entry.timestamp_ns / 1_000_000),
            entry.code,
            signed_minor,
            entry.balances_after.posted_net_minor(),
            reference.replace('"', "\"\""),
        ));
    }
    Ok(csv)
}

/// `GET /api/v1/wallet/statement.csv`
pub async fn statement_export(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let person = session_person(&state, &headers).await?;
    let csv = statement_csv(&state, person.user_id).await?;
    Ok(csv_response(csv))
}

pub fn csv_response(csv: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"zhifu-statement.csv\"",
            ),
        ],
        csv,
    )
        .into_response()
}

/// `GET /api/v1/receipts/{transfer_id}`: one entry of the person's statement, with its other
/// side named as the person may see it (a masked phone, "bank card", "fee"...).
pub async fn receipt(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(transfer_id): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    let person = session_person(&state, &headers).await?;
    let (entry, counterparty) = receipt_entry(&state, person.user_id, &transfer_id).await?;
    let counterparty = match counterparty {
        Counterparty::Person(phone_masked) => phone_masked,
        Counterparty::Merchant(name) => name,
        Counterparty::BankCard => "bank card".into(),
        Counterparty::Fee => "fee".into(),
        Counterparty::RedPacket => "red packet".into(),
        Counterparty::Institution => "zhifu".into(),
    };
    let signed_minor = match entry.side {
        Side::Credit => i128::from(entry.amount_minor),
        Side::Debit => -i128::from(entry.amount_minor),
    };
    Ok(Json(json!({
        "transfer_id": entry.transfer_id.get().to_string(),
        "at": rfc3339_from_ms(entry.timestamp_ns / 1_000_000),
        "code": entry.code,
        "amount_minor": signed_minor,
        "counterparty": counterparty,
        "balance_after_minor": entry.balances_after.posted_net_minor(),
        "reference": entry.reference.as_ref().map(|r| r.as_str()),
    })))
}

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
use zhifu_domain::wallet::chart::wallet_account_id;
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
}

/// `GET /api/v1/wallet/statement?before=…&limit=…`: newest first.
pub async fn statement(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StatementQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::QueryInvalid)?;
    let person = session_person(&state, &headers).await?;
    let before = match query.before.as_deref() {
        None => None,
        Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| ApiError::QueryInvalid)?),
    };
    let limit = query
        .limit
        .unwrap_or(PAGE_LEN_DEFAULT)
        .clamp(1, PAGE_LEN_MAX);
    let entries = statement_page(&state, person.user_id, before, limit).await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.timestamp_ns.to_string()))
        .flatten();
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
                "reference": entry.reference.as_ref().map(|r| r.as_str()),
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries, "next": next })))
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
    use zhifu_domain::wallet::chart::{Owner, owner};
    let person = session_person(&state, &headers).await?;
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
    let wallet = wallet_account_id(person.user_id);
    // Someone else's transfer does not exist, as far as this person can tell.
    if transfer.debit_account_id != wallet && transfer.credit_account_id != wallet {
        return Err(ApiError::NotFound);
    }
    let entry = zhifu_store::StatementEntry::from_transfer(wallet, transfer);
    let counterparty = match owner(entry.counterparty_account_id) {
        Owner::Person(user_id) => state
            .with_people(move |people| people.phone_masked(user_id))
            .await??
            .unwrap_or_else(|| "?".into()),
        Owner::BankSettlement => "bank card".into(),
        Owner::FeeIncome => "fee".into(),
        Owner::RedPacketHold => "red packet".into(),
        Owner::Other => "zhifu".into(),
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

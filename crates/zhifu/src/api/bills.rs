//! Daily bills (SPEC §5): the trade bill and the fund-flow bill of one merchant and one day,
//! cut at 00:00 China Standard Time, as CSV with amounts in yuan, a summary row, and the
//! SHA-256 of the CSV's bytes in the `Zhifu-Bill-SHA256` header (the body is signed besides,
//! like every merchant API response).
//!
//! `GET /merchant/v1/bills/trade?date=2026-12-01[&sub_merchant_id=7]`: every payment of the
//! day (`SUCCESS`) and every refund (`REFUND`), one row each, by time. A service provider names
//! one of its sub-merchants to fetch that one's bill.
//!
//! `GET /merchant/v1/bills/fund-flow?date=…`: every movement of the merchant's account that
//! day: payments in, fees out, refunds out, fees given back in; the summary row has the totals
//! and the net. Payers appear by the merchant's pseudonym for them, never otherwise.

use super::error::ApiError;
use super::merchant_signing::SignedBy;
use crate::serve::AppState;
use axum::extract::{Extension, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::Digest;
use zhifu_domain::acquiring::merchants::{self, MerchantError, MerchantId};
use zhifu_domain::acquiring::orders::{OrderError, Orders};
use zhifu_ledger::{Currency, Money};
use zhifu_store::{OrderRow, RefundRow};

const DAY_MS: i64 = 86_400_000;
/// Rows read per bill at most (a very busy shop's day); past it the bill says it is cut.
const BILL_ROWS_MAX: usize = 200_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillQuery {
    /// `YYYY-MM-DD`, China Standard Time.
    date: String,
    sub_merchant_id: Option<i64>,
}

/// The first millisecond of a Shanghai calendar day written `YYYY-MM-DD`.
pub fn day_start_ms(date: &str) -> Option<i64> {
    let bytes = date.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i64 = date[0..4].parse().ok()?;
    let month: u32 = date[5..7].parse().ok()?;
    let day: u32 = date[8..10].parse().ok()?;
    let days = zhifu_domain::time::days_from_civil(year, month, day);
    // Round trip: 2026-02-30 is not a date.
    (zhifu_domain::time::civil_from_days(days) == (year, month, day))
        .then_some(days * DAY_MS - 8 * 3_600_000)
}

fn yuan(minor: u64) -> String {
    Money {
        amount_minor: i64::try_from(minor).unwrap_or(i64::MAX),
        currency: Currency::CNY,
    }
    .to_string()
}

/// Quotes a text field: descriptions may hold commas and quotes; a leading `=`, `+`, `-` or
/// `@` is prefixed with `'` so that a spreadsheet does not run it as a formula.
fn text_field(text: &str) -> String {
    let text = match text.starts_with(['=', '+', '-', '@']) {
        true => format!("'{text}"),
        false => text.to_owned(),
    };
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Whose bill: the caller's, or a sub-merchant's of the calling provider.
async fn bill_merchant(
    state: &AppState,
    caller: MerchantId,
    sub_merchant_id: Option<i64>,
) -> Result<MerchantId, ApiError> {
    let Some(sub) = sub_merchant_id else {
        return Ok(caller);
    };
    let sub = MerchantId::new(sub).ok_or(MerchantError::MerchantNotFound)?;
    let merchant = state
        .with_people(move |people| merchants::merchant(people, sub))
        .await??;
    match merchant.service_provider_id == Some(caller) {
        true => Ok(sub),
        // Another provider's sub-merchant is as unknown to the caller as a missing one.
        false => Err(MerchantError::MerchantNotFound.into()),
    }
}

/// The day's paid orders and refunds of a merchant, by id.
async fn day_rows(
    state: &AppState,
    merchant_id: MerchantId,
    from_ms: i64,
) -> Result<(Vec<OrderRow>, Vec<(RefundRow, OrderRow)>, bool), ApiError> {
    let orders = state.orders().clone();
    let read = state
        .with_people(move |people| -> Result<_, OrderError> {
            let day = (from_ms, from_ms + DAY_MS);
            let mut paid = Vec::new();
            let mut after = 0;
            while paid.len() < BILL_ROWS_MAX {
                let page = orders.paid_between(
                    people,
                    merchant_id,
                    day,
                    after,
                    zhifu_store::PAGE_LEN_MAX,
                )?;
                let Some(last) = page.last() else { break };
                after = last.id;
                paid.extend(page);
            }
            let mut refunds = Vec::new();
            let mut after = 0;
            while refunds.len() < BILL_ROWS_MAX {
                let page = orders.refunds_between(
                    people,
                    merchant_id,
                    day,
                    after,
                    zhifu_store::PAGE_LEN_MAX,
                )?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for refund in page {
                    let order = orders.order(people, refund.order_id)?;
                    refunds.push((refund, order));
                }
            }
            let cut = paid.len() >= BILL_ROWS_MAX || refunds.len() >= BILL_ROWS_MAX;
            Ok((paid, refunds, cut))
        })
        .await?;
    Ok(read?)
}

fn csv_response(csv: String) -> Response {
    let digest: String = sha2::Sha256::digest(csv.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::HeaderName::from_static("zhifu-bill-sha256"), digest),
        ],
        csv,
    )
        .into_response()
}

fn time_text(ms: i64) -> String {
    // Local time, as the bill's day is: `2026-12-01 09:30:00`.
    let local_ms = ms + 8 * 3_600_000;
    let (year, month, day) = zhifu_domain::time::civil_from_days(local_ms.div_euclid(DAY_MS));
    let of_day = local_ms.rem_euclid(DAY_MS);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1_000 % 60
    )
}

/// `GET /merchant/v1/bills/trade`.
pub async fn trade_bill(
    State(state): State<AppState>,
    Extension(SignedBy(caller)): Extension<SignedBy>,
    query: Result<Query<BillQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::QueryInvalid)?;
    let merchant_id = bill_merchant(&state, caller, query.sub_merchant_id).await?;
    trade_bill_of(&state, merchant_id, &query.date).await
}

/// The trade bill of `merchant_id` for `date` (`YYYY-MM-DD`), as the API and the console
/// serve it.
pub async fn trade_bill_of(
    state: &AppState,
    merchant_id: MerchantId,
    date: &str,
) -> Result<Response, ApiError> {
    let from_ms = day_start_ms(date).ok_or(ApiError::QueryInvalid)?;
    let (paid, refunds, cut) = day_rows(state, merchant_id, from_ms).await?;
    Ok(csv_response(trade_csv(
        state.orders(),
        &paid,
        &refunds,
        cut,
    )))
}

fn trade_csv(
    orders: &Orders,
    paid: &[OrderRow],
    refunds: &[(RefundRow, OrderRow)],
    cut: bool,
) -> String {
    let mut rows: Vec<(i64, String)> = Vec::with_capacity(paid.len() + refunds.len());
    for order in paid {
        let paid_ms = order.paid_ms.expect("a paid order");
        rows.push((
            paid_ms,
            format!(
                "{},{},{},{},{},{},SUCCESS,{},{},,,,,{}\r\n",
                time_text(paid_ms),
                order.id,
                text_field(&order.out_trade_no),
                order.merchant_id,
                order
                    .payer_id
                    .map(|p| orders.payer_pseudonym(order.merchant_id, p))
                    .unwrap_or_default(),
                order.kind,
                yuan(order.amount_minor),
                yuan(order.fee_minor),
                text_field(&order.description),
            ),
        ));
    }
    for (refund, order) in refunds {
        let at = billed_ms(refund);
        rows.push((
            at,
            format!(
                "{},{},{},{},{},{},REFUND,0.00,0.00,{},{},{},{},{}\r\n",
                time_text(at),
                order.id,
                text_field(&order.out_trade_no),
                order.merchant_id,
                order
                    .payer_id
                    .map(|p| orders.payer_pseudonym(order.merchant_id, p))
                    .unwrap_or_default(),
                order.kind,
                refund.id,
                text_field(&refund.out_refund_no),
                yuan(refund.amount_minor),
                yuan(refund.fee_minor),
                text_field(&order.description),
            ),
        ));
    }
    rows.sort_by_key(|(ms, _)| *ms);
    let mut csv = String::from(
        "trade_time,transaction_id,out_trade_no,merchant_id,payer,trade_type,trade_state,\
         amount_yuan,fee_yuan,refund_id,out_refund_no,refund_amount_yuan,refund_fee_yuan,\
         description\r\n",
    );
    for (_, row) in &rows {
        csv.push_str(row);
    }
    let paid_minor: u64 = paid.iter().map(|o| o.amount_minor).sum();
    let fee_minor: u64 = paid.iter().map(|o| o.fee_minor).sum();
    let refund_minor: u64 = refunds.iter().map(|(r, _)| r.amount_minor).sum();
    let refund_fee_minor: u64 = refunds.iter().map(|(r, _)| r.fee_minor).sum();
    csv.push_str("total_trades,total_amount_yuan,total_refund_yuan,total_fee_yuan,complete\r\n");
    csv.push_str(&format!(
        "{},{},{},{},{}\r\n",
        paid.len(),
        yuan(paid_minor),
        yuan(refund_minor),
        yuan(fee_minor.saturating_sub(refund_fee_minor)),
        if cut { "no" } else { "yes" },
    ));
    csv
}

/// `GET /merchant/v1/bills/fund-flow`.
pub async fn fund_flow_bill(
    State(state): State<AppState>,
    Extension(SignedBy(caller)): Extension<SignedBy>,
    query: Result<Query<BillQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::QueryInvalid)?;
    let merchant_id = bill_merchant(&state, caller, query.sub_merchant_id).await?;
    fund_flow_bill_of(&state, merchant_id, &query.date).await
}

/// The fund-flow bill of `merchant_id` for `date`, as the API and the console serve it.
pub async fn fund_flow_bill_of(
    state: &AppState,
    merchant_id: MerchantId,
    date: &str,
) -> Result<Response, ApiError> {
    let from_ms = day_start_ms(date).ok_or(ApiError::QueryInvalid)?;
    let (paid, refunds, cut) = day_rows(state, merchant_id, from_ms).await?;
    // (time, kind, transaction id, reference, income, expense)
    let mut flows: Vec<(i64, &str, i64, String, u64, u64)> = Vec::new();
    for order in &paid {
        let at = order.paid_ms.expect("a paid order");
        flows.push((
            at,
            "payment",
            order.id,
            order.out_trade_no.clone(),
            order.amount_minor,
            0,
        ));
        if order.fee_minor > 0 {
            flows.push((
                at,
                "fee",
                order.id,
                order.out_trade_no.clone(),
                0,
                order.fee_minor,
            ));
        }
    }
    for (refund, order) in &refunds {
        let at = billed_ms(refund);
        flows.push((
            at,
            "refund",
            order.id,
            refund.out_refund_no.clone(),
            0,
            refund.amount_minor,
        ));
        if refund.fee_minor > 0 {
            flows.push((
                at,
                "fee_refund",
                order.id,
                refund.out_refund_no.clone(),
                refund.fee_minor,
                0,
            ));
        }
    }
    flows.sort_by_key(|flow| flow.0);
    let mut csv = String::from("time,kind,transaction_id,reference,income_yuan,expense_yuan\r\n");
    let (mut income, mut expense) = (0u64, 0u64);
    for (at, kind, id, reference, credit, debit) in &flows {
        income += credit;
        expense += debit;
        csv.push_str(&format!(
            "{},{kind},{id},{},{},{}\r\n",
            time_text(*at),
            text_field(reference),
            yuan(*credit),
            yuan(*debit)
        ));
    }
    let net = i128::from(income) - i128::from(expense);
    let net_text = match net < 0 {
        true => format!("-{}", yuan(net.unsigned_abs() as u64)),
        false => yuan(net as u64),
    };
    csv.push_str("total_flows,total_income_yuan,total_expense_yuan,net_yuan,complete\r\n");
    csv.push_str(&format!(
        "{},{},{},{net_text},{}\r\n",
        flows.len(),
        yuan(income),
        yuan(expense),
        if cut { "no" } else { "yes" },
    ));
    Ok(csv_response(csv))
}

/// A refund's time in the bills: when it succeeded. The bills read only refunds that did
/// (`refunds_between`), so the request's time is never used but keeps this total.
fn billed_ms(refund: &RefundRow) -> i64 {
    refund.success_ms().unwrap_or(refund.created_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_strictly_and_start_at_shanghai_midnight() {
        // 2026-12-01 00:00 +08:00 is 2026-11-30 16:00 UTC.
        let start = day_start_ms("2026-12-01").unwrap();
        assert_eq!(
            super::super::time::rfc3339_from_ms(start),
            "2026-11-30T16:00:00.000Z"
        );
        assert_eq!(time_text(start), "2026-12-01 00:00:00");
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-1-01",
            "20261201",
            "",
            "2026-12-01x",
        ] {
            assert_eq!(day_start_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_fields_are_quoted_and_defused() {
        assert_eq!(text_field("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(text_field("=SUM(A1)"), "\"'=SUM(A1)\"");
        assert_eq!(yuan(123_456), "1234.56");
        assert_eq!(yuan(5), "0.05");
    }
}

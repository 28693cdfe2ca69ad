//! The merchant console (SPEC §5): server-rendered pages under `/console` for the people of a
//! shop, no front-end build step.
//!
//! - `/console`: the dashboard: today's sales by hour and by channel as bar charts, refunds,
//!   the unsettled balance, repeat customers of the last 7 days (by the merchant's pseudonym).
//! - `/console/cashier`: type an amount, show the order's QR; its page refreshes itself until
//!   paid. Or type the digits of a consumer's pay code.
//! - `/console/orders`: orders of a day, filtered by state; an order's page refunds it.
//! - `/console/bills`, `/console/settlements`, `/console/developer` (keys, notify URL, the
//!   delivery log with resend).
//!
//! Access is by link: `POST /merchant/v1/console-links` (signed) or the operator's
//! `POST /api/v1/operator/merchants/{id}/console-link` gives a 5-minute link; opening it sets
//! a 12-hour session cookie (HttpOnly, SameSite=Lax, path `/console`). What a merchant sees of
//! payers is its pseudonym for them, as in the API.

use super::cookie;
use crate::api::error::ApiError;
use crate::api::time::rfc3339_from_ms;
use crate::api::wallet::display;
use crate::serve::AppState;
use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::HashMap;
use zhifu_domain::acquiring::console::{LINK_TTL_MS, SESSION_TTL_MS, TokenKind};
use zhifu_domain::acquiring::merchants::{self, Merchant, MerchantId};
use zhifu_domain::acquiring::notifications;
use zhifu_domain::acquiring::orders::{NewOrder, NewRefund, OrderError, OrderKind, shown_state};
use zhifu_domain::acquiring::settlement;
use zhifu_domain::wallet::limits::LimitPolicy;
use zhifu_ledger::Currency;
use zhifu_qr_image::{RenderOptions, render_svg};
use zhifu_store::OrderRow;

const CONSOLE_COOKIE: &str = "zhifu_console";
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Orders a page lists at most.
const LIST_LEN_MAX: usize = 200;
/// Paid orders the dashboard reads at most (7 days of a busy shop); past it, it says so.
const DASHBOARD_ROWS_MAX: usize = 50_000;
/// How often the cashier's order page reloads itself while the order is unpaid.
const CASHIER_REFRESH_S: u32 = 2;

/// The merchant whose console this is; without a session, the page says how to get one.
pub struct ConsoleMerchant(Merchant);

impl axum::extract::FromRequestParts<AppState> for ConsoleMerchant {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<ConsoleMerchant, Response> {
        let now_ms = state.now_ms();
        let merchant_id = cookie(&parts.headers, CONSOLE_COOKIE).and_then(|token| {
            state
                .console_tokens()
                .check(TokenKind::Session, &token, now_ms)
        });
        let Some(merchant_id) = merchant_id else {
            return Err(signed_out());
        };
        match state
            .with_people(move |people| merchants::merchant(people, merchant_id))
            .await
        {
            Ok(Ok(merchant)) => Ok(ConsoleMerchant(merchant)),
            _ => Err(signed_out()),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console_signed_out.html")]
struct SignedOutPage;

fn signed_out() -> Response {
    (axum::http::StatusCode::UNAUTHORIZED, SignedOutPage).into_response()
}

#[derive(Deserialize)]
pub struct LinkQuery {
    token: String,
}

/// `/console/login?token=…`: trades a console link for a session.
pub async fn log_in(State(state): State<AppState>, Query(query): Query<LinkQuery>) -> Response {
    let now_ms = state.now_ms();
    let Some(merchant_id) = state
        .console_tokens()
        .check(TokenKind::Link, &query.token, now_ms)
    else {
        return signed_out();
    };
    let session =
        state
            .console_tokens()
            .issue(TokenKind::Session, merchant_id, now_ms + SESSION_TTL_MS);
    let cookie = format!(
        "{CONSOLE_COOKIE}={session}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={}",
        SESSION_TTL_MS / 1000
    );
    let mut response = Redirect::to("/console").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /console/logout`.
pub async fn log_out() -> Response {
    let mut response = Redirect::to("/console").into_response();
    let expired = format!("{CONSOLE_COOKIE}=; Path=/console; HttpOnly; SameSite=Lax; Max-Age=0");
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&expired).expect("ASCII"),
    );
    response
}

/// A console link for the merchant, valid for 5 minutes.
pub fn link_for(state: &AppState, merchant_id: MerchantId) -> (String, i64) {
    let expires_ms = state.now_ms() + LINK_TTL_MS;
    let token = state
        .console_tokens()
        .issue(TokenKind::Link, merchant_id, expires_ms);
    (format!("/console/login?token={token}"), expires_ms)
}

fn yuan(minor: u64) -> String {
    display(i128::from(minor), Currency::CNY)
}

/// One bar of a chart: its label, value text and height in percent of the tallest.
pub struct Bar {
    label: String,
    value: String,
    height_pct: u32,
    x: u32,
}

fn bars(values: &[(String, u64)]) -> Vec<Bar> {
    let max = values.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    values
        .iter()
        .enumerate()
        .map(|(index, (label, value))| Bar {
            label: label.clone(),
            value: yuan(*value),
            height_pct: u32::try_from(value * 100 / max).unwrap_or(100),
            x: u32::try_from(index).unwrap_or(0),
        })
        .collect()
}

#[derive(Template, WebTemplate)]
#[template(path = "console_dashboard.html")]
struct DashboardPage {
    name: String,
    today: String,
    sales: String,
    orders_count: usize,
    refunds: String,
    balance: String,
    by_hour: Vec<Bar>,
    by_channel: Vec<Bar>,
    repeat_customers: Vec<(String, usize, String)>,
    settlement: String,
    cut: bool,
}

/// Today, China Standard Time: `YYYY-MM-DD` and its first millisecond.
fn today(now_ms: i64) -> (String, i64) {
    let start = zhifu_domain::time::shanghai_day_start_ms(now_ms);
    let (year, month, day) = zhifu_domain::time::civil_from_days((start + 8 * HOUR_MS) / DAY_MS);
    (format!("{year:04}-{month:02}-{day:02}"), start)
}

/// `/console`: the dashboard.
pub async fn dashboard(
    State(state): State<AppState>,
    ConsoleMerchant(merchant): ConsoleMerchant,
) -> Result<Response, ApiError> {
    let now_ms = state.now_ms();
    let (today_text, day_start) = today(now_ms);
    let (merchant_id, orders) = (merchant.id, state.orders().clone());
    let (week, refunds, last_settlement) = state
        .with_people(move |people| {
            let range = (day_start - 6 * DAY_MS, now_ms + 1);
            let mut paid = Vec::new();
            let mut after = 0;
            while paid.len() < DASHBOARD_ROWS_MAX {
                let page = orders.paid_between(people, merchant_id, range, after, 1_000)?;
                let Some(last) = page.last() else { break };
                after = last.id;
                paid.extend(page);
            }
            let refunds =
                orders.refunds_between(people, merchant_id, (day_start, now_ms + 1), 0, 1_000)?;
            let last_settlement = settlement::of_merchant(people, merchant_id, 1)
                .map_err(OrderError::from)?
                .into_iter()
                .next();
            Ok::<_, OrderError>((paid, refunds, last_settlement))
        })
        .await??;
    let account = zhifu_domain::wallet::chart::merchant_account_id(merchant.id.get());
    let balance = state
        .with_reader(move |reader| zhifu_store::balance(reader, account))
        .await?
        .map_err(|_| ApiError::Internal)?
        .map_or(0, |a| a.balances.posted_net_minor());
    let today_paid: Vec<&OrderRow> = week
        .iter()
        .filter(|o| o.paid_ms.is_some_and(|ms| ms >= day_start))
        .collect();
    let mut by_hour = [0u64; 24];
    let mut by_channel: Vec<(String, u64)> = ["NATIVE", "PAYCODE", "INWALLET", "STATIC"]
        .iter()
        .map(|kind| ((*kind).to_owned(), 0))
        .collect();
    for order in &today_paid {
        let hour = (order.paid_ms.unwrap_or(day_start) - day_start) / HOUR_MS;
        by_hour[usize::try_from(hour.clamp(0, 23)).unwrap_or(0)] += order.amount_minor;
        if let Some(channel) = by_channel.iter_mut().find(|(kind, _)| *kind == order.kind) {
            channel.1 += order.amount_minor;
        }
    }
    let hours: Vec<(String, u64)> = by_hour
        .iter()
        .enumerate()
        .map(|(hour, value)| (format!("{hour:02}"), *value))
        .collect();
    // Repeat customers: pseudonyms with two paid orders or more in the last 7 days.
    let mut customers: HashMap<i64, (usize, u64)> = HashMap::new();
    for order in &week {
        if let Some(payer) = order.payer_id {
            let entry = customers.entry(payer).or_default();
            entry.0 += 1;
            entry.1 += order.amount_minor;
        }
    }
    let mut repeat: Vec<(String, usize, String)> = customers
        .into_iter()
        .filter(|(_, (count, _))| *count >= 2)
        .map(|(payer, (count, total))| {
            (
                state.orders().payer_pseudonym(merchant.id.get(), payer),
                count,
                yuan(total),
            )
        })
        .collect();
    repeat.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    repeat.truncate(20);
    let page = DashboardPage {
        name: merchant.name,
        today: today_text,
        sales: yuan(today_paid.iter().map(|o| o.amount_minor).sum()),
        orders_count: today_paid.len(),
        refunds: yuan(refunds.iter().map(|r| r.amount_minor).sum()),
        balance: display(balance, Currency::CNY),
        by_hour: bars(&hours),
        by_channel: bars(&by_channel),
        repeat_customers: repeat,
        settlement: last_settlement.map_or_else(
            || "none yet".to_owned(),
            |row| {
                format!(
                    "{} {} ({})",
                    yuan(row.amount_minor),
                    row.state,
                    rfc3339_from_ms(row.cutoff_ms)
                )
            },
        ),
        cut: week.len() >= DASHBOARD_ROWS_MAX,
    };
    Ok(page.into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "console_cashier.html")]
struct CashierPage {
    name: String,
    error: Option<String>,
    result: Option<String>,
}

/// `/console/cashier`.
pub async fn cashier(ConsoleMerchant(merchant): ConsoleMerchant) -> Response {
    CashierPage {
        name: merchant.name,
        error: None,
        result: None,
    }
    .into_response()
}

#[derive(Deserialize)]
pub struct AmountForm {
    amount: String,
    /// The digits of a scanned pay code; absent for a QR order.
    auth_code: Option<String>,
}

/// `POST /console/cashier`: a QR order for the amount (then its page), or a pay-code order.
pub async fn charge(
    State(state): State<AppState>,
    ConsoleMerchant(merchant): ConsoleMerchant,
    Form(form): Form<AmountForm>,
) -> Response {
    let failed = |name: String, error: String| {
        CashierPage {
            name,
            error: Some(error),
            result: None,
        }
        .into_response()
    };
    let Some(amount_minor) = super::yuan_to_minor(form.amount.trim()) else {
        return failed(
            merchant.name,
            "Type an amount in yuan, such as 12.50".into(),
        );
    };
    let now_ms = state.now_ms();
    let out_trade_no = format!("C{now_ms}{:04}", rand::random::<u16>() % 10_000);
    let auth_code = form
        .auth_code
        .map(|code| code.trim().replace(' ', ""))
        .filter(|c| !c.is_empty());
    let kind = if auth_code.is_some() {
        OrderKind::PayCode
    } else {
        OrderKind::Native
    };
    let order = NewOrder {
        out_trade_no: out_trade_no.clone(),
        kind,
        amount_minor,
        description: merchant.name.chars().take(127).collect(),
    };
    let (orders, engine, pay_codes, merchant_id) = (
        state.orders().clone(),
        state.engine_shared(),
        state.pay_codes().clone(),
        merchant.id,
    );
    let created = state
        .with_people(move |people| match auth_code {
            Some(code) => orders.pay_code_order(
                people,
                &engine,
                &LimitPolicy::default(),
                &pay_codes,
                merchant_id,
                &order,
                &code,
                now_ms,
            ),
            None => orders.create(people, merchant_id, &order, now_ms),
        })
        .await;
    state.wake_notifier();
    match created {
        Ok(Ok(order)) if kind == OrderKind::Native => {
            Redirect::to(&format!("/console/orders/{}", order.id)).into_response()
        }
        Ok(Ok(order)) => CashierPage {
            name: merchant.name,
            error: None,
            result: Some(format!(
                "{} {}: {}",
                yuan(order.amount_minor),
                order.out_trade_no,
                shown_state(&order, now_ms)
            )),
        }
        .into_response(),
        Ok(Err(e)) => failed(merchant.name, e.to_string()),
        Err(_) => failed(merchant.name, "Something went wrong; try again".into()),
    }
}

/// A row of an order list.
pub struct OrderLine {
    id: i64,
    out_trade_no: String,
    kind: String,
    state: String,
    amount: String,
    refunded: String,
    payer: String,
    created: String,
}

fn order_line(state: &AppState, order: &OrderRow, now_ms: i64) -> OrderLine {
    OrderLine {
        id: order.id,
        out_trade_no: order.out_trade_no.clone(),
        kind: order.kind.clone(),
        state: shown_state(order, now_ms).to_owned(),
        amount: yuan(order.amount_minor),
        refunded: yuan(order.refunded_minor),
        payer: order
            .payer_id
            .map(|payer| state.orders().payer_pseudonym(order.merchant_id, payer))
            .unwrap_or_default(),
        created: rfc3339_from_ms(order.created_ms),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console_orders.html")]
struct OrdersPage {
    name: String,
    date: String,
    state: String,
    orders: Vec<OrderLine>,
    states: [&'static str; 7],
}

#[derive(Deserialize)]
pub struct OrdersQuery {
    date: Option<String>,
    state: Option<String>,
}

/// `/console/orders?date=YYYY-MM-DD&state=SUCCESS`: the orders created that day.
pub async fn orders(
    State(state): State<AppState>,
    ConsoleMerchant(merchant): ConsoleMerchant,
    Query(query): Query<OrdersQuery>,
) -> Result<Response, ApiError> {
    let now_ms = state.now_ms();
    let date = query
        .date
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| today(now_ms).0);
    let from_ms = crate::api::bills::day_start_ms(&date).ok_or(ApiError::QueryInvalid)?;
    let wanted = query.state.filter(|s| !s.is_empty());
    let (orders, merchant_id) = (state.orders().clone(), merchant.id);
    let rows = state
        .with_people(move |people| {
            orders.created_between(
                people,
                merchant_id,
                (from_ms, from_ms + DAY_MS),
                0,
                LIST_LEN_MAX * 5,
            )
        })
        .await??;
    let lines = rows
        .iter()
        .filter(|order| {
            wanted
                .as_deref()
                .is_none_or(|w| shown_state(order, now_ms) == w)
        })
        .take(LIST_LEN_MAX)
        .map(|order| order_line(&state, order, now_ms))
        .collect();
    Ok(OrdersPage {
        name: merchant.name,
        date,
        state: wanted.unwrap_or_default(),
        orders: lines,
        states: [
            "NOTPAY",
            "USERPAYING",
            "SUCCESS",
            "REFUND",
            "CLOSED",
            "REVOKED",
            "PAYERROR",
        ],
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "console_order.html")]
struct OrderPage {
    name: String,
    order: OrderLine,
    fee: String,
    refundable: bool,
    left: String,
    svg: Option<String>,
    /// The code's text, beside its picture (for a till that copies it elsewhere).
    payload: String,
    refunds: Vec<(String, String, String, String)>,
    error: Option<String>,
}

/// `/console/orders/{id}`: one order: its QR while unpaid (the page reloads itself until it
/// is paid), its refunds and a refund form once paid.
pub async fn order(
    State(state): State<AppState>,
    ConsoleMerchant(merchant): ConsoleMerchant,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    order_page(&state, merchant, id, None).await
}

async fn order_page(
    state: &AppState,
    merchant: Merchant,
    id: i64,
    error: Option<String>,
) -> Result<Response, ApiError> {
    let now_ms = state.now_ms();
    let (orders, merchant_id) = (state.orders().clone(), merchant.id);
    let (order, refunds) = state
        .with_people(move |people| {
            let order = orders.by_transaction_id(people, merchant_id, id)?;
            let refunds = orders.refunds_of_order(people, order.id)?;
            Ok::<_, OrderError>((order, refunds))
        })
        .await??;
    let shown = shown_state(&order, now_ms);
    let waiting = shown == "NOTPAY" && order.kind != "PAYCODE";
    let payload = state.orders().code_for(&merchant, &order);
    let svg = waiting
        .then(|| render_svg(&payload, RenderOptions::default()).ok())
        .flatten();
    // Refunds still in flight count against what is left, as the refund itself counts them.
    let recorded_minor: u64 = refunds.iter().map(|r| r.amount_minor).sum();
    let left_minor = order.amount_minor.saturating_sub(recorded_minor);
    let page = OrderPage {
        name: merchant.name.clone(),
        fee: yuan(order.fee_minor),
        refundable: matches!(shown, "SUCCESS" | "REFUND") && left_minor > 0,
        left: yuan(left_minor),
        svg,
        payload,
        refunds: refunds
            .iter()
            .map(|r| {
                (
                    r.out_refund_no.clone(),
                    yuan(r.amount_minor),
                    r.state.clone(),
                    rfc3339_from_ms(r.created_ms),
                )
            })
            .collect(),
        order: order_line(state, &order, now_ms),
        error,
    };
    let mut response = page.into_response();
    if waiting || shown == "USERPAYING" {
        let refresh = HeaderValue::from_str(&CASHIER_REFRESH_S.to_string()).expect("digits");
        response.headers_mut().insert("refresh", refresh);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct RefundForm {
    amount: String,
    reason: String,
    key: String,
}

/// `POST /console/orders/{id}/refunds`: refunds part or all of the order. The form's key is
/// the refund's `out_refund_no`, so sending the form twice refunds once.
pub async fn refund(
    State(state): State<AppState>,
    ConsoleMerchant(merchant): ConsoleMerchant,
    Path(id): Path<i64>,
    Form(form): Form<RefundForm>,
) -> Result<Response, ApiError> {
    let Some(amount_minor) = super::yuan_to_minor(form.amount.trim()) else {
        return order_page(&state, merchant, id, Some("Type an amount in yuan".into())).await;
    };
    let refund = NewRefund {
        out_refund_no: form.key,
        amount_minor,
        reason: Some(form.reason.trim().to_owned()).filter(|r| !r.is_empty()),
    };
    let now_ms = state.now_ms();
    let (orders, engine, merchant_id) =
        (state.orders().clone(), state.engine_shared(), merchant.id);
    let done = state
        .with_people(move |people| orders.refund(people, &engine, merchant_id, id, &refund, now_ms))
        .await?;
    state.wake_notifier();
    match done {
        Ok(_) => Ok(Redirect::to(&format!("/console/orders/{id}")).into_response()),
        Err(e) => order_page(&state, merchant, id, Some(e.to_string())).await,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console_bills.html")]
struct BillsPage {
    name: String,
    today: String,
    settlements: Vec<(String, String, String, String)>,
    card: Option<String>,
}

/// `/console/bills`: the day's bills to download, and the settlements.
pub async fn bills(
    State(state): State<AppState>,
    ConsoleMerchant(merchant): ConsoleMerchant,
) -> Result<Response, ApiError> {
    let merchant_id = merchant.id;
    let (rows, card) = state
        .with_people(move |people| {
            Ok::<_, zhifu_store::StoreError>((
                settlement::of_merchant(people, merchant_id, 50)?,
                settlement::card(people, merchant_id)?,
            ))
        })
        .await?
        .map_err(|e| {
            ApiError::Merchant(zhifu_domain::acquiring::merchants::MerchantError::Store(e))
        })?;
    Ok(BillsPage {
        name: merchant.name,
        today: today(state.now_ms()).0,
        settlements: rows
            .iter()
            .map(|r| {
                (
                    rfc3339_from_ms(r.cutoff_ms),
                    yuan(r.amount_minor),
                    r.state.clone(),
                    r.finished_ms.map(rfc3339_from_ms).unwrap_or_default(),
                )
            })
            .collect(),
        card: card.map(|c| format!("{} ···· {}", c.bank, c.last_four)),
    }
    .into_response())
}

#[derive(Deserialize)]
pub struct BillQuery {
    date: String,
}

/// `/console/bills/trade.csv?date=…`.
pub async fn trade_csv(
    State(state): State<AppState>,
    ConsoleMerchant(merchant): ConsoleMerchant,
    Query(query): Query<BillQuery>,
) -> Result<Response, ApiError> {
    crate::api::bills::trade_bill_of(&state, merchant.id, &query.date).await
}

/// `/console/bills/fund-flow.csv?date=…`.
pub async fn fund_flow_csv(
    State(state): State<AppState>,
    ConsoleMerchant(merchant): ConsoleMerchant,
    Query(query): Query<BillQuery>,
) -> Result<Response, ApiError> {
    crate::api::bills::fund_flow_bill_of(&state, merchant.id, &query.date).await
}

#[derive(Template, WebTemplate)]
#[template(path = "console_developer.html")]
struct DeveloperPage {
    name: String,
    merchant_id: i64,
    notify_url: String,
    keys: Vec<(String, String, String)>,
    deliveries: Vec<Delivery>,
}

pub struct Delivery {
    id: i64,
    event_id: String,
    event_type: String,
    created: String,
    delivered: String,
    attempts: String,
}

/// `/console/developer`: keys, the notify URL, the delivery log.
pub async fn developer(
    State(state): State<AppState>,
    ConsoleMerchant(merchant): ConsoleMerchant,
) -> Result<Response, ApiError> {
    let merchant_id = merchant.id;
    let (keys, log) = state
        .with_people(move |people| {
            let keys = merchants::active_keys(people, merchant_id)?;
            let log = notifications::log(people, merchant_id, i64::MAX, 50)
                .map_err(zhifu_domain::acquiring::merchants::MerchantError::Store)?;
            Ok::<_, zhifu_domain::acquiring::merchants::MerchantError>((keys, log))
        })
        .await??;
    Ok(DeveloperPage {
        name: merchant.name,
        merchant_id: merchant.id.get(),
        notify_url: merchant.notify_url.unwrap_or_else(|| "(none)".into()),
        keys: keys
            .iter()
            .map(|k| {
                (
                    k.serial.as_str().to_owned(),
                    k.algorithm.code().to_owned(),
                    rfc3339_from_ms(k.created_ms),
                )
            })
            .collect(),
        deliveries: log
            .iter()
            .map(|(row, attempts)| Delivery {
                id: row.id,
                event_id: row.event_id.clone(),
                event_type: row.event_type.clone(),
                created: rfc3339_from_ms(row.created_ms),
                delivered: row
                    .delivered_ms
                    .map(rfc3339_from_ms)
                    .unwrap_or_else(|| "not yet".into()),
                attempts: attempts
                    .iter()
                    .map(|a| a.outcome.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
    }
    .into_response())
}

/// `POST /console/notifications/{id}/resend`.
pub async fn resend(
    State(state): State<AppState>,
    ConsoleMerchant(merchant): ConsoleMerchant,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let (now_ms, merchant_id) = (state.now_ms(), merchant.id);
    state
        .with_people(move |people| notifications::resend(people, merchant_id, id, now_ms))
        .await?
        .map_err(|e| {
            ApiError::Merchant(zhifu_domain::acquiring::merchants::MerchantError::Store(e))
        })?;
    state.wake_notifier();
    Ok(Redirect::to("/console/developer").into_response())
}

/// Keeps a fresh refund key on the order page's form: one refund per form shown.
pub fn fresh_refund_key() -> String {
    format!("console-{:016x}", rand::random::<u64>())
}

impl OrderPage {
    fn refund_key(&self) -> String {
        fresh_refund_key()
    }
}

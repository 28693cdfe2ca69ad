//! Orders and refunds over HTTP (SPEC §5, `docs/merchant-api.md`).
//!
//! - The signed merchant API, under `/merchant/v1`: create native and in-wallet orders (a
//!   dynamic code and a link), submit a scanned pay code, query by `out_trade_no` or
//!   transaction id, close, reverse, refund, the order's QR image, the static code, the
//!   notification key and the delivery log.
//! - The wallet's side, under `/api/v1/merchant-payments` with a session: pay a scanned
//!   merchant code with the PIN, list the pay-code orders waiting for the PIN, confirm one.
//!
//! What a merchant sees of a payer is a pseudonym of its own, never a phone, name or card.

use super::error::ApiError;
use super::merchant_signing::SignedBy;
use super::people::session_person;
use super::time::rfc3339_from_ms;
use crate::serve::AppState;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use zhifu_domain::acquiring::merchants::{self, MerchantError, MerchantId};
use zhifu_domain::acquiring::notifications;
use zhifu_domain::acquiring::orders::{
    NewOrder, NewRefund, OrderError, OrderKind, Orders, shown_state,
};
use zhifu_domain::wallet::limits::LimitPolicy;
use zhifu_store::{OrderRow, RefundRow};

/// The one currency orders are in.
const CURRENCY: &str = "CNY";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    out_trade_no: String,
    description: String,
    amount_minor: u64,
    currency: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayCodeOrderRequest {
    out_trade_no: String,
    description: String,
    amount_minor: u64,
    currency: Option<String>,
    /// The 18 digits scanned from the consumer's pay code.
    auth_code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// One of the two names the order.
    out_trade_no: Option<String>,
    transaction_id: Option<String>,
    out_refund_no: String,
    amount_minor: u64,
    currency: Option<String>,
    reason: Option<String>,
}

fn check_currency(currency: Option<&str>) -> Result<(), ApiError> {
    match currency {
        None | Some(CURRENCY) => Ok(()),
        Some(_) => Err(ApiError::CurrencyUnsupported),
    }
}

/// An order as its merchant sees it.
pub fn order_json(orders: &Orders, order: &OrderRow, now_ms: i64) -> Value {
    json!({
        "transaction_id": order.id.to_string(),
        "out_trade_no": order.out_trade_no,
        "merchant_id": order.merchant_id,
        "trade_type": order.kind,
        "trade_state": shown_state(order, now_ms),
        "description": order.description,
        "amount_minor": order.amount_minor,
        "currency": CURRENCY,
        "fee_minor": order.fee_minor,
        "refunded_minor": order.refunded_minor,
        "refund_count": order.refund_count,
        "payer": order.payer_id.map(|payer| orders.payer_pseudonym(order.merchant_id, payer)),
        "created_at": rfc3339_from_ms(order.created_ms),
        "expires_at": rfc3339_from_ms(order.expires_ms),
        "success_time": order.paid_ms.map(rfc3339_from_ms),
    })
}

pub fn refund_json(order: &OrderRow, refund: &RefundRow) -> Value {
    json!({
        "refund_id": refund.id.to_string(),
        "out_refund_no": refund.out_refund_no,
        "transaction_id": order.id.to_string(),
        "out_trade_no": order.out_trade_no,
        "status": refund.state,
        "amount_minor": refund.amount_minor,
        "fee_minor": refund.fee_minor,
        "currency": CURRENCY,
        "reason": refund.reason,
        "channel": "BALANCE",
        "created_at": rfc3339_from_ms(refund.created_ms),
        // Empty while the refund is in flight (`PROCESSING`).
        "success_time": refund.success_ms().map(rfc3339_from_ms),
    })
}

fn new_order(request: OrderRequest, kind: OrderKind) -> Result<NewOrder, ApiError> {
    check_currency(request.currency.as_deref())?;
    Ok(NewOrder {
        out_trade_no: request.out_trade_no,
        kind,
        amount_minor: request.amount_minor,
        description: request.description,
    })
}

/// `POST /merchant/v1/orders/native`: an order and its dynamic code (`code_url`, the EMV
/// payload) to show as a QR (`GET …/qr.png`); it can be paid until `expires_at`.
pub async fn create_native(
    state: State<AppState>,
    signed: Extension<SignedBy>,
    body: Result<Json<OrderRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create(state, signed, body, OrderKind::Native).await
}

/// `POST /merchant/v1/orders/in-wallet`: an order for the wallet to open (`pay_url`).
pub async fn create_in_wallet(
    state: State<AppState>,
    signed: Extension<SignedBy>,
    body: Result<Json<OrderRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create(state, signed, body, OrderKind::InWallet).await
}

async fn create(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
    body: Result<Json<OrderRequest>, JsonRejection>,
    kind: OrderKind,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(request) = body?;
    let order = new_order(request, kind)?;
    let now_ms = state.now_ms();
    let orders = state.orders().clone();
    let (row, merchant) = state
        .with_people(move |people| {
            let row = orders.create(people, merchant_id, &order, now_ms)?;
            let merchant = merchants::merchant(people, merchant_id)?;
            Ok::<_, OrderError>((row, merchant))
        })
        .await??;
    let mut body = order_json(state.orders(), &row, now_ms);
    body["code_url"] = state.orders().code_for(&merchant, &row).into();
    body["pay_url"] = format!("/pay/{}", state.orders().reference(row.id)).into();
    Ok((StatusCode::CREATED, Json(body)))
}

/// `POST /merchant/v1/orders/pay-code`: the merchant scanned a consumer's pay code. The
/// answer's `trade_state` is `SUCCESS`, or `USERPAYING` while the consumer confirms with the
/// PIN (query until it changes, or reverse).
pub async fn pay_code(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
    body: Result<Json<PayCodeOrderRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body?;
    check_currency(request.currency.as_deref())?;
    let order = NewOrder {
        out_trade_no: request.out_trade_no,
        kind: OrderKind::PayCode,
        amount_minor: request.amount_minor,
        description: request.description,
    };
    let auth_code = request.auth_code;
    let now_ms = state.now_ms();
    let (orders, engine, pay_codes) = (
        state.orders().clone(),
        state.engine_shared(),
        state.pay_codes().clone(),
    );
    let row = state
        .with_people(move |people| {
            orders.pay_code_order(
                people,
                &engine,
                &LimitPolicy::default(),
                &pay_codes,
                merchant_id,
                &order,
                &auth_code,
                now_ms,
            )
        })
        .await??;
    state.wake_notifier();
    Ok(Json(order_json(state.orders(), &row, now_ms)))
}

/// `GET /merchant/v1/orders/out-trade-no/{out_trade_no}`.
pub async fn by_out_trade_no(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
    Path(out_trade_no): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let orders = state.orders().clone();
    let row = state
        .with_people(move |people| orders.by_out_trade_no(people, merchant_id, &out_trade_no))
        .await??;
    Ok(Json(order_json(state.orders(), &row, state.now_ms())))
}

/// `GET /merchant/v1/orders/id/{transaction_id}`.
pub async fn by_transaction_id(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
    Path(transaction_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = transaction_id_of(&transaction_id)?;
    let orders = state.orders().clone();
    let row = state
        .with_people(move |people| orders.by_transaction_id(people, merchant_id, id))
        .await??;
    Ok(Json(order_json(state.orders(), &row, state.now_ms())))
}

fn transaction_id_of(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|&id| id > 0)
        .ok_or(ApiError::Order(OrderError::NotFound))
}

/// `POST /merchant/v1/orders/out-trade-no/{out_trade_no}/close`: closes an unpaid order.
pub async fn close(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
    Path(out_trade_no): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now_ms = state.now_ms();
    let orders = state.orders().clone();
    let row = state
        .with_people(move |people| orders.close(people, merchant_id, &out_trade_no, now_ms))
        .await??;
    Ok(Json(order_json(state.orders(), &row, now_ms)))
}

/// `POST /merchant/v1/orders/out-trade-no/{out_trade_no}/reverse`: for a pay-code order
/// whose outcome is unknown: closes it if unpaid, refunds it if paid.
pub async fn reverse(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
    Path(out_trade_no): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now_ms = state.now_ms();
    let (orders, engine, ledger) = (state.orders().clone(), state.engine_shared(), state.clone());
    let row = state
        .with_people(move |people| {
            // The ledger's reader, for a payment whose row was never written (rare: held for
            // one reversal).
            let mut ledger = ledger.reader_blocking();
            let ledger = ledger.as_mut();
            orders.reverse(people, &engine, ledger, merchant_id, &out_trade_no, now_ms)
        })
        .await??;
    state.wake_notifier();
    Ok(Json(order_json(state.orders(), &row, now_ms)))
}

/// `GET /merchant/v1/orders/out-trade-no/{out_trade_no}/qr.png`: the order's code as a PNG.
pub async fn qr_png(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
    Path(out_trade_no): Path<String>,
) -> Result<Response, ApiError> {
    let orders = state.orders().clone();
    let (row, merchant) = state
        .with_people(move |people| {
            let row = orders.by_out_trade_no(people, merchant_id, &out_trade_no)?;
            Ok::<_, OrderError>((row, merchants::merchant(people, merchant_id)?))
        })
        .await??;
    let payload = state.orders().code_for(&merchant, &row);
    let png = zhifu_qr_image::render_png(&payload, zhifu_qr_image::RenderOptions::default())
        .map_err(|_| ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// `GET /merchant/v1/static-code`: the merchant's static code (no amount; the payer enters it).
pub async fn static_code(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
) -> Result<Json<Value>, ApiError> {
    let merchant = state
        .with_people(move |people| merchants::merchant(people, merchant_id))
        .await??;
    Ok(Json(
        json!({ "code_url": state.orders().static_code_for(&merchant) }),
    ))
}

/// `POST /merchant/v1/refunds`: refunds part or all of a paid order to the payer's balance.
pub async fn refund(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
    body: Result<Json<RefundRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(request) = body?;
    check_currency(request.currency.as_deref())?;
    let transaction_id = match (&request.out_trade_no, &request.transaction_id) {
        (None, Some(id)) => Some(transaction_id_of(id)?),
        (Some(_), None) => None,
        _ => return Err(ApiError::OrderNameInvalid),
    };
    let refund = NewRefund {
        out_refund_no: request.out_refund_no,
        amount_minor: request.amount_minor,
        reason: request.reason,
    };
    let out_trade_no = request.out_trade_no;
    let now_ms = state.now_ms();
    let (orders, engine) = (state.orders().clone(), state.engine_shared());
    let (order, refund) = state
        .with_people(move |people| {
            let order = match (transaction_id, out_trade_no) {
                (Some(id), _) => orders.by_transaction_id(people, merchant_id, id)?,
                (None, Some(no)) => orders.by_out_trade_no(people, merchant_id, &no)?,
                (None, None) => unreachable!("checked above"),
            };
            let refund = orders.refund(people, &engine, merchant_id, order.id, &refund, now_ms)?;
            Ok::<_, OrderError>((orders.order(people, order.id)?, refund))
        })
        .await??;
    state.wake_notifier();
    Ok((StatusCode::CREATED, Json(refund_json(&order, &refund))))
}

/// `GET /merchant/v1/refunds/{out_refund_no}`.
pub async fn refund_by_out_refund_no(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
    Path(out_refund_no): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let orders = state.orders().clone();
    let (order, refund) = state
        .with_people(move |people| {
            let refund = orders.refund_by_out_refund_no(people, merchant_id, &out_refund_no)?;
            Ok::<_, OrderError>((orders.order(people, refund.order_id)?, refund))
        })
        .await??;
    Ok(Json(refund_json(&order, &refund)))
}

/// `POST /merchant/v1/notify-key`: a new key for the notifications' AES-256-GCM seal,
/// replacing the old one at once. The only time the key is shown: keep it.
pub async fn rotate_notify_key(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
) -> Result<Json<Value>, ApiError> {
    let key = state
        .with_people(move |people| notifications::rotate_notify_key(people, merchant_id))
        .await??;
    Ok(Json(json!({ "notify_key": key.expose() })))
}

#[derive(Deserialize)]
pub struct NotificationsQuery {
    before: Option<i64>,
}

/// `GET /merchant/v1/notifications`: the delivery log, newest first, 50 at a time.
pub async fn notification_log(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
    query: Result<Query<NotificationsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::QueryInvalid)?;
    let before = query.before.unwrap_or(i64::MAX);
    let log = state
        .with_people(move |people| notifications::log(people, merchant_id, before, 50))
        .await?
        .map_err(|e| ApiError::Merchant(MerchantError::Store(e)))?;
    let items: Vec<Value> = log
        .iter()
        .map(|(row, attempts)| {
            json!({
                "notification_id": row.id,
                "event_id": row.event_id,
                "event_type": row.event_type,
                "created_at": rfc3339_from_ms(row.created_ms),
                "delivered_at": row.delivered_ms.map(rfc3339_from_ms),
                "next_attempt_at": row.next_ms.map(rfc3339_from_ms),
                "attempts": attempts.iter().map(|a| json!({
                    "attempt": a.attempt,
                    "at": rfc3339_from_ms(a.at_ms),
                    "outcome": a.outcome,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "notifications": items })))
}

/// `POST /merchant/v1/notifications/{id}/resend`: delivers an event again, now.
pub async fn resend_notification(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let now_ms = state.now_ms();
    let found = state
        .with_people(move |people| notifications::resend(people, merchant_id, id, now_ms))
        .await?
        .map_err(|e| ApiError::Merchant(MerchantError::Store(e)))?;
    if !found {
        return Err(ApiError::NotFound);
    }
    state.wake_notifier();
    Ok(Json(json!({ "notification_id": id, "resend": true })))
}

/// `GET /merchant/v1/balance`: what the merchant has been paid, net of fees and refunds, and
/// not yet settled to its bank, from the ledger.
pub async fn balance(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
) -> Result<Json<Value>, ApiError> {
    let account = zhifu_domain::wallet::chart::merchant_account_id(merchant_id.get());
    let balance = state
        .with_reader(move |reader| zhifu_store::balance(reader, account))
        .await?
        .map_err(|_| ApiError::Internal)?;
    let minor = balance.map_or(0, |account| account.balances.posted_net_minor());
    Ok(Json(json!({
        "merchant_id": merchant_id.get(),
        "unsettled_minor": minor,
        "currency": CURRENCY,
    })))
}

// The wallet's side.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantPaymentRequest {
    /// The scanned merchant code (EMV payload), or a `pay_url` reference.
    code: String,
    /// Required for a static code; must match a dynamic code's amount if given.
    amount_minor: Option<u64>,
    pin: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pin: String,
}

/// An order as its payer sees it: the merchant's name, not the merchant's keys or fees.
pub fn payer_order_json(order: &OrderRow, merchant_name: &str, now_ms: i64) -> Value {
    json!({
        "transaction_id": order.id.to_string(),
        "merchant_name": merchant_name,
        "description": order.description,
        "amount_minor": order.amount_minor,
        "currency": CURRENCY,
        "trade_state": shown_state(order, now_ms),
        "refunded_minor": order.refunded_minor,
        "created_at": rfc3339_from_ms(order.created_ms),
        "success_time": order.paid_ms.map(rfc3339_from_ms),
    })
}

/// `POST /api/v1/merchant-payments` with an `Idempotency-Key`: pays a scanned merchant code
/// (a native order's, an in-wallet order's reference, or a static code with an amount).
pub async fn pay_merchant(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<MerchantPaymentRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = super::funding::idempotency_key(&headers)?;
    let Json(request) = body?;
    let person = session_person(&state, &headers).await?;
    let (order, name) = pay_merchant_flow(
        &state,
        person.user_id,
        request.code,
        request.amount_minor,
        request.pin,
        key,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(payer_order_json(&order, &name, state.now_ms())),
    ))
}

/// What the merchant code names: an order reference (`{id}.{tag}`, from a `pay_url`) or an
/// EMV payload.
fn read_merchant_code(
    orders: &Orders,
    code: &str,
) -> Result<zhifu_domain::acquiring::orders::MerchantCode, OrderError> {
    match orders.order_of_reference(code.trim()) {
        Some(order_id) => Ok(zhifu_domain::acquiring::orders::MerchantCode::Order { order_id }),
        None => orders.read_code(code),
    }
}

/// The order and merchant a code names, for the wallet's confirmation page.
pub async fn preview_merchant_code(
    state: &AppState,
    code: String,
) -> Result<(Option<OrderRow>, String), ApiError> {
    let orders = state.orders().clone();
    Ok(state
        .with_people(move |people| {
            use zhifu_domain::acquiring::orders::MerchantCode;
            match read_merchant_code(&orders, &code)? {
                MerchantCode::Order { order_id } => {
                    let order = orders.order(people, order_id)?;
                    let id = MerchantId::new(order.merchant_id).expect("stored ids are positive");
                    let name = merchants::merchant(people, id)?.name;
                    Ok::<_, OrderError>((Some(order), name))
                }
                MerchantCode::Static { merchant_id } => {
                    Ok((None, merchants::merchant(people, merchant_id)?.name))
                }
            }
        })
        .await??)
}

/// A wallet's payment of a merchant code, as every edge makes it: the PIN, then the payment.
pub async fn pay_merchant_flow(
    state: &AppState,
    payer_id: i64,
    code: String,
    amount_minor: Option<u64>,
    pin: String,
    key: zhifu_domain::wallet::funding::IdempotencyKey,
) -> Result<(OrderRow, String), ApiError> {
    let now_ms = state.now_ms();
    let (orders, engine) = (state.orders().clone(), state.engine_shared());
    let paid = state
        .with_people(move |people| {
            let code = read_merchant_code(&orders, &code)?;
            people.check_pin(payer_id, &pin, now_ms)?;
            let order = orders.pay_code_scanned(
                people,
                &engine,
                &LimitPolicy::default(),
                payer_id,
                &code,
                amount_minor,
                &key,
                now_ms,
            )?;
            let id = MerchantId::new(order.merchant_id).expect("stored ids are positive");
            Ok::<_, OrderError>((order, merchants::merchant(people, id)?.name))
        })
        .await??;
    state.wake_notifier();
    Ok(paid)
}

/// `GET /api/v1/merchant-payments/awaiting`: pay-code orders waiting for the PIN.
pub async fn awaiting(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let person = session_person(&state, &headers).await?;
    let now_ms = state.now_ms();
    let orders = state.orders().clone();
    let waiting = state
        .with_people(move |people| {
            orders
                .awaiting(people, person.user_id, now_ms)?
                .into_iter()
                .map(|order| {
                    let id = MerchantId::new(order.merchant_id).expect("stored ids are positive");
                    Ok((merchants::merchant(people, id)?.name, order))
                })
                .collect::<Result<Vec<_>, OrderError>>()
        })
        .await??;
    let items: Vec<Value> = waiting
        .iter()
        .map(|(name, order)| payer_order_json(order, name, now_ms))
        .collect();
    Ok(Json(json!({ "orders": items })))
}

/// `POST /api/v1/merchant-payments/{transaction_id}/confirm`: the consumer confirms a
/// `USERPAYING` pay-code order with the PIN.
pub async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(transaction_id): Path<String>,
    body: Result<Json<ConfirmRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body?;
    let person = session_person(&state, &headers).await?;
    let order_id = transaction_id_of(&transaction_id)?;
    let (payer_id, now_ms) = (person.user_id, state.now_ms());
    let (orders, engine) = (state.orders().clone(), state.engine_shared());
    let (order, name) = state
        .with_people(move |people| {
            people.check_pin(payer_id, &request.pin, now_ms)?;
            let order = orders.confirm(
                people,
                &engine,
                &LimitPolicy::default(),
                payer_id,
                order_id,
                now_ms,
            )?;
            let id = MerchantId::new(order.merchant_id).expect("stored ids are positive");
            Ok::<_, OrderError>((order, merchants::merchant(people, id)?.name))
        })
        .await??;
    state.wake_notifier();
    Ok(Json(payer_order_json(&order, &name, now_ms)))
}

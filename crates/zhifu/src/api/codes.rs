//! Codes in the wallet: the person's receive-money code, paying someone's code, one-time pay
//! codes (online, and devices that make them offline), and the redemption that merchant
//! acquiring calls.

use super::error::ApiError;
use super::operator::require_operator;
use super::people::session_person;
use super::time::rfc3339_from_ms;
use super::transfers::transfer_json;
use crate::serve::{AppState, OsRandom};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use zhifu_domain::wallet::funding::IdempotencyKey;
use zhifu_domain::wallet::limits::LimitPolicy;
use zhifu_domain::wallet::pay_codes::{PayCodeError, RedeemError};
use zhifu_domain::wallet::receive_codes::ReceiveCodeError;
use zhifu_store::P2pRow;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveCodeQuery {
    amount_minor: Option<u64>,
}

/// `GET /api/v1/receive-code[?amount_minor=]`: the person's static code as an EMV payload.
pub async fn receive_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ReceiveCodeQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::QueryInvalid)?;
    let person = session_person(&state, &headers).await?;
    let payload = receive_payload(&state, person.user_id, query.amount_minor).await?;
    Ok(Json(json!({
        "payload": payload,
        "amount_minor": query.amount_minor,
    })))
}

/// The person's receive code, for every edge that shows it.
pub async fn receive_payload(
    state: &AppState,
    user_id: i64,
    amount_minor: Option<u64>,
) -> Result<String, ApiError> {
    let codes = state.receive_codes().clone();
    Ok(state
        .with_people(move |people| codes.code_for(people, user_id, amount_minor))
        .await??)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodePayment {
    payload: String,
    amount_minor: Option<u64>,
    pin: String,
}

/// `POST /api/v1/receive-code/payments` with an `Idempotency-Key`: pays the person whose code
/// was scanned (or pasted), at once.
pub async fn pay_receive_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CodePayment>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = super::funding::idempotency_key(&headers)?;
    let Json(request) = body?;
    let person = session_person(&state, &headers).await?;
    let payer_id = person.user_id;
    let row = pay_flow(
        &state,
        payer_id,
        request.payload,
        request.amount_minor,
        request.pin,
        key,
    )
    .await?;
    let now_ms = state.now_ms();
    Ok((
        StatusCode::CREATED,
        Json(transfer_json(&row, payer_id, now_ms)),
    ))
}

/// A payment to a scanned receive code as every edge makes it: the PIN, then the payment
/// under the payer's person lock.
pub async fn pay_flow(
    state: &AppState,
    payer_id: i64,
    payload: String,
    amount_minor: Option<u64>,
    pin: String,
    key: IdempotencyKey,
) -> Result<P2pRow, ApiError> {
    let now_ms = state.now_ms();
    let (engine, codes) = (state.engine_shared(), state.receive_codes().clone());
    Ok(state
        .with_people(move |people| {
            people
                .check_pin(payer_id, &pin, now_ms)
                .map_err(ReceiveCodeError::from)?;
            codes.pay(
                people,
                &engine,
                &LimitPolicy::default(),
                payer_id,
                &payload,
                amount_minor,
                &key,
                now_ms,
            )
        })
        .await??)
}

/// `POST /api/v1/pay-codes`: a new one-time code to show; the older ones are spent.
pub async fn issue_pay_code(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let person = session_person(&state, &headers).await?;
    let now_ms = state.now_ms();
    let codes = state.pay_codes().clone();
    let issued = state
        .with_people(move |people| {
            codes.issue(people, person.user_id, &mut OsRandom::new(), now_ms)
        })
        .await??;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "code": issued.code,
            "expires_at": rfc3339_from_ms(issued.expires_ms),
        })),
    ))
}

/// `POST /api/v1/pay-devices`: enrols a device that derives pay codes offline. The secret is
/// in this answer only.
pub async fn enrol_device(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let person = session_person(&state, &headers).await?;
    let now_ms = state.now_ms();
    let codes = state.pay_codes().clone();
    let prefix = codes.policy().prefix.clone();
    let device = state
        .with_people(move |people| {
            codes.enrol_device(people, person.user_id, &mut OsRandom::new(), now_ms)
        })
        .await??;
    let secret_hex: String = device.secret.iter().map(|b| format!("{b:02x}")).collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "device_no": device.device_no,
            "secret_hex": secret_hex,
            "step_ms": device.step_ms,
            "prefix": prefix,
            "algorithm": "code = prefix, device_no (7 digits), then 9 digits: HMAC-SHA256(secret, step as 8 big-endian bytes) truncated as RFC 4226 (31 bits) mod 10^9, where step = unix time in ms / step_ms",
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redemption {
    code: String,
    /// Who scanned it (a merchant or terminal id): wrong guesses are counted per redeemer.
    redeemer: String,
}

/// `POST /api/v1/operator/pay-codes/redeem`: whose code this is, spending it. The internal
/// call merchant acquiring makes; behind the operator token.
pub async fn redeem_pay_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Redemption>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    require_operator(&state, &headers)?;
    let Json(request) = body?;
    if request.redeemer.is_empty() || request.redeemer.len() > 64 {
        return Err(ApiError::RedeemerInvalid);
    }
    let now_ms = state.now_ms();
    let codes = state.pay_codes().clone();
    let user_id = state
        .with_people(move |people| codes.redeem(people, &request.code, &request.redeemer, now_ms))
        .await??;
    Ok(Json(json!({ "user_id": user_id })))
}

impl From<ReceiveCodeError> for ApiError {
    fn from(e: ReceiveCodeError) -> ApiError {
        ApiError::ReceiveCode(e)
    }
}

impl From<RedeemError> for ApiError {
    fn from(e: RedeemError) -> ApiError {
        match e {
            RedeemError::Code(code) => ApiError::PayCode(code),
            RedeemError::People(people) => ApiError::People(people),
        }
    }
}

impl From<PayCodeError> for ApiError {
    fn from(e: PayCodeError) -> ApiError {
        ApiError::PayCode(e)
    }
}

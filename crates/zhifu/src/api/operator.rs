//! The operator's calls: today, how the simulated bank behaves, so that failure paths can be
//! exercised on a running server (SPEC §3: a bank that is slow, fails or times out).
//!
//! They take the operator token, not a person's session: `Authorization: Bearer <token>` with
//! the token from `--operator-token` (or `ZHIFU_OPERATOR_TOKEN`), else the one `zhifu serve`
//! derives from its secret and writes to `<data-dir>/operator.token` (readable by its owner
//! only).

use super::error::ApiError;
use crate::serve::AppState;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use zhifu_domain::bank::BankMode;

/// Checks the operator token in constant time (a timing difference would reveal a prefix).
pub fn require_operator(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ApiError::OperatorUnauthorized)?;
    let expected = state.operator_token();
    let same_length = presented.len() == expected.len();
    let difference = presented
        .bytes()
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    match same_length && difference == 0 {
        true => Ok(()),
        false => Err(ApiError::OperatorUnauthorized),
    }
}

fn bank_json(mode: BankMode) -> Value {
    json!({ "mode": mode.code() })
}

/// `GET /api/v1/operator/bank`: how the simulated bank behaves now.
pub async fn bank(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_operator(&state, &headers)?;
    Ok(Json(bank_json(state.bank().mode())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankSetting {
    mode: String,
}

/// `PUT /api/v1/operator/bank`: switches the simulated bank's behaviour at once, for every
/// request that reaches it from then on.
pub async fn set_bank(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<BankSetting>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    require_operator(&state, &headers)?;
    let Json(setting) = body?;
    let mode = BankMode::parse(&setting.mode).ok_or(ApiError::BankModeInvalid)?;
    state.bank().set_mode(mode);
    eprintln!(
        "zhifu serve: the operator set the simulated bank to {}",
        mode.code()
    );
    Ok(Json(bank_json(mode)))
}

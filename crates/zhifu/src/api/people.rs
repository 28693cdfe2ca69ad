//! Sign-up, log-in, who am I, log-out.

use super::error::ApiError;
use super::time::rfc3339_from_ms;
use crate::serve::AppState;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use zhifu_domain::wallet::identity::Phone;
use zhifu_domain::wallet::people::Person;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    phone: String,
    password: String,
}

fn person_json(person: &Person) -> Value {
    json!({ "user_id": person.user_id, "phone_masked": person.phone_masked })
}

/// `POST /api/v1/users`
pub async fn sign_up(
    State(state): State<AppState>,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(credentials) = body?;
    let phone = Phone::parse(&credentials.phone)?;
    let now_ms = state.now_ms();
    let person = state
        .with_people(move |people| people.sign_up(&phone, &credentials.password, now_ms))
        .await??;
    ensure_wallet_account(&state, person.user_id).await?;
    Ok((StatusCode::CREATED, Json(person_json(&person))))
}

/// `POST /api/v1/sessions`: log in.
pub async fn log_in(
    State(state): State<AppState>,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(credentials) = body?;
    // A malformed phone cannot belong to anyone: the same answer as a wrong one.
    let phone = Phone::parse(&credentials.phone)
        .map_err(|_| zhifu_domain::wallet::people::PeopleError::CredentialsWrong)?;
    let now_ms = state.now_ms();
    let session = state
        .with_people(move |people| {
            people.log_in(
                &phone,
                &credentials.password,
                now_ms,
                &mut crate::serve::OsRandom::new(),
            )
        })
        .await??;
    // A crash between sign-up and the account's opening is healed at the next log-in.
    ensure_wallet_account(&state, session.person.user_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": session.token,
            "expires_at": rfc3339_from_ms(session.expires_ms),
            "user": person_json(&session.person),
        })),
    ))
}

/// `GET /api/v1/me`
pub async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let person = session_person(&state, &headers).await?;
    Ok(Json(person_json(&person)))
}

/// The person whose session token the request carries.
pub async fn session_person(state: &AppState, headers: &HeaderMap) -> Result<Person, ApiError> {
    let token = bearer_token(headers)?;
    let now_ms = state.now_ms();
    Ok(state
        .with_people(move |people| people.session_person(&token, now_ms))
        .await??)
}

/// Opens the person's wallet account in the ledger; already open is fine.
pub async fn ensure_wallet_account(state: &AppState, user_id: i64) -> Result<(), ApiError> {
    let account = zhifu_domain::wallet::chart::wallet_account(user_id);
    let codes = state
        .engine()
        .open_accounts_async(vec![account])
        .await
        .map_err(|_| ApiError::Internal)?;
    match codes.as_slice() {
        [zhifu_ledger::AccountCode::Ok | zhifu_ledger::AccountCode::Exists] => Ok(()),
        _ => Err(ApiError::Internal),
    }
}

/// `DELETE /api/v1/sessions/current`: log out.
pub async fn log_out(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = bearer_token(&headers)?;
    state
        .with_people(move |people| people.log_out(&token))
        .await??;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(|token| token.trim().to_owned())
        .ok_or(ApiError::SessionMissing)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinChange {
    password: String,
    pin: String,
}

/// `PUT /api/v1/pin`: set or change the payment PIN, with the login password.
pub async fn set_pin(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<PinChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(change) = body?;
    let person = session_person(&state, &headers).await?;
    state
        .with_people(move |people| {
            people.set_pin(
                person.user_id,
                &change.password,
                &change.pin,
                &mut crate::serve::OsRandom::new(),
            )
        })
        .await??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinEntry {
    pin: String,
}

/// `POST /api/v1/pin/check`: what every payment does first; here on its own so that a client
/// can confirm a PIN before a long form. Counts towards the lockout like any attempt.
pub async fn check_pin(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<PinEntry>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(entry) = body?;
    let person = session_person(&state, &headers).await?;
    let now_ms = state.now_ms();
    state
        .with_people(move |people| people.check_pin(person.user_id, &entry.pin, now_ms))
        .await??;
    Ok(StatusCode::NO_CONTENT)
}

//! Real-name verification, bank cards, top-ups and withdrawals.

use super::error::ApiError;
use super::people::session_person;
use crate::serve::AppState;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use zhifu_domain::bank::Holder;
use zhifu_domain::wallet::fees::WithdrawalQuote;
use zhifu_domain::wallet::funding::{
    IdempotencyKey, top_up as domain_top_up, withdraw as domain_withdraw,
};
use zhifu_domain::wallet::identity::{CardNumber, IdNumber, Phone};
use zhifu_domain::wallet::reconcile;
use zhifu_store::CardRow;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    name: String,
    id_number: String,
}

/// `POST /api/v1/verification`: real-name class I.
pub async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Verification>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body?;
    let id_number = IdNumber::parse(&request.id_number)?;
    let person = session_person(&state, &headers).await?;
    let now_ms = state.now_ms();
    let identity = state
        .with_people(move |people| {
            people.verify_identity(person.user_id, &request.name, &id_number, now_ms)
        })
        .await??;
    Ok(Json(json!({
        "class": identity.class,
        "name_masked": identity.name_masked,
        "id_masked": identity.id_masked,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardBinding {
    card_number: String,
    name: String,
    id_number: String,
    phone: String,
}

fn card_json(card: &CardRow) -> Value {
    json!({ "token": card.token, "bank": card.bank, "last_four": card.last_four })
}

/// `POST /api/v1/cards`: bind a card after the bank's four-element check (class II).
pub async fn bind_card(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CardBinding>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(request) = body?;
    let card = CardNumber::parse(&request.card_number)?;
    let id_number = IdNumber::parse(&request.id_number)?;
    let phone = Phone::parse(&request.phone)?;
    let person = session_person(&state, &headers).await?;
    let now_ms = state.now_ms();
    let bank = state.bank();
    let row = state
        .with_people(move |people| {
            let holder = Holder {
                name: &request.name,
                id_number: &id_number,
                phone: &phone,
            };
            people.bind_card(person.user_id, &card, &holder, bank.as_ref(), now_ms)
        })
        .await??;
    Ok((StatusCode::CREATED, Json(card_json(&row))))
}

/// `GET /api/v1/cards`
pub async fn cards(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let person = session_person(&state, &headers).await?;
    let cards = state
        .with_people(move |people| people.cards(person.user_id))
        .await??;
    Ok(Json(
        json!({ "cards": cards.iter().map(card_json).collect::<Vec<_>>() }),
    ))
}

/// `DELETE /api/v1/cards/{token}`
pub async fn unbind_card(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    let person = session_person(&state, &headers).await?;
    let now_ms = state.now_ms();
    state
        .with_people(move |people| people.unbind_card(person.user_id, &token, now_ms))
        .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// A top-up or a withdrawal: money between the wallet and one of its cards.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardMoneyRequest {
    card_token: String,
    amount_minor: u64,
    pin: String,
}

/// `POST /api/v1/top-ups` with an `Idempotency-Key`: money in from a bound card.
pub async fn top_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CardMoneyRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = idempotency_key(&headers)?;
    let Json(request) = body?;
    let person = session_person(&state, &headers).await?;
    let done = top_up_flow(&state, person.user_id, request, key).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "transfer_id": done.transfer_id.get().to_string(),
            "amount_minor": done.amount_minor,
        })),
    ))
}

pub fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, ApiError> {
    headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .and_then(IdempotencyKey::parse)
        .ok_or(ApiError::IdempotencyKeyInvalid)
}

fn quote_json(quote: &WithdrawalQuote) -> Value {
    json!({
        "amount_minor": quote.amount_minor,
        "fee_minor": quote.fee_minor,
        "debit_minor": quote.debit_minor,
        "free_minor": quote.free_minor,
        "free_quota_left_after_minor": quote.free_quota_left_after_minor,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteQuery {
    amount_minor: u64,
}

/// `GET /api/v1/withdrawals/quote?amount_minor=…`: the fee, before the person confirms.
pub async fn withdrawal_quote(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<QuoteQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::QueryInvalid)?;
    let person = session_person(&state, &headers).await?;
    let policy = state.withdrawal_policy();
    let quote = state
        .with_people(move |people| {
            people.preview_withdrawal(person.user_id, query.amount_minor, &policy)
        })
        .await??;
    Ok(Json(quote_json(&quote)))
}

/// `POST /api/v1/withdrawals` with an `Idempotency-Key`: money out to a bound card.
pub async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CardMoneyRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = idempotency_key(&headers)?;
    let Json(request) = body?;
    let person = session_person(&state, &headers).await?;
    let done = withdraw_flow(&state, person.user_id, request, key).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "transfer_id": done.transfer_id.get().to_string(),
            "quote": quote_json(&done.quote),
        })),
    ))
}

/// A top-up as every edge does it: the PIN and the card first, then the bank and the ledger.
pub async fn top_up_flow(
    state: &AppState,
    user_id: i64,
    request: CardMoneyRequest,
    key: IdempotencyKey,
) -> Result<zhifu_domain::wallet::funding::TopUp, ApiError> {
    let now_ms = state.now_ms();
    let (pin, token) = (request.pin, request.card_token);
    let card = state
        .with_people(move |people| {
            people.check_pin(user_id, &pin, now_ms)?;
            people.card(user_id, &token)
        })
        .await??;
    let (bank, engine) = (state.bank(), state.engine_shared());
    let amount_minor = request.amount_minor;
    let done = tokio::task::spawn_blocking(move || {
        domain_top_up(bank.as_ref(), &engine, user_id, &card, amount_minor, &key)
    })
    .await
    .map_err(|_| ApiError::Internal)??;
    Ok(done)
}

/// A withdrawal as every edge does it: PIN, card and the quota share (taken in one wallet
/// write); then the holds, the bank and the settlement outside it; the share given back when nothing moved.
pub async fn withdraw_flow(
    state: &AppState,
    user_id: i64,
    request: CardMoneyRequest,
    key: IdempotencyKey,
) -> Result<zhifu_domain::wallet::funding::Withdrawal, ApiError> {
    let now_ms = state.now_ms();
    let policy = state.withdrawal_policy();
    let (pin, token, amount_minor) = (request.pin, request.card_token, request.amount_minor);
    let key_text = key.as_str().to_owned();
    let open_key = key.clone();
    let (card, quote) = state
        .with_people(move |people| {
            people.check_pin(user_id, &pin, now_ms)?;
            let card = people.card(user_id, &token)?;
            let quote = people.quote_withdrawal(user_id, &key_text, amount_minor, &policy)?;
            // Recorded before the bank is asked, so that the reconciler finds it if nobody
            // settles it.
            reconcile::open(people, user_id, &open_key, &card.token, &quote, now_ms)?;
            Ok::<_, zhifu_domain::wallet::people::PeopleError>((card, quote))
        })
        .await??;
    let (bank, engine) = (state.bank(), state.engine_shared());
    let result = tokio::task::spawn_blocking(move || {
        let result = domain_withdraw(bank.as_ref(), &engine, user_id, &card, quote, &key);
        (result, key)
    })
    .await
    .map_err(|_| ApiError::Internal)?;
    let (result, key) = result;
    let result = state
        .with_people(move |people| {
            reconcile::conclude(people, user_id, &key, &result)?;
            Ok::<_, zhifu_domain::wallet::people::PeopleError>(result)
        })
        .await??;
    Ok(result?)
}

impl CardMoneyRequest {
    /// For the web pages, which parse yuan themselves.
    pub fn new(card_token: String, amount_minor: u64, pin: String) -> CardMoneyRequest {
        CardMoneyRequest {
            card_token,
            amount_minor,
            pin,
        }
    }
}

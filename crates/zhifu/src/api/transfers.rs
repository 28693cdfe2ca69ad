//! Transfers between people: send (held), list, accept, return.

use super::error::ApiError;
use super::people::{bearer_token, session_person};
use super::time::rfc3339_from_ms;
use crate::serve::AppState;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use zhifu_domain::wallet::identity::Phone;
use zhifu_domain::wallet::limits::LimitPolicy;
use zhifu_domain::wallet::p2p::{self, P2pError};
use zhifu_domain::wallet::people::Person;
use zhifu_store::P2pRow;

/// Transfers in one listing.
const LISTING_LEN: usize = 50;

pub(crate) fn transfer_json(row: &P2pRow, viewer: i64, now_ms: i64) -> Value {
    json!({
        "transfer_id": row.transfer_id,
        "direction": if row.payer_id == viewer { "sent" } else { "received" },
        "amount_minor": row.amount_minor,
        "state": p2p::shown_state(row, now_ms),
        "created_at": rfc3339_from_ms(row.created_ms),
        "arrives_at": rfc3339_from_ms(row.arrives_ms),
        "expires_at": rfc3339_from_ms(row.expires_ms),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    to_phone: String,
    amount_minor: u64,
    pin: String,
    /// `now` (the default), `2h` or `24h`: a window in which the payer can cancel.
    arrival: Option<String>,
}

/// `POST /api/v1/transfers` with an `Idempotency-Key`: held until the payee accepts.
pub async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SendRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = super::funding::idempotency_key(&headers)?;
    let Json(request) = body?;
    let payee_phone = Phone::parse(&request.to_phone)?;
    let arrival = match request.arrival.as_deref() {
        None => p2p::Arrival::Now,
        Some(text) => p2p::Arrival::parse(text).ok_or(ApiError::ArrivalInvalid)?,
    };
    let token = bearer_token(&headers)?;
    let (person, row) = send_flow(
        &state,
        Payer::Token(token),
        payee_phone,
        request.amount_minor,
        arrival,
        request.pin,
        key,
    )
    .await?;
    // Read after the send, whose own clock set the arrival: read before, a millisecond
    // boundary in between would show a transfer due now as scheduled.
    let now_ms = state.now_ms();
    Ok((
        StatusCode::CREATED,
        Json(transfer_json(&row, person.user_id, now_ms)),
    ))
}

/// `GET /api/v1/transfers`: sent and received, newest first.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let person = session_person(&state, &headers).await?;
    let now_ms = state.now_ms();
    let rows = transfers_of(&state, person.user_id, LISTING_LEN).await?;
    let transfers: Vec<Value> = rows
        .iter()
        .map(|r| transfer_json(r, person.user_id, now_ms))
        .collect();
    Ok(Json(json!({ "transfers": transfers })))
}

/// A person's transfers, sent and received, newest first: which ones from their wallet's
/// statement, then their rows (the ledger's reader is not held meanwhile).
pub(crate) async fn transfers_of(
    state: &AppState,
    user_id: i64,
    limit: usize,
) -> Result<Vec<P2pRow>, ApiError> {
    let ids = state
        .with_reader(move |ledger| p2p::transfer_ids_of(ledger, user_id, limit))
        .await??;
    Ok(state
        .with_people(move |people| p2p::rows_of(people, &ids))
        .await??)
}

/// `POST /api/v1/transfers/{id}/accept`
pub async fn accept(
    state: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
) -> Result<Json<Value>, ApiError> {
    resolve(state, headers, id, true).await
}

/// `POST /api/v1/transfers/{id}/cancel`: the payer takes back a delayed transfer in time.
pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let person = session_person(&state, &headers).await?;
    let now_ms = state.now_ms();
    let engine = state.engine_shared();
    let row = state
        .with_people(move |people| p2p::cancel(people, &engine, person.user_id, &id, now_ms))
        .await??;
    Ok(Json(transfer_json(&row, person.user_id, now_ms)))
}

/// `POST /api/v1/transfers/{id}/return`
pub async fn give_back(
    state: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
) -> Result<Json<Value>, ApiError> {
    resolve(state, headers, id, false).await
}

async fn resolve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    accept: bool,
) -> Result<Json<Value>, ApiError> {
    let person = session_person(&state, &headers).await?;
    let now_ms = state.now_ms();
    let engine = state.engine_shared();
    let row = state
        .with_people(move |people| {
            p2p::resolve(people, &engine, person.user_id, &id, accept, now_ms)
        })
        .await??;
    Ok(Json(transfer_json(&row, person.user_id, now_ms)))
}

impl From<P2pError> for ApiError {
    fn from(e: P2pError) -> ApiError {
        ApiError::P2p(e)
    }
}

/// Who pays: a person the edge already knows, or whoever holds a session token.
pub enum Payer {
    Person(Person),
    Token(String),
}

/// A transfer as every edge sends it: the PIN, then the transfer with the limits under the
/// payer's person lock.
///
/// Payments are the hot path. A payer in memory with the right PIN (one who paid a moment
/// ago) pays on a task of its own: the person lock and the ledger's answer are awaited, and no
/// thread is handed the request and back (a third less of the server's CPU per payment went
/// there, README). Anything that needs a read or a write first (a cold cache, a wrong PIN to
/// record, a refusal or a retry to answer) goes to the blocking pool, which fills the caches
/// for the next one. The task is spawned, not awaited in place, so that a client who hangs up
/// cannot cancel it between the ledger's commit and the payer's spending being counted.
pub async fn send_flow(
    state: &AppState,
    payer: Payer,
    payee_phone: Phone,
    amount_minor: u64,
    arrival: p2p::Arrival,
    pin: String,
    key: zhifu_domain::wallet::funding::IdempotencyKey,
) -> Result<(Person, P2pRow), ApiError> {
    let now_ms = state.now_ms();
    let people = state.people();
    let payer_in_memory = match &payer {
        Payer::Person(person) => Some(person.clone()),
        Payer::Token(token) => people.session_person_cached(token, now_ms),
    };
    if let Some(person) = payer_in_memory
        && people.pin_right_in_memory(person.user_id, &pin, now_ms)
    {
        let (people, engine) = (people.clone(), state.engine_shared());
        let (phone, key) = (payee_phone.clone(), key.clone());
        let payer_id = person.user_id;
        let paid = tokio::spawn(async move {
            let order = p2p::SendOrder {
                payer_id,
                payee_phone: &phone,
                amount_minor,
                arrival,
                key: &key,
                now_ms,
            };
            p2p::send_from_memory(&people, &engine, &LimitPolicy::default(), order).await
        });
        if let Some(row) = paid.await.map_err(|_| ApiError::Internal)?? {
            return Ok((person, row));
        }
    }
    let engine = state.engine_shared();
    state
        .with_people(move |people| {
            let person = match payer {
                Payer::Person(person) => person,
                Payer::Token(token) => people.session_person(&token, now_ms)?,
            };
            people.check_pin(person.user_id, &pin, now_ms)?;
            let order = p2p::SendOrder {
                payer_id: person.user_id,
                payee_phone: &payee_phone,
                amount_minor,
                arrival,
                key: &key,
                now_ms,
            };
            let row = p2p::send(people, &engine, &LimitPolicy::default(), order)?;
            Ok((person, row))
        })
        .await?
}

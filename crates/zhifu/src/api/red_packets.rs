//! Red packets: send, look, grab.

use super::error::ApiError;
use super::people::session_person;
use super::time::rfc3339_from_ms;
use crate::serve::AppState;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use zhifu_domain::wallet::red_packet::{RedPacketKind, RedPacketPolicy};
use zhifu_domain::wallet::red_packets::{self, RedPacketServiceError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// `normal` (every share holds `amount_minor`) or `lucky` (`amount_minor` split at random).
    kind: String,
    amount_minor: u64,
    shares: u32,
    pin: String,
}

/// `POST /api/v1/red-packets` with an `Idempotency-Key`.
pub async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SendRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = super::funding::idempotency_key(&headers)?;
    let Json(request) = body?;
    let kind = match request.kind.as_str() {
        "normal" => RedPacketKind::Normal {
            share_minor: request.amount_minor,
        },
        "lucky" => RedPacketKind::Lucky {
            total_minor: request.amount_minor,
        },
        _ => return Err(ApiError::RedPacketKindInvalid),
    };
    let person = session_person(&state, &headers).await?;
    let packet = send_flow(
        &state,
        person.user_id,
        kind,
        request.shares,
        request.pin,
        key,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "packet_id": packet.packet_id,
            "kind": packet.kind,
            "total_minor": packet.total_minor,
            "shares": packet.shares,
            // The page where people open it (`/r/{id}`); the API grabs at `…/grab`.
            "link": format!("/r/{}", packet.packet_id),
            "expires_at": rfc3339_from_ms(packet.expires_ms),
        })),
    ))
}

/// `POST /api/v1/red-packets/{id}/grab`: the next share, or the one taken before.
pub async fn grab(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(packet_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let person = session_person(&state, &headers).await?;
    let now_ms = state.now_ms();
    let engine = state.engine_shared();
    let got = state
        .with_people(move |people| {
            red_packets::grab(people, &engine, &packet_id, person.user_id, now_ms)
        })
        .await??;
    Ok(Json(
        json!({ "amount_minor": got.amount_minor, "first_time": got.first_time }),
    ))
}

impl From<RedPacketServiceError> for ApiError {
    fn from(e: RedPacketServiceError) -> ApiError {
        ApiError::RedPacket(e)
    }
}

/// A red packet as every edge sends it: the PIN, then the packet with the limits under the
/// sender's person lock.
pub async fn send_flow(
    state: &AppState,
    sender_id: i64,
    kind: RedPacketKind,
    shares: u32,
    pin: String,
    key: zhifu_domain::wallet::funding::IdempotencyKey,
) -> Result<zhifu_store::RedPacketRow, ApiError> {
    let now_ms = state.now_ms();
    let engine = state.engine_shared();
    Ok(state
        .with_people(move |people| {
            people.check_pin(sender_id, &pin, now_ms)?;
            red_packets::send(
                people,
                &engine,
                &RedPacketPolicy::default(),
                &zhifu_domain::wallet::limits::LimitPolicy::default(),
                sender_id,
                kind,
                shares,
                &key,
                now_ms,
                &mut crate::serve::OsRandom::new(),
            )
        })
        .await??)
}

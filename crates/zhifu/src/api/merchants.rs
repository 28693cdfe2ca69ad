//! Merchants over HTTP (SPEC §5, `docs/merchant-api.md`).
//!
//! - The operator's calls, under `/api/v1/operator` with the operator token: onboard a merchant
//!   or service provider (or a sub-merchant of one), register a merchant's public key, revoke
//!   one.
//! - The signed merchant API, under `/merchant/v1`, behind the layers of
//!   [`super::merchant_signing`]: the merchant's own record, another key (rotation, signed with
//!   a key already registered), the platform's public keys, and a service provider's
//!   onboarding of its sub-merchants.

use super::error::ApiError;
use super::merchant_signing::SignedBy;
use super::operator::require_operator;
use super::time::rfc3339_from_ms;
use crate::serve::AppState;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use zhifu_domain::acquiring::merchants::{
    self, KeyInfo, Merchant, MerchantError, MerchantId, MerchantKind, NewKey, Onboarding,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantRequest {
    name: String,
    /// `merchant` (the default) or `service_provider`.
    kind: Option<String>,
    /// Makes the new merchant a sub-merchant of this service provider.
    service_provider_id: Option<i64>,
    discount_rate_bps: u32,
    notify_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubMerchantRequest {
    name: String,
    discount_rate_bps: u32,
    notify_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    serial: String,
    /// `RSA-SHA256` or `Ed25519`.
    algorithm: String,
    /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    public_key: String,
}

impl KeyRequest {
    fn into_new_key(self) -> NewKey {
        NewKey {
            serial: self.serial,
            algorithm: self.algorithm,
            public_key_pem: self.public_key,
        }
    }
}

fn merchant_json(merchant: &Merchant) -> Value {
    json!({
        "merchant_id": merchant.id.get(),
        "name": merchant.name,
        "kind": merchant.kind.code(),
        "service_provider_id": merchant.service_provider_id.map(MerchantId::get),
        "discount_rate_bps": merchant.discount_rate_bps,
        "notify_url": merchant.notify_url,
        "created_at": rfc3339_from_ms(merchant.created_ms),
    })
}

fn key_json(key: &KeyInfo) -> Value {
    json!({
        "serial": key.serial.as_str(),
        "algorithm": key.algorithm.code(),
        "created_at": rfc3339_from_ms(key.created_ms),
        "revoked_at": key.revoked_ms.map(rfc3339_from_ms),
    })
}

/// A merchant id from a path; one that cannot be a merchant's is not found.
fn merchant_id(text: &str) -> Result<MerchantId, ApiError> {
    MerchantId::parse(text).ok_or(ApiError::Merchant(MerchantError::MerchantNotFound))
}

/// `POST /api/v1/operator/merchants`: onboards a direct merchant, a service provider, or
/// (with `service_provider_id`) a sub-merchant of a service provider.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<MerchantRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_operator(&state, &headers)?;
    let Json(request) = body?;
    let kind = match request.kind.as_deref() {
        None => MerchantKind::Merchant,
        Some(code) => MerchantKind::parse(code).ok_or(MerchantError::KindInvalid)?,
    };
    let provider = match request.service_provider_id {
        None => None,
        Some(id) => Some(MerchantId::new(id).ok_or(MerchantError::ServiceProviderInvalid)?),
    };
    let onboarding = Onboarding {
        name: request.name,
        kind,
        discount_rate_bps: request.discount_rate_bps,
        notify_url: request.notify_url,
    };
    let now_ms = state.now_ms();
    let merchant = state
        .with_people(move |people| merchants::onboard(people, &onboarding, provider, now_ms))
        .await??;
    Ok((StatusCode::CREATED, Json(merchant_json(&merchant))))
}

/// `POST /api/v1/operator/merchants/{id}/keys`: registers a merchant's public key.
pub async fn register_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<KeyRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_operator(&state, &headers)?;
    let Json(request) = body?;
    add_key(&state, merchant_id(&id)?, request.into_new_key()).await
}

async fn add_key(
    state: &AppState,
    merchant_id: MerchantId,
    key: NewKey,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now_ms = state.now_ms();
    let key = state
        .with_people(move |people| merchants::register_key(people, merchant_id, &key, now_ms))
        .await??;
    Ok((StatusCode::CREATED, Json(key_json(&key))))
}

/// `DELETE /api/v1/operator/merchants/{id}/keys/{serial}`: revokes a key at once; requests
/// signed with it are refused from then on.
pub async fn revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, serial)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    require_operator(&state, &headers)?;
    let merchant_id = merchant_id(&id)?;
    let now_ms = state.now_ms();
    let key = state
        .with_people(move |people| merchants::revoke_key(people, merchant_id, &serial, now_ms))
        .await??;
    Ok(Json(key_json(&key)))
}

/// `GET /merchant/v1/merchants/me`: the calling merchant's record and active keys.
pub async fn me(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
) -> Result<Json<Value>, ApiError> {
    let (merchant, keys) = state
        .with_people(move |people| {
            let merchant = merchants::merchant(people, merchant_id)?;
            Ok::<_, MerchantError>((merchant, merchants::active_keys(people, merchant_id)?))
        })
        .await??;
    let mut body = merchant_json(&merchant);
    body["keys"] = keys.iter().map(key_json).collect();
    Ok(Json(body))
}

/// `POST /merchant/v1/keys`: the merchant registers another key, signing with one it has
/// (rotation: add the new key, switch to it, then have the old one revoked).
pub async fn add_own_key(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
    body: Result<Json<KeyRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(request) = body?;
    add_key(&state, merchant_id, request.into_new_key()).await
}

/// `POST /merchant/v1/sub-merchants`: a service provider onboards a sub-merchant of its own.
pub async fn onboard_sub_merchant(
    State(state): State<AppState>,
    Extension(SignedBy(provider_id)): Extension<SignedBy>,
    body: Result<Json<SubMerchantRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(request) = body?;
    let onboarding = Onboarding {
        name: request.name,
        kind: MerchantKind::Merchant,
        discount_rate_bps: request.discount_rate_bps,
        notify_url: request.notify_url,
    };
    let now_ms = state.now_ms();
    let merchant = state
        .with_people(move |people| {
            merchants::onboard_sub_merchant(people, provider_id, &onboarding, now_ms)
        })
        .await??;
    Ok((StatusCode::CREATED, Json(merchant_json(&merchant))))
}

/// `GET /merchant/v1/platform-keys`: the platform's public keys by serial, to verify the
/// `Zhifu-Signature` of responses. Needs no signature: it is what a client fetches before it
/// can check anything, and it is public. Pin the serials you fetched first (or compare them
/// with the operator's); a key that appears later is a rotation to confirm, not to trust blindly.
pub async fn platform_keys(State(state): State<AppState>) -> Json<Value> {
    let keys: Vec<Value> = state
        .platform_keys()
        .all()
        .iter()
        .map(|key| {
            json!({
                "serial": key.serial(),
                "algorithm": key.algorithm().code(),
                "signature_type": key.algorithm().scheme(),
                "public_key": key.public_key_pem(),
            })
        })
        .collect();
    Json(json!({ "keys": keys }))
}

fn console_link_json(state: &AppState, merchant_id: MerchantId) -> Value {
    let (url, expires_ms) = crate::web::console::link_for(state, merchant_id);
    json!({ "url": url, "expires_at": rfc3339_from_ms(expires_ms) })
}

/// `POST /merchant/v1/console-links`: a link that opens the merchant console, for 5 minutes.
pub async fn console_link(
    State(state): State<AppState>,
    Extension(SignedBy(merchant_id)): Extension<SignedBy>,
) -> Json<Value> {
    Json(console_link_json(&state, merchant_id))
}

/// `POST /api/v1/operator/merchants/{id}/console-link`: the same, made by the operator for a
/// merchant (a shop without an integration of its own).
pub async fn operator_console_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_operator(&state, &headers)?;
    let merchant_id = merchant_id(&id)?;
    state
        .with_people(move |people| merchants::merchant(people, merchant_id))
        .await??;
    Ok((
        StatusCode::CREATED,
        Json(console_link_json(&state, merchant_id)),
    ))
}

/// Any other path under `/merchant/v1`, once the request's signature verified.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

//! The signed merchant API's two layers (`docs/merchant-api.md`): every request under
//! `/merchant/v1` is verified before its handler runs, and every response, errors included, is
//! signed by the platform on its way out.
//!
//! - [`verify_requests`] reads the body (at most [`REQUEST_BODY_BYTES_MAX`], else 413
//!   `BODY_TOO_LARGE`), has the domain verify the `Authorization` header over the method, the
//!   path and query as sent and the body's bytes, and hands the handler the merchant as a
//!   [`SignedBy`] extension. A refusal is a 401 with a stable code and reaches no handler.
//! - [`sign_responses`] signs `TIMESTAMP\nNONCE\nBODY\n` with the platform key of the scheme
//!   the request named (Ed25519 when it named none) into the `Zhifu-*` headers.
//!
//! The platform's keys are PKCS#8 PEM files beside the server's secret, made on first start:
//! see [`load_platform_keys`].

use super::error::ApiError;
use crate::serve::{AppState, OsRandom};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::io::Write as _;
use std::path::Path;
use zhifu_domain::acquiring::keys::KeyAlgorithm;
use zhifu_domain::acquiring::merchants::MerchantId;
use zhifu_domain::acquiring::platform_keys::{PlatformKey, PlatformKeys, PrivateKeyPem};
use zhifu_domain::acquiring::signature::SignatureError;

/// The largest request body the merchant API reads: its requests are small JSON documents.
pub const REQUEST_BODY_BYTES_MAX: usize = 64 * 1024;
/// The largest response body it signs: a day's bill of a busy merchant fits.
const RESPONSE_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Random bytes in a response nonce (32 hex characters).
const RESPONSE_NONCE_BYTES: usize = 16;

/// The merchant whose signature a request carried, for the handlers.
#[derive(Clone, Copy, Debug)]
pub struct SignedBy(pub MerchantId);

/// Verifies the request's signature (see the module's doc), then runs the handler.
pub async fn verify_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body).await?;
    let authorization = authorization(&parts.headers)?;
    let method = parts.method.as_str().to_owned();
    // As sent on the request line: the client signed these very bytes, escapes included.
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let (verifier, signed_body, now_ms) = (state.verifier().clone(), body.clone(), state.now_ms());
    let merchant_id = state
        .with_people(move |people| {
            verifier.verify_request(
                people,
                &method,
                &target,
                authorization.as_deref(),
                &signed_body,
                now_ms,
            )
        })
        .await??;
    parts.extensions.insert(SignedBy(merchant_id));
    Ok(next.run(Request::from_parts(parts, Body::from(body))).await)
}

/// The body's bytes, refused early when the declared length is over the cap.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_len.is_some_and(|len| len > REQUEST_BODY_BYTES_MAX as u64) {
        return Err(ApiError::BodyTooLarge);
    }
    axum::body::to_bytes(body, REQUEST_BODY_BYTES_MAX)
        .await
        .map_err(|_| ApiError::BodyTooLarge)
}

/// The one `Authorization` value, if any; two, or one that is not visible ASCII, is malformed.
fn authorization(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.contains_key(header::AUTHORIZATION) {
            true => Err(SignatureError::Malformed("send one Authorization header").into()),
            false => Ok(None),
        };
    };
    let text = value
        .to_str()
        .map_err(|_| SignatureError::Malformed("the header is not visible ASCII"))?;
    Ok(Some(text.to_owned()))
}

/// Signs the response of every merchant API call, whatever its status.
pub async fn sign_responses(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let algorithm = requested_algorithm(request.headers());
    let (parts, body) = next.run(request).await.into_parts();
    let (parts, body) = match axum::body::to_bytes(body, RESPONSE_BODY_BYTES_MAX).await {
        Ok(bytes) => (parts, bytes),
        Err(_) => {
            let (parts, body) = ApiError::Internal.into_response().into_parts();
            let bytes = axum::body::to_bytes(body, RESPONSE_BODY_BYTES_MAX)
                .await
                .unwrap_or_default();
            (parts, bytes)
        }
    };
    signed(&state, algorithm, parts, body).await
}

/// The scheme the request's `Authorization` header names, so that a merchant that only
/// verifies RSA gets RSA-signed answers, its refusals included; Ed25519 otherwise.
fn requested_algorithm(headers: &HeaderMap) -> KeyAlgorithm {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(' ').next())
        .and_then(KeyAlgorithm::from_scheme)
        .unwrap_or(KeyAlgorithm::Ed25519)
}

async fn signed(
    state: &AppState,
    algorithm: KeyAlgorithm,
    mut parts: axum::http::response::Parts,
    body: Bytes,
) -> Response {
    let Ok(headers) = signature_headers(state, algorithm, body.clone()).await else {
        return ApiError::Internal.into_response();
    };
    for (name, value) in headers {
        let value = HeaderValue::from_str(&value).expect("signature headers are ASCII");
        parts.headers.insert(name, value);
    }
    Response::from_parts(parts, Body::from(body))
}

/// The `Zhifu-*` headers that sign `TIMESTAMP\nNONCE\nBODY\n` with the platform's key of
/// `algorithm`: for responses and for notifications alike.
pub async fn signature_headers(
    state: &AppState,
    algorithm: KeyAlgorithm,
    body: Bytes,
) -> Result<[(&'static str, String); 5], ApiError> {
    let mut nonce_bytes = [0u8; RESPONSE_NONCE_BYTES];
    zhifu_domain::Random::fill(&mut OsRandom::new(), &mut nonce_bytes);
    let nonce: String = nonce_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let timestamp_s = state.now_ms().div_euclid(1000);
    let keys = state.platform_keys();
    let sign = move || keys.sign_response(algorithm, timestamp_s, &nonce, &body);
    // An RSA signature costs a millisecond or so: off the async threads.
    let signature = match algorithm {
        KeyAlgorithm::Ed25519 => sign(),
        KeyAlgorithm::RsaSha256 => tokio::task::spawn_blocking(sign)
            .await
            .map_err(|_| ApiError::Internal)?,
    };
    Ok([
        ("zhifu-timestamp", signature.timestamp),
        ("zhifu-nonce", signature.nonce),
        ("zhifu-serial", signature.serial),
        ("zhifu-signature", signature.signature),
        ("zhifu-signature-type", signature.signature_type.to_owned()),
    ])
}

/// The platform's signing keys: `<data-dir>/platform-ed25519.pem` and
/// `<data-dir>/platform-rsa.pem` (PKCS#8, readable by the owner only, like `secret.key`),
/// generated on first start. Several servers of one deployment share them by sharing the data
/// directory's secrets. The private keys are never printed.
pub fn load_platform_keys(data_dir: &Path) -> anyhow::Result<PlatformKeys> {
    Ok(PlatformKeys::new(
        load_platform_key(data_dir, "platform-ed25519.pem", KeyAlgorithm::Ed25519)?,
        load_platform_key(data_dir, "platform-rsa.pem", KeyAlgorithm::RsaSha256)?,
    ))
}

fn load_platform_key(
    data_dir: &Path,
    file_name: &str,
    algorithm: KeyAlgorithm,
) -> anyhow::Result<PlatformKey> {
    let path = data_dir.join(file_name);
    let pem = match std::fs::read_to_string(&path) {
        Ok(pem) => PrivateKeyPem::new(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_platform_key(data_dir, &path, algorithm)?
        }
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    PlatformKey::from_pkcs8_pem(algorithm, &pem)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes a new key; if another process wrote one meanwhile, that one wins.
fn create_platform_key(
    data_dir: &Path,
    path: &Path,
    algorithm: KeyAlgorithm,
) -> anyhow::Result<PrivateKeyPem> {
    std::fs::create_dir_all(data_dir)?;
    let pem = PlatformKey::generate_pkcs8_pem(algorithm)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(pem.as_bytes())?;
            file.sync_all()?;
            Ok(pem)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(PrivateKeyPem::new(std::fs::read_to_string(path)?))
        }
        Err(e) => anyhow::bail!("cannot write {}: {e}", path.display()),
    }
}

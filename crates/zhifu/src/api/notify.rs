//! The notification deliverer: POSTs the outbox's due events to merchants' `notify_url`s
//! (SPEC §5; the schedule and the seal are `zhifu_domain::acquiring::notifications`).
//!
//! One task looks for due events every second, and at once when a payment or refund wakes it.
//! Each delivery runs on its own task with a 5-second timeout, at most
//! [`IN_FLIGHT_MAX`] at once and [`IN_FLIGHT_PER_MERCHANT_MAX`] per merchant, so a slow or
//! dead endpoint holds up neither payments (which only write the outbox) nor other merchants.
//!
//! The body (`docs/merchant-api.md`):
//! `{"id", "create_time", "event_type", "resource_type": "encrypt-resource", "summary",
//! "resource": {"algorithm": "AEAD_AES_256_GCM", "original_type", "ciphertext", "nonce",
//! "associated_data"}}`, signed in the `Zhifu-*` headers like every API response. The sealed
//! resource is the order (for `TRANSACTION.SUCCESS`) or the refund (`REFUND.SUCCESS`) as the
//! query endpoints show it.

use super::merchant_signing::signature_headers;
use super::orders::{order_json, refund_json};
use super::time::rfc3339_from_ms;
use crate::serve::AppState;
use anyhow::Context;
use axum::body::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zhifu_domain::acquiring::keys::KeyAlgorithm;
use zhifu_domain::acquiring::merchants::{self, MerchantId};
use zhifu_domain::acquiring::notifications::{self, Due, NONCE_LEN, random_text};
use zhifu_domain::acquiring::orders::SUCCESS;
use zhifu_store::NotificationRow;

pub const IN_FLIGHT_MAX: usize = 32;
pub const IN_FLIGHT_PER_MERCHANT_MAX: usize = 4;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Notification ids being delivered, and how many per merchant.
#[derive(Default)]
struct InFlight {
    ids: Vec<i64>,
    per_merchant: HashMap<i64, usize>,
    /// Deliveries that finished since the outbox was last read: that read may have begun
    /// before their attempt was recorded and still show them due. Cleared before every read,
    /// so it holds at most what was in flight across two reads: `2 × IN_FLIGHT_MAX`.
    finished_since_read: Vec<i64>,
}

/// The client that delivers: http, or https with the server's certificate checked against
/// the system's roots and those in `ca_file` (PEM). No redirects: the event goes to the URL
/// the merchant registered, nowhere else. Fails at start-up if `ca_file` holds no certificate.
pub fn client(ca_file: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("--notify-ca-file {}: cannot read it", path.display()))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|roots| !roots.is_empty())
            .with_context(|| {
                format!(
                    "--notify-ca-file {}: no PEM certificate in it",
                    path.display()
                )
            })?;
        builder = builder.tls_certs_merge(roots);
    }
    builder
        .build()
        .context("the notification client cannot be built (TLS roots)")
}

/// Runs until the server stops (the task is aborted then; an event in flight is delivered
/// again later, which the merchant's dedupe by event id absorbs).
pub async fn deliver(state: AppState, client: reqwest::Client) {
    let in_flight: Arc<Mutex<InFlight>> = Arc::default();
    let notifier = state.notifier();
    loop {
        tokio::select! {
            _ = notifier.notified() => {}
            _ = tokio::time::sleep(LOOK_EVERY) => {}
        }
        in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finished_since_read
            .clear();
        let now_ms = state.now_ms();
        let due = state
            .with_people(move |people| {
                notifications::due(people, now_ms, notifications::DUE_BATCH_MAX)
            })
            .await;
        let Ok(Ok(due)) = due else {
            eprintln!("zhifu serve: notifications: the outbox cannot be read now");
            continue;
        };
        for item in due {
            let (id, merchant_id) = (item.notification.id, item.notification.merchant_id);
            {
                let mut guard = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                let InFlight {
                    ids,
                    per_merchant,
                    finished_since_read,
                } = &mut *guard;
                let merchant_count = per_merchant.get(&merchant_id).copied().unwrap_or(0);
                if ids.contains(&id)
                    || finished_since_read.contains(&id)
                    || ids.len() >= IN_FLIGHT_MAX
                    || merchant_count >= IN_FLIGHT_PER_MERCHANT_MAX
                {
                    continue;
                }
                ids.push(id);
                per_merchant.insert(merchant_id, merchant_count + 1);
            }
            let (state, client, in_flight) = (state.clone(), client.clone(), in_flight.clone());
            tokio::spawn(async move {
                deliver_one(&state, &client, item).await;
                let mut guard = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                let InFlight {
                    ids,
                    per_merchant,
                    finished_since_read,
                } = &mut *guard;
                ids.retain(|&other| other != id);
                finished_since_read.push(id);
                if let Some(count) = per_merchant.get_mut(&merchant_id) {
                    *count -= 1;
                    if *count == 0 {
                        per_merchant.remove(&merchant_id);
                    }
                }
            });
        }
    }
}

async fn deliver_one(state: &AppState, client: &reqwest::Client, due: Due) {
    let notification = due.notification;
    let outcome = match due.notify_url {
        None => ("no notify_url".to_owned(), false),
        Some(url) => match render(state, &notification).await {
            None => ("not renderable".to_owned(), false),
            Some((algorithm, body)) => post(state, client, &url, algorithm, body).await,
        },
    };
    let now_ms = state.now_ms();
    let recorded = state
        .with_people(move |people| {
            notifications::record_attempt(people, &notification, &outcome.0, outcome.1, now_ms)
        })
        .await;
    if !matches!(recorded, Ok(Ok(_))) {
        eprintln!("zhifu serve: notifications: an attempt could not be recorded");
    }
}

async fn post(
    state: &AppState,
    client: &reqwest::Client,
    url: &str,
    algorithm: KeyAlgorithm,
    body: Bytes,
) -> (String, bool) {
    let Ok(headers) = signature_headers(state, algorithm, body.clone()).await else {
        return ("signing failed".into(), false);
    };
    let mut request = client.post(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    match request.body(body).send().await {
        Ok(response) => {
            let status = response.status();
            (status.as_u16().to_string(), status.is_success())
        }
        Err(e) => (failure(&e), false),
    }
}

/// What the delivery log says of a request that got no answer. A TLS failure names rustls's
/// reason (an untrusted or expired certificate, a name that does not match): the merchant
/// can fix that, while "connection refused" would send them looking in the wrong place.
/// Nothing here can hold a secret: reasons, never the body or the headers.
fn failure(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timeout".into();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    // A bounded walk: error chains are short, and a cycle must not hang the deliverer. An I/O
    // error wrapping another is stepped into (its `source` would skip the wrapped error).
    for _ in 0..16 {
        let Some(current) = source else { break };
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return format!("tls: {tls}");
        }
        source = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    match error.is_connect() {
        true => "connection failed".into(),
        false => "request failed".into(),
    }
}

/// The signed body of a notification: the event with its resource sealed under the merchant's
/// key, and the algorithm of the merchant's newest key (so a merchant that verifies only RSA
/// gets RSA). None when the event's subject is gone, which is a bug to log, not to retry fast.
async fn render(state: &AppState, notification: &NotificationRow) -> Option<(KeyAlgorithm, Bytes)> {
    let (merchant_id, subject) = (
        MerchantId::new(notification.merchant_id)?,
        notification.resource.clone(),
    );
    let orders = state.orders().clone();
    let (resource, original_type, key, algorithm) = state
        .with_people(
            move |people| -> Option<(Value, &'static str, _, KeyAlgorithm)> {
                let key = notifications::notify_key(people, merchant_id).ok()?;
                let algorithm = merchants::active_keys(people, merchant_id)
                    .ok()?
                    .last()
                    .map_or(KeyAlgorithm::Ed25519, |key| key.algorithm);
                let mut parts = subject.split(':');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("order"), Some(order_id), None) => {
                        let order = orders.order(people, order_id.parse().ok()?).ok()?;
                        let mut resource = order_json(&orders, &order, order.paid_ms?);
                        // The event is the payment: as it was then, whatever came after.
                        resource["trade_state"] = SUCCESS.into();
                        Some((resource, "transaction", key, algorithm))
                    }
                    (Some("refund"), Some(order_id), Some(refund_id)) => {
                        let order = orders.order(people, order_id.parse().ok()?).ok()?;
                        let refund_id: i64 = refund_id.parse().ok()?;
                        let refunds = orders.refunds_of_order(people, order.id).ok()?;
                        let refund = refunds.iter().find(|r| r.id == refund_id)?;
                        Some((refund_json(&order, refund), "refund", key, algorithm))
                    }
                    _ => None,
                }
            },
        )
        .await
        .ok()??;
    let nonce = random_text(NONCE_LEN);
    let plaintext = serde_json::to_vec(&resource).ok()?;
    let ciphertext = notifications::seal(&key, &nonce, original_type, &plaintext);
    let summary = match original_type {
        "transaction" => "payment succeeded",
        _ => "refund succeeded",
    };
    let body = json!({
        "id": notification.event_id,
        "create_time": rfc3339_from_ms(notification.created_ms),
        "event_type": notification.event_type,
        "resource_type": "encrypt-resource",
        "summary": summary,
        "resource": {
            "algorithm": "AEAD_AES_256_GCM",
            "original_type": original_type,
            "ciphertext": ciphertext,
            "nonce": nonce,
            "associated_data": original_type,
        },
    });
    Some((algorithm, Bytes::from(serde_json::to_vec(&body).ok()?)))
}

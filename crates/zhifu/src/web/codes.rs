//! The wallet's code pages: my receive code, my pay code (refreshing), and scanning someone's
//! code — from a photo or pasted text — to pay them.

use super::{LangQuery, LoggedIn, fresh_key, lang, with_lang_cookie, yuan_to_minor};
use crate::serve::AppState;
use crate::web::texts::Texts;
use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use zhifu_qr_image::{RenderOptions, ScanLimits, render_svg, scan};

/// The most a scanned picture may weigh; the route's body limit is a little above it.
pub const PHOTO_BYTES_MAX: usize = 10 * 1024 * 1024;
/// How often the pay code page asks for a new code: half the code's TTL.
const PAY_CODE_REFRESH_S: u32 = 30;

#[derive(Template, WebTemplate)]
#[template(path = "receive.html")]
struct ReceivePage {
    t: &'static Texts,
    error: Option<&'static str>,
    svg: Option<String>,
    payload: String,
    amount: Option<String>,
}

#[derive(Deserialize)]
pub struct ReceiveQuery {
    amount: Option<String>,
    lang: Option<String>,
}

/// `/receive[?amount=]`: the person's receive code as a QR code.
pub async fn receive_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Query(query): Query<ReceiveQuery>,
) -> Response {
    let lang = lang(&headers, query.lang.as_deref());
    let t = lang.texts();
    let mut page = ReceivePage {
        t,
        error: None,
        svg: None,
        payload: String::new(),
        amount: None,
    };
    let amount_minor = match query.amount.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match yuan_to_minor(text) {
            Some(minor) => {
                page.amount = Some(crate::api::wallet::display(
                    minor as i128,
                    zhifu_ledger::Currency::CNY,
                ));
                Some(minor)
            }
            None => {
                page.error = Some(t.amount_invalid);
                return with_lang_cookie(page.into_response(), lang);
            }
        },
    };
    match crate::api::codes::receive_payload(&state, person.user_id, amount_minor).await {
        Ok(payload) => {
            page.svg = render_svg(&payload, RenderOptions::default()).ok();
            page.payload = payload;
        }
        Err(e) => page.error = Some(t.error(e.code())),
    }
    with_lang_cookie(page.into_response(), lang)
}

#[derive(Template, WebTemplate)]
#[template(path = "pay_code.html")]
struct PayCodePage {
    t: &'static Texts,
    error: Option<&'static str>,
    svg: Option<String>,
    digits: String,
}

/// `/pay-code`: a fresh one-time code each time the page loads (every 30 s by itself).
pub async fn pay_code_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Query(query): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, query.lang.as_deref());
    let t = lang.texts();
    let now_ms = state.now_ms();
    let codes = state.pay_codes().clone();
    let issued = state
        .with_people(move |people| {
            codes.issue(
                people,
                person.user_id,
                &mut crate::serve::OsRandom::new(),
                now_ms,
            )
        })
        .await;
    let mut page = PayCodePage {
        t,
        error: None,
        svg: None,
        digits: String::new(),
    };
    match issued {
        Ok(Ok(issued)) => {
            page.svg = render_svg(&issued.code, RenderOptions::default()).ok();
            // Grouped by four, as cashiers read them out.
            page.digits = issued
                .code
                .as_bytes()
                .chunks(4)
                .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
        }
        _ => page.error = Some(t.unavailable),
    }
    let mut response = with_lang_cookie(page.into_response(), lang);
    // The page asks for a new code by itself; no script needed.
    if let Ok(value) = HeaderValue::from_str(&PAY_CODE_REFRESH_S.to_string()) {
        response.headers_mut().insert("refresh", value);
    }
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

#[derive(Template, WebTemplate)]
#[template(path = "scan.html")]
struct ScanPage {
    t: &'static Texts,
    error: Option<&'static str>,
    /// Set once a code was read: whom the payment goes to (the masked name in the code).
    payee: Option<String>,
    payload: String,
    preset: Option<String>,
    key: String,
}

impl ScanPage {
    fn empty(t: &'static Texts) -> ScanPage {
        ScanPage {
            t,
            error: None,
            payee: None,
            payload: String::new(),
            preset: None,
            key: fresh_key(),
        }
    }
}

/// `/scan`: upload a picture of a code, or paste its text.
pub async fn scan_page(
    headers: HeaderMap,
    _: LoggedIn,
    Query(query): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, query.lang.as_deref());
    with_lang_cookie(ScanPage::empty(lang.texts()).into_response(), lang)
}

/// `POST /scan` (multipart): reads the code from the photo or the text, then asks for the
/// amount (unless the code presets one) and the PIN.
pub async fn read_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    _: LoggedIn,
    multipart: Multipart,
) -> Response {
    let t = lang(&headers, None).texts();
    let mut page = ScanPage::empty(t);
    let payload = match payload_from_form(multipart).await {
        Ok(payload) => payload,
        Err(code) => {
            page.error = Some(t.error(code));
            return page.into_response();
        }
    };
    page.payload = payload.clone();
    match state.receive_codes().read(&payload) {
        Ok((_, preset)) => {
            let decoded = zhifu_codes::decode(payload.trim()).expect("read decoded it");
            page.payee = Some(decoded.merchant_name.as_str().to_owned());
            page.preset = preset.map(|minor| {
                crate::api::wallet::display(minor as i128, zhifu_ledger::Currency::CNY)
            });
        }
        // Not a person's code: a merchant's, perhaps.
        Err(e) => match crate::api::orders::preview_merchant_code(&state, payload).await {
            Ok((order, name)) => {
                page.payee = Some(name);
                page.preset = order.map(|order| {
                    crate::api::wallet::display(
                        order.amount_minor as i128,
                        zhifu_ledger::Currency::CNY,
                    )
                });
            }
            Err(_) => page.error = Some(t.error(e.code())),
        },
    }
    page.into_response()
}

/// `/pay/{reference}`: an in-wallet order a merchant sent the person to: whom, how much, and
/// the PIN to confirm.
pub async fn pay_order_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    _: LoggedIn,
    Path(reference): Path<String>,
) -> Response {
    let t = lang(&headers, None).texts();
    let mut page = ScanPage::empty(t);
    match crate::api::orders::preview_merchant_code(&state, reference.clone()).await {
        Ok((Some(order), name)) => {
            page.payload = reference;
            page.payee = Some(name);
            page.preset = Some(crate::api::wallet::display(
                order.amount_minor as i128,
                zhifu_ledger::Currency::CNY,
            ));
        }
        Ok((None, _)) => page.error = Some(t.error("ORDER_NOT_FOUND")),
        Err(e) => page.error = Some(t.error(e.code())),
    }
    page.into_response()
}

/// The pasted text, else the first code found in the uploaded picture.
async fn payload_from_form(mut multipart: Multipart) -> Result<String, &'static str> {
    let (mut pasted, mut photo) = (String::new(), Vec::new());
    // Two fields are expected; a form with more is not ours.
    for _ in 0..4 {
        let Ok(Some(field)) = multipart.next_field().await else {
            break;
        };
        match field.name() {
            Some("payload") => pasted = field.text().await.map_err(|_| "IMAGE_TOO_LARGE")?,
            Some("photo") => photo = field.bytes().await.map_err(|_| "IMAGE_TOO_LARGE")?.to_vec(),
            _ => {}
        }
    }
    if !pasted.trim().is_empty() {
        return Ok(pasted.trim().to_owned());
    }
    if photo.is_empty() {
        return Err("AMOUNT_MISSING");
    }
    let limits = ScanLimits {
        bytes_max: PHOTO_BYTES_MAX,
        ..ScanLimits::default()
    };
    let codes = tokio::task::spawn_blocking(move || scan(&photo, limits))
        .await
        .map_err(|_| "INTERNAL")?
        .map_err(|e| e.as_str())?;
    codes.into_iter().next().ok_or("NO_CODE_FOUND")
}

#[derive(Deserialize)]
pub struct CodePaymentForm {
    payload: String,
    amount: String,
    pin: String,
    key: String,
}

/// `POST /scan/pay`: pays the code read before.
pub async fn pay_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Form(form): Form<CodePaymentForm>,
) -> Response {
    let t = lang(&headers, None).texts();
    let failed = |error: &'static str| {
        let mut page = ScanPage::empty(t);
        page.error = Some(error);
        page.into_response()
    };
    let Some(amount_minor) = yuan_to_minor(form.amount.trim()) else {
        return failed(t.amount_invalid);
    };
    let Some(key) = zhifu_domain::wallet::funding::IdempotencyKey::parse(&form.key) else {
        return failed(t.unavailable);
    };
    let paid = match state.receive_codes().read(&form.payload) {
        Ok(_) => crate::api::codes::pay_flow(
            &state,
            person.user_id,
            form.payload,
            Some(amount_minor),
            form.pin,
            key,
        )
        .await
        .map(|_| ()),
        Err(_) => crate::api::orders::pay_merchant_flow(
            &state,
            person.user_id,
            form.payload,
            Some(amount_minor),
            form.pin,
            key,
        )
        .await
        .map(|_| ()),
    };
    match paid {
        Ok(()) => Redirect::to("/wallet").into_response(),
        Err(e) => failed(t.error(e.code())),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "awaiting.html")]
struct AwaitingPage {
    t: &'static Texts,
    error: Option<&'static str>,
    /// (transaction id, merchant name, amount in yuan, description)
    orders: Vec<(String, String, String, String)>,
}

/// `/merchant-payments`: pay-code orders a merchant made from this person's code, waiting for
/// the PIN (above 1,000 yuan, or past the day's payments without it).
pub async fn awaiting_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
) -> Response {
    awaiting_with(&state, &headers, person.user_id, None).await
}

async fn awaiting_with(
    state: &AppState,
    headers: &HeaderMap,
    user_id: i64,
    error: Option<&'static str>,
) -> Response {
    let t = lang(headers, None).texts();
    let now_ms = state.now_ms();
    let orders = state.orders().clone();
    let waiting = state
        .with_people(move |people| {
            let waiting = orders.awaiting(people, user_id, now_ms)?;
            waiting
                .into_iter()
                .map(|order| {
                    let id = zhifu_domain::acquiring::merchants::MerchantId::new(order.merchant_id)
                        .expect("stored ids are positive");
                    let name = zhifu_domain::acquiring::merchants::merchant(people, id)?.name;
                    Ok((
                        order.id.to_string(),
                        name,
                        crate::api::wallet::display(
                            order.amount_minor as i128,
                            zhifu_ledger::Currency::CNY,
                        ),
                        order.description,
                    ))
                })
                .collect::<Result<Vec<_>, zhifu_domain::acquiring::orders::OrderError>>()
        })
        .await;
    let page = match waiting {
        Ok(Ok(orders)) => AwaitingPage { t, error, orders },
        _ => AwaitingPage {
            t,
            error: Some(t.unavailable),
            orders: Vec::new(),
        },
    };
    page.into_response()
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    pin: String,
}

/// `POST /merchant-payments/{id}/confirm`: pays a waiting order with the PIN.
pub async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Path(id): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let t = lang(&headers, None).texts();
    let Some(order_id) = id.parse::<i64>().ok().filter(|&id| id > 0) else {
        return awaiting_with(
            &state,
            &headers,
            person.user_id,
            Some(t.error("ORDER_NOT_FOUND")),
        )
        .await;
    };
    let (payer_id, now_ms) = (person.user_id, state.now_ms());
    let (orders, engine) = (state.orders().clone(), state.engine_shared());
    let paid = state
        .with_people(move |people| {
            people.check_pin(payer_id, &form.pin, now_ms)?;
            orders.confirm(
                people,
                &engine,
                &zhifu_domain::wallet::limits::LimitPolicy::default(),
                payer_id,
                order_id,
                now_ms,
            )
        })
        .await;
    state.wake_notifier();
    match paid {
        Ok(Ok(_)) => Redirect::to("/wallet").into_response(),
        Ok(Err(e)) => {
            let code = crate::api::error::ApiError::Order(e).code();
            awaiting_with(&state, &headers, person.user_id, Some(t.error(code))).await
        }
        Err(_) => awaiting_with(&state, &headers, person.user_id, Some(t.unavailable)).await,
    }
}

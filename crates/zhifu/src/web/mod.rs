//! The web wallet: server-rendered pages, mobile first, no front-end build step, in Simplified
//! Chinese and English. The session is the API's bearer token in an HttpOnly, SameSite=Lax
//! cookie (Lax keeps other sites from posting our forms with it).

pub mod codes;
pub mod console;
mod texts;

use crate::api::error::ApiError;
use crate::api::funding::CardMoneyRequest;
use crate::api::wallet::{display, statement_page, wallet_account};
use crate::serve::AppState;
use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use texts::{Lang, Texts};
use zhifu_domain::wallet::identity::Phone;
use zhifu_domain::wallet::limits::RealNameClass;
use zhifu_domain::wallet::people::Person;

const SESSION_COOKIE: &str = "zhifu_session";
const LANG_COOKIE: &str = "zhifu_lang";
const STATEMENT_LEN: usize = 20;

#[derive(Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
    /// An error code to show once (after a redirect).
    notice: Option<String>,
}

/// The page's language: `?lang=`, then the cookie, then the browser's preference; Chinese
/// unless the browser prefers something else that we speak.
fn lang(headers: &HeaderMap, query: Option<&str>) -> Lang {
    if let Some(lang) = query.and_then(Lang::parse) {
        return lang;
    }
    if let Some(lang) = cookie(headers, LANG_COOKIE).and_then(|v| Lang::parse(&v)) {
        return lang;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match accept.trim_start().to_ascii_lowercase() {
        first if first.starts_with("en") => Lang::En,
        _ => Lang::Zh,
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Remembers the language the person chose (not a secret; a year).
fn with_lang_cookie(mut response: Response, lang: Lang) -> Response {
    let value = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
        lang.code()
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn person(state: &AppState, headers: &HeaderMap) -> Option<(Person, String)> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let now_ms = state.now_ms();
    let lookup = token.clone();
    let person = state
        .with_people(move |people| people.session_person(&lookup, now_ms))
        .await
        .ok()?
        .ok()?;
    Some((person, token))
}

/// The person a page is for; anyone not logged in is sent to log in first.
pub struct LoggedIn(Person);

impl axum::extract::FromRequestParts<AppState> for LoggedIn {
    type Rejection = Redirect;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<LoggedIn, Redirect> {
        match person(state, &parts.headers).await {
            Some((person, _)) => Ok(LoggedIn(person)),
            None => Err(Redirect::to("/login")),
        }
    }
}

/// `/`: the wallet when logged in, else the log-in page.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Redirect {
    match person(&state, &headers).await {
        Some(_) => Redirect::to("/wallet"),
        None => Redirect::to("/login"),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    t: &'static Texts,
    error: Option<&'static str>,
    phone: String,
}

pub async fn login_page(headers: HeaderMap, Query(query): Query<LangQuery>) -> Response {
    let lang = lang(&headers, query.lang.as_deref());
    let page = LoginPage {
        t: lang.texts(),
        error: None,
        phone: String::new(),
    };
    with_lang_cookie(page.into_response(), lang)
}

#[derive(Deserialize)]
pub struct LoginForm {
    phone: String,
    password: String,
    lang: Option<String>,
}

pub async fn log_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let lang = lang(&headers, form.lang.as_deref());
    let t = lang.texts();
    let failed = |error: &'static str, phone: String| {
        LoginPage {
            t,
            error: Some(error),
            phone,
        }
        .into_response()
    };
    let Ok(phone) = Phone::parse(&form.phone) else {
        return failed(t.credentials_wrong, form.phone);
    };
    let now_ms = state.now_ms();
    let password = form.password;
    let session = state
        .with_people(move |people| {
            people.log_in(
                &phone,
                &password,
                now_ms,
                &mut crate::serve::OsRandom::new(),
            )
        })
        .await;
    match session {
        Ok(Ok(session)) => {
            let mut response = Redirect::to("/wallet").into_response();
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
                session.token,
                (session.expires_ms - now_ms) / 1000
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            with_lang_cookie(response, lang)
        }
        Ok(Err(zhifu_domain::wallet::people::PeopleError::CredentialsWrong)) => {
            failed(t.credentials_wrong, form.phone)
        }
        _ => failed(t.unavailable, form.phone),
    }
}

pub async fn log_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        let _ = state
            .with_people(move |people| people.log_out(&token))
            .await;
    }
    let mut response = Redirect::to("/login").into_response();
    let expired = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `2026-11-25 01:18`: China Standard Time (UTC+8), as people in the wallet's market read it.
fn china_time(ms: i64) -> String {
    const OFFSET_MS: i64 = 8 * 3_600_000;
    crate::api::time::rfc3339_from_ms(ms + OFFSET_MS)[..16].replace('T', " ")
}

struct EntryView {
    id: String,
    at: String,
    what: &'static str,
    /// Held or returned, for money that was set aside and not (yet) moved.
    state: Option<&'static str>,
    amount: String,
    sign_class: &'static str,
}

/// How an entry reads to a person: a hold is money set aside (in brackets, "held"), its
/// posting the money leaving, its void or expiry the money coming back ("returned"), so that
/// one withdrawal does not read as two.
fn entry_view(t: &'static Texts, entry: &zhifu_store::StatementEntry) -> EntryView {
    use zhifu_ledger::TransferKind;
    let credit = entry.side == zhifu_store::Side::Credit;
    let amount = display(i128::from(entry.amount_minor), zhifu_ledger::Currency::CNY);
    let signed = format!("{}{amount}", if credit { "+" } else { "-" });
    let (state, amount) = match entry.kind {
        TransferKind::Pending => (Some(t.held), format!("({signed})")),
        TransferKind::VoidPending | TransferKind::Expiry => {
            (Some(t.returned), format!("({amount})"))
        }
        TransferKind::Posted | TransferKind::PostPending => (None, signed),
    };
    EntryView {
        id: entry.transfer_id.get().to_string(),
        at: china_time(entry.timestamp_ns / 1_000_000),
        what: t.transfer_code(entry.code),
        state,
        amount,
        sign_class: match (state, credit) {
            (Some(_), _) => "muted",
            (None, true) => "plus",
            (None, false) => "minus",
        },
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "wallet.html")]
struct WalletPage {
    t: &'static Texts,
    phone_masked: String,
    class_name: &'static str,
    verify_prompt: bool,
    balance: String,
    entries: Vec<EntryView>,
    incoming: Vec<IncomingView>,
    notice: Option<&'static str>,
}

struct IncomingView {
    id: String,
    amount: String,
    expires: String,
}

pub async fn wallet_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Result<Response, ApiError> {
    let lang = lang(&headers, query.lang.as_deref());
    let t = lang.texts();
    let Some((person, _)) = person(&state, &headers).await else {
        return Ok(Redirect::to("/login").into_response());
    };
    let user_id = person.user_id;
    let class = state
        .with_people(move |people| people.class(user_id))
        .await??;
    let account = wallet_account(&state, user_id).await?;
    let entries = statement_page(&state, user_id, None, STATEMENT_LEN).await?;
    let entries = entries.iter().map(|entry| entry_view(t, entry)).collect();
    let now_ms = state.now_ms();
    let rows = crate::api::transfers::transfers_of(&state, user_id, 50).await?;
    let incoming = rows
        .iter()
        .filter(|row| row.payee_id == user_id)
        .filter(|row| zhifu_domain::wallet::p2p::shown_state(row, now_ms) == "held")
        .map(|row| IncomingView {
            id: row.transfer_id.clone(),
            amount: display(i128::from(row.amount_minor), account.currency),
            expires: china_time(row.expires_ms),
        })
        .collect();
    let page = WalletPage {
        t,
        phone_masked: person.phone_masked,
        class_name: t.class_name(class),
        verify_prompt: class == RealNameClass::Unverified,
        balance: display(account.balances.posted_net_minor(), account.currency),
        entries,
        incoming,
        notice: query.notice.as_deref().map(|code| t.error(code)),
    };
    Ok(with_lang_cookie(page.into_response(), lang))
}

#[derive(Template, WebTemplate)]
#[template(path = "receipt.html")]
struct ReceiptPage {
    t: &'static Texts,
    transfer_id: String,
    at: String,
    what: &'static str,
    amount: String,
    sign_class: &'static str,
    counterparty: String,
    balance_after: String,
}

/// `/receipts/{id}`: one of the person's entries; anyone else's is not found.
pub async fn receipt_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    axum::extract::Path(transfer_id): axum::extract::Path<String>,
    Query(query): Query<LangQuery>,
) -> Result<Response, ApiError> {
    use crate::api::wallet::{Counterparty, receipt_entry};
    let lang = lang(&headers, query.lang.as_deref());
    let t = lang.texts();
    let (entry, counterparty) = receipt_entry(&state, person.user_id, &transfer_id).await?;
    let credit = entry.side == zhifu_store::Side::Credit;
    let amount = display(i128::from(entry.amount_minor), zhifu_ledger::Currency::CNY);
    let page = ReceiptPage {
        t,
        transfer_id: entry.transfer_id.get().to_string(),
        at: china_time(entry.timestamp_ns / 1_000_000),
        what: t.transfer_code(entry.code),
        amount: format!("{}{amount}", if credit { "+" } else { "-" }),
        sign_class: if credit { "plus" } else { "minus" },
        counterparty: match counterparty {
            Counterparty::Person(phone_masked) => phone_masked,
            Counterparty::Merchant(name) => name,
            Counterparty::BankCard => t.bank_card.into(),
            Counterparty::Fee => t.fee_income.into(),
            Counterparty::RedPacket => t.red_packet.into(),
            Counterparty::Institution => t.brand.into(),
        },
        balance_after: display(
            entry.balances_after.posted_net_minor(),
            zhifu_ledger::Currency::CNY,
        ),
    };
    Ok(with_lang_cookie(page.into_response(), lang))
}

#[derive(Template, WebTemplate)]
#[template(path = "signup.html")]
struct SignUpPage {
    t: &'static Texts,
    error: Option<&'static str>,
    phone: String,
}

pub async fn signup_page(headers: HeaderMap, Query(query): Query<LangQuery>) -> Response {
    let lang = lang(&headers, query.lang.as_deref());
    let page = SignUpPage {
        t: lang.texts(),
        error: None,
        phone: String::new(),
    };
    with_lang_cookie(page.into_response(), lang)
}

/// Signs up, opens the wallet and logs in, in one step.
pub async fn sign_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let lang = lang(&headers, form.lang.as_deref());
    let t = lang.texts();
    let failed = |code: &str, phone: String| {
        SignUpPage {
            t,
            error: Some(t.error(code)),
            phone,
        }
        .into_response()
    };
    let phone = match Phone::parse(&form.phone) {
        Ok(phone) => phone,
        Err(e) => return failed(e.code(), form.phone),
    };
    let now_ms = state.now_ms();
    let password = form.password.clone();
    let signed_up = state
        .with_people(move |people| people.sign_up(&phone, &password, now_ms))
        .await;
    match signed_up {
        Ok(Ok(person)) => {
            if crate::api::people::ensure_wallet_account(&state, person.user_id)
                .await
                .is_err()
            {
                return failed("STORE_UNAVAILABLE", form.phone);
            }
            log_in(State(state), headers, Form(form)).await
        }
        Ok(Err(e)) => failed(e.code(), form.phone),
        Err(_) => failed("INTERNAL", form.phone),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "transfer.html")]
struct TransferPage {
    t: &'static Texts,
    error: Option<&'static str>,
    to_phone: String,
    amount: String,
    /// A fresh idempotency key per form shown: a double submit sends one transfer.
    key: String,
}

fn fresh_key() -> String {
    let mut bytes = [0u8; 16];
    zhifu_domain::Random::fill(&mut crate::serve::OsRandom::new(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn transfer_page(
    headers: HeaderMap,
    _: LoggedIn,
    Query(query): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, query.lang.as_deref());
    let page = TransferPage {
        t: lang.texts(),
        error: None,
        to_phone: String::new(),
        amount: String::new(),
        key: fresh_key(),
    };
    with_lang_cookie(page.into_response(), lang)
}

#[derive(Deserialize)]
pub struct TransferForm {
    to_phone: String,
    amount: String,
    pin: String,
    key: String,
}

pub async fn transfer(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Form(form): Form<TransferForm>,
) -> Response {
    let t = lang(&headers, None).texts();
    let failed = |error: &'static str, form: &TransferForm| {
        TransferPage {
            t,
            error: Some(error),
            to_phone: form.to_phone.clone(),
            amount: form.amount.clone(),
            key: form.key.clone(),
        }
        .into_response()
    };
    let Some(amount_minor) = yuan_to_minor(&form.amount) else {
        return failed(t.amount_invalid, &form);
    };
    let Ok(payee) = Phone::parse(&form.to_phone) else {
        return failed(t.error("PHONE_INVALID"), &form);
    };
    let Some(key) = zhifu_domain::wallet::funding::IdempotencyKey::parse(&form.key) else {
        return failed(t.unavailable, &form);
    };
    let arrival = zhifu_domain::wallet::p2p::Arrival::Now;
    let sent = crate::api::transfers::send_flow(
        &state,
        crate::api::transfers::Payer::Person(person.clone()),
        payee,
        amount_minor,
        arrival,
        form.pin.clone(),
        key,
    )
    .await;
    match sent {
        Ok(_) => Redirect::to("/wallet").into_response(),
        Err(e) => failed(t.error(e.code()), &form),
    }
}

/// `POST /transfers/{id}/accept` and `…/return` from the wallet page.
pub async fn resolve_transfer(
    State(state): State<AppState>,
    LoggedIn(person): LoggedIn,
    axum::extract::Path((id, action)): axum::extract::Path<(String, String)>,
) -> Response {
    let accept = match action.as_str() {
        "accept" => true,
        "return" => false,
        _ => return Redirect::to("/wallet").into_response(),
    };
    let engine = state.engine_shared();
    let now_ms = state.now_ms();
    let resolved = state
        .with_people(move |people| {
            zhifu_domain::wallet::p2p::resolve(people, &engine, person.user_id, &id, accept, now_ms)
        })
        .await;
    match resolved {
        Ok(Ok(_)) => Redirect::to("/wallet").into_response(),
        Ok(Err(e)) => Redirect::to(&format!("/wallet?notice={}", e.code())).into_response(),
        Err(_) => Redirect::to("/wallet?notice=INTERNAL").into_response(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "verify.html")]
struct VerifyPage {
    t: &'static Texts,
    error: Option<&'static str>,
}

pub async fn verify_page(
    headers: HeaderMap,
    _: LoggedIn,
    Query(query): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, query.lang.as_deref());
    with_lang_cookie(
        VerifyPage {
            t: lang.texts(),
            error: None,
        }
        .into_response(),
        lang,
    )
}

#[derive(Deserialize)]
pub struct VerifyForm {
    name: String,
    id_number: String,
}

pub async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Form(form): Form<VerifyForm>,
) -> Response {
    let t = lang(&headers, None).texts();
    let failed = |code: &str| {
        VerifyPage {
            t,
            error: Some(t.error(code)),
        }
        .into_response()
    };
    let id_number = match zhifu_domain::wallet::identity::IdNumber::parse(&form.id_number) {
        Ok(id) => id,
        Err(e) => return failed(e.code()),
    };
    let now_ms = state.now_ms();
    let verified = state
        .with_people(move |people| {
            people.verify_identity(person.user_id, &form.name, &id_number, now_ms)
        })
        .await;
    match verified {
        Ok(Ok(_)) => Redirect::to("/wallet").into_response(),
        Ok(Err(e)) => failed(e.code()),
        Err(_) => failed("INTERNAL"),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "topup.html")]
struct TopUpPage {
    t: &'static Texts,
    error: Option<&'static str>,
    cards: Vec<zhifu_store::CardRow>,
    key: String,
}

async fn topup_page_for(
    state: &AppState,
    t: &'static Texts,
    user_id: i64,
    error: Option<&'static str>,
) -> Response {
    let cards = state
        .with_people(move |people| people.cards(user_id))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    TopUpPage {
        t,
        error,
        cards,
        key: fresh_key(),
    }
    .into_response()
}

pub async fn topup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Query(query): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, query.lang.as_deref());
    with_lang_cookie(
        topup_page_for(&state, lang.texts(), person.user_id, None).await,
        lang,
    )
}

#[derive(Deserialize)]
pub struct CardForm {
    card_number: String,
    name: String,
    id_number: String,
    phone: String,
}

pub async fn bind_card(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Form(form): Form<CardForm>,
) -> Response {
    let t = lang(&headers, None).texts();
    let user_id = person.user_id;
    let parsed = (|| {
        Ok::<_, zhifu_domain::wallet::identity::IdentityError>((
            zhifu_domain::wallet::identity::CardNumber::parse(&form.card_number)?,
            zhifu_domain::wallet::identity::IdNumber::parse(&form.id_number)?,
            Phone::parse(&form.phone)?,
        ))
    })();
    let (card, id_number, phone) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return topup_page_for(&state, t, user_id, Some(t.error(e.code()))).await,
    };
    let now_ms = state.now_ms();
    let bank = state.bank();
    let name = form.name;
    let bound = state
        .with_people(move |people| {
            let holder = zhifu_domain::bank::Holder {
                name: &name,
                id_number: &id_number,
                phone: &phone,
            };
            people.bind_card(user_id, &card, &holder, bank.as_ref(), now_ms)
        })
        .await;
    match bound {
        Ok(Ok(_)) => Redirect::to("/topup").into_response(),
        Ok(Err(e)) => topup_page_for(&state, t, user_id, Some(t.error(e.code()))).await,
        Err(_) => topup_page_for(&state, t, user_id, Some(t.unavailable)).await,
    }
}

#[derive(Deserialize)]
pub struct TopUpForm {
    card_token: String,
    amount: String,
    pin: String,
    key: String,
}

pub async fn top_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Form(form): Form<TopUpForm>,
) -> Response {
    let t = lang(&headers, None).texts();
    let user_id = person.user_id;
    let Some(amount_minor) = yuan_to_minor(&form.amount) else {
        return topup_page_for(&state, t, user_id, Some(t.amount_invalid)).await;
    };
    let Some(key) = zhifu_domain::wallet::funding::IdempotencyKey::parse(&form.key) else {
        return topup_page_for(&state, t, user_id, Some(t.unavailable)).await;
    };
    let request = CardMoneyRequest::new(form.card_token, amount_minor, form.pin);
    match crate::api::funding::top_up_flow(&state, user_id, request, key).await {
        Ok(_) => Redirect::to("/wallet").into_response(),
        Err(e) => topup_page_for(&state, t, user_id, Some(t.error(e.code()))).await,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "pin.html")]
struct PinPage {
    t: &'static Texts,
    error: Option<&'static str>,
}

pub async fn pin_page(headers: HeaderMap, _: LoggedIn, Query(query): Query<LangQuery>) -> Response {
    let lang = lang(&headers, query.lang.as_deref());
    with_lang_cookie(
        PinPage {
            t: lang.texts(),
            error: None,
        }
        .into_response(),
        lang,
    )
}

#[derive(Deserialize)]
pub struct PinForm {
    password: String,
    pin: String,
}

pub async fn set_pin(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Form(form): Form<PinForm>,
) -> Response {
    let t = lang(&headers, None).texts();
    let set = state
        .with_people(move |people| {
            people.set_pin(
                person.user_id,
                &form.password,
                &form.pin,
                &mut crate::serve::OsRandom::new(),
            )
        })
        .await;
    match set {
        Ok(Ok(())) => Redirect::to("/wallet").into_response(),
        Ok(Err(e)) => PinPage {
            t,
            error: Some(t.error(e.code())),
        }
        .into_response(),
        Err(_) => PinPage {
            t,
            error: Some(t.unavailable),
        }
        .into_response(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "red_packet.html")]
struct RedPacketPage {
    t: &'static Texts,
    error: Option<&'static str>,
    sent_link: Option<String>,
    key: String,
}

pub async fn red_packet_page(
    headers: HeaderMap,
    _: LoggedIn,
    Query(query): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, query.lang.as_deref());
    let page = RedPacketPage {
        t: lang.texts(),
        error: None,
        sent_link: None,
        key: fresh_key(),
    };
    with_lang_cookie(page.into_response(), lang)
}

#[derive(Deserialize)]
pub struct RedPacketForm {
    kind: String,
    amount: String,
    shares: String,
    pin: String,
    key: String,
}

pub async fn send_red_packet(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Form(form): Form<RedPacketForm>,
) -> Response {
    use zhifu_domain::wallet::red_packet::RedPacketKind;
    let t = lang(&headers, None).texts();
    let failed = |error: &'static str| {
        RedPacketPage {
            t,
            error: Some(error),
            sent_link: None,
            key: fresh_key(),
        }
        .into_response()
    };
    let Some(amount_minor) = yuan_to_minor(&form.amount) else {
        return failed(t.amount_invalid);
    };
    let Ok(shares) = form.shares.trim().parse::<u32>() else {
        return failed(t.error("RED_PACKET_SHARES"));
    };
    let kind = match form.kind.as_str() {
        "normal" => RedPacketKind::Normal {
            share_minor: amount_minor,
        },
        _ => RedPacketKind::Lucky {
            total_minor: amount_minor,
        },
    };
    let Some(key) = zhifu_domain::wallet::funding::IdempotencyKey::parse(&form.key) else {
        return failed(t.unavailable);
    };
    let sent =
        crate::api::red_packets::send_flow(&state, person.user_id, kind, shares, form.pin, key)
            .await;
    match sent {
        Ok(packet) => RedPacketPage {
            t,
            error: None,
            sent_link: Some(format!("/r/{}", packet.packet_id)),
            key: fresh_key(),
        }
        .into_response(),
        Err(e) => failed(t.error(e.code())),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "grab.html")]
struct GrabPage {
    t: &'static Texts,
    error: Option<&'static str>,
    amount: Option<String>,
    packet_id: String,
}

/// `/r/{id}`: the shared link of a red packet.
pub async fn grab_page(
    headers: HeaderMap,
    _: LoggedIn,
    axum::extract::Path(packet_id): axum::extract::Path<String>,
    Query(query): Query<LangQuery>,
) -> Response {
    let lang = lang(&headers, query.lang.as_deref());
    let page = GrabPage {
        t: lang.texts(),
        error: None,
        amount: None,
        packet_id,
    };
    with_lang_cookie(page.into_response(), lang)
}

pub async fn grab(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    axum::extract::Path(packet_id): axum::extract::Path<String>,
) -> Response {
    let t = lang(&headers, None).texts();
    let now_ms = state.now_ms();
    let engine = state.engine_shared();
    let id = packet_id.clone();
    let got = state
        .with_people(move |people| {
            zhifu_domain::wallet::red_packets::grab(people, &engine, &id, person.user_id, now_ms)
        })
        .await;
    let (error, amount) = match got {
        Ok(Ok(grab)) => (
            None,
            Some(display(
                i128::from(grab.amount_minor),
                zhifu_ledger::Currency::CNY,
            )),
        ),
        Ok(Err(e)) => (Some(t.error(e.code())), None),
        Err(_) => (Some(t.unavailable), None),
    };
    GrabPage {
        t,
        error,
        amount,
        packet_id,
    }
    .into_response()
}

struct QuoteView {
    amount: String,
    fee: String,
    quota_left: String,
    card_token: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "withdraw.html")]
struct WithdrawPage {
    t: &'static Texts,
    error: Option<&'static str>,
    cards: Vec<zhifu_store::CardRow>,
    quote: Option<QuoteView>,
    key: String,
}

#[derive(Deserialize)]
pub struct WithdrawQuery {
    lang: Option<String>,
    card_token: Option<String>,
    amount: Option<String>,
}

/// `GET /withdraw`: the form; with `amount` and `card_token`, the fee to confirm.
pub async fn withdraw_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Query(query): Query<WithdrawQuery>,
) -> Response {
    let lang = lang(&headers, query.lang.as_deref());
    let t = lang.texts();
    let user_id = person.user_id;
    let cards = state
        .with_people(move |people| people.cards(user_id))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut page = WithdrawPage {
        t,
        error: None,
        cards,
        quote: None,
        key: fresh_key(),
    };
    if let (Some(amount), Some(card_token)) = (query.amount, query.card_token) {
        match zhifu_ledger::Money::parse(amount.trim(), zhifu_ledger::Currency::CNY) {
            Ok(money) if money.amount_minor > 0 => {
                let policy = state.withdrawal_policy();
                let amount_minor = money.amount_minor as u64;
                let quote = state
                    .with_people(move |people| {
                        people.preview_withdrawal(user_id, amount_minor, &policy)
                    })
                    .await;
                match quote {
                    Ok(Ok(quote)) => {
                        let yuan =
                            |minor: u64| display(i128::from(minor), zhifu_ledger::Currency::CNY);
                        page.quote = Some(QuoteView {
                            amount: yuan(quote.amount_minor),
                            fee: yuan(quote.fee_minor),
                            quota_left: yuan(quote.free_quota_left_after_minor),
                            card_token,
                        });
                    }
                    Ok(Err(e)) => page.error = Some(t.error(e.code())),
                    Err(_) => page.error = Some(t.unavailable),
                }
            }
            _ => page.error = Some(t.amount_invalid),
        }
    }
    with_lang_cookie(page.into_response(), lang)
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    card_token: String,
    amount: String,
    pin: String,
    key: String,
}

pub async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    LoggedIn(person): LoggedIn,
    Form(form): Form<WithdrawForm>,
) -> Response {
    let t = lang(&headers, None).texts();
    let user_id = person.user_id;
    let failed = |error: &'static str| {
        WithdrawPage {
            t,
            error: Some(error),
            cards: Vec::new(),
            quote: None,
            key: fresh_key(),
        }
        .into_response()
    };
    let Some(amount_minor) = yuan_to_minor(&form.amount) else {
        return failed(t.amount_invalid);
    };
    let Some(key) = zhifu_domain::wallet::funding::IdempotencyKey::parse(&form.key) else {
        return failed(t.unavailable);
    };
    let request = CardMoneyRequest::new(form.card_token, amount_minor, form.pin);
    match crate::api::funding::withdraw_flow(&state, user_id, request, key).await {
        Ok(_) => Redirect::to("/wallet").into_response(),
        Err(e) => failed(t.error(e.code())),
    }
}

/// `GET /wallet/statement.csv`: the statement export, for the logged-in person.
pub async fn statement_export(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some((person, _)) = person(&state, &headers).await else {
        return Ok(Redirect::to("/login").into_response());
    };
    let csv = crate::api::wallet::statement_csv(&state, person.user_id).await?;
    Ok(crate::api::wallet::csv_response(csv))
}

/// An amount the person typed in yuan ("12.34"), in fen; `None` unless it is above zero.
fn yuan_to_minor(text: &str) -> Option<u64> {
    match zhifu_ledger::Money::parse(text.trim(), zhifu_ledger::Currency::CNY) {
        Ok(money) if money.amount_minor > 0 => u64::try_from(money.amount_minor).ok(),
        _ => None,
    }
}

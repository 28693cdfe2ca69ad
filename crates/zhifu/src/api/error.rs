//! Every error the HTTP API returns, and the one place that decides its status (SPEC §10):
//! `{"code": "...", "message": "..."}` with a stable code and a message for people.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use zhifu_domain::acquiring::merchants::MerchantError;
use zhifu_domain::acquiring::orders::OrderError;
use zhifu_domain::acquiring::signature::SignatureError;
use zhifu_domain::bank::BankError;
use zhifu_domain::wallet::funding::FundingError;
use zhifu_domain::wallet::identity::IdentityError;
use zhifu_domain::wallet::p2p::P2pError;
use zhifu_domain::wallet::pay_codes::{PayCodeError, RedeemError};
use zhifu_domain::wallet::people::PeopleError;
use zhifu_domain::wallet::pin::PinError;
use zhifu_domain::wallet::receive_codes::ReceiveCodeError;
use zhifu_domain::wallet::red_packets::RedPacketServiceError;

#[derive(Debug)]
pub enum ApiError {
    NotFound,
    /// The body is not JSON, or not the JSON this endpoint takes.
    Json(JsonRejection),
    Identity(IdentityError),
    People(PeopleError),
    /// No `Authorization: Bearer …` header.
    SessionMissing,
    /// Query parameters of the wrong name or shape.
    QueryInvalid,
    Funding(FundingError),
    P2p(P2pError),
    RedPacket(RedPacketServiceError),
    /// `kind` is neither `normal` nor `lucky`.
    RedPacketKindInvalid,
    /// `arrival` is none of `now`, `2h`, `24h`.
    ArrivalInvalid,
    /// A money-moving call without a usable `Idempotency-Key` header.
    IdempotencyKeyInvalid,
    /// An operator call without the operator token, or with another.
    OperatorUnauthorized,
    ReceiveCode(ReceiveCodeError),
    PayCode(PayCodeError),
    /// A redeemer id that is empty or longer than 64 characters.
    RedeemerInvalid,
    /// A bank mode other than normal, fail, timeout_after_work, timeout_before_work.
    BankModeInvalid,
    Merchant(MerchantError),
    /// A merchant API request whose signature was not accepted: always 401.
    Signature(SignatureError),
    /// A merchant API request body over its cap.
    BodyTooLarge,
    Order(OrderError),
    /// A currency other than CNY.
    CurrencyUnsupported,
    /// A refund names its order by neither or both of `out_trade_no` and `transaction_id`.
    OrderNameInvalid,
    /// Something on our side; the detail goes to the log, not to the caller.
    Internal,
}

impl ApiError {
    /// The stable code, for edges that word errors themselves (the web pages).
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ApiError::Json(rejection) => match rejection {
                JsonRejection::MissingJsonContentType(_) => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "CONTENT_TYPE_NOT_JSON")
                }
                JsonRejection::JsonDataError(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "JSON_INVALID")
                }
                _ => (StatusCode::BAD_REQUEST, "JSON_MALFORMED"),
            },
            ApiError::Identity(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.code()),
            ApiError::People(e) => (people_status(e), e.code()),
            ApiError::P2p(e) | ApiError::ReceiveCode(ReceiveCodeError::P2p(e)) => p2p_status(e),
            ApiError::Funding(e) => {
                let status = match e {
                    FundingError::AmountInvalid | FundingError::Ledger(_) => {
                        StatusCode::UNPROCESSABLE_ENTITY
                    }
                    FundingError::Bank(bank) => bank_status(*bank),
                    // Not a failure: the outcome is pending; the same request settles it.
                    FundingError::Processing => StatusCode::ACCEPTED,
                    FundingError::KeyReused => StatusCode::CONFLICT,
                    FundingError::Engine(_) => StatusCode::SERVICE_UNAVAILABLE,
                };
                (status, e.code())
            }
            ApiError::RedPacket(RedPacketServiceError::People(e)) => (people_status(e), e.code()),
            ApiError::RedPacket(e) => {
                let status = match e {
                    RedPacketServiceError::Split(_) | RedPacketServiceError::Ledger(_) => {
                        StatusCode::UNPROCESSABLE_ENTITY
                    }
                    RedPacketServiceError::NotFound => StatusCode::NOT_FOUND,
                    RedPacketServiceError::Expired => StatusCode::GONE,
                    RedPacketServiceError::SoldOut | RedPacketServiceError::KeyReused => {
                        StatusCode::CONFLICT
                    }
                    RedPacketServiceError::RecipientUnverified
                    | RedPacketServiceError::Limit(_) => StatusCode::FORBIDDEN,
                    RedPacketServiceError::Engine(_) => StatusCode::SERVICE_UNAVAILABLE,
                    RedPacketServiceError::People(_) => unreachable!("matched above"),
                };
                (status, e.code())
            }
            ApiError::RedPacketKindInvalid => {
                (StatusCode::UNPROCESSABLE_ENTITY, "RED_PACKET_KIND_INVALID")
            }
            ApiError::ArrivalInvalid => (StatusCode::UNPROCESSABLE_ENTITY, "ARRIVAL_INVALID"),
            ApiError::IdempotencyKeyInvalid => (StatusCode::BAD_REQUEST, "IDEMPOTENCY_KEY_INVALID"),
            ApiError::SessionMissing => (StatusCode::UNAUTHORIZED, "SESSION_MISSING"),
            ApiError::QueryInvalid => (StatusCode::BAD_REQUEST, "QUERY_INVALID"),
            ApiError::OperatorUnauthorized => (StatusCode::UNAUTHORIZED, "OPERATOR_UNAUTHORIZED"),
            ApiError::ReceiveCode(e) => {
                let status = match e {
                    ReceiveCodeError::StaticDailyCap { .. } => StatusCode::FORBIDDEN,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                (status, e.code())
            }
            ApiError::PayCode(e) => {
                let status = match e {
                    PayCodeError::Malformed | PayCodeError::OtherInstitution => {
                        StatusCode::UNPROCESSABLE_ENTITY
                    }
                    PayCodeError::Unknown => StatusCode::NOT_FOUND,
                    PayCodeError::Spent => StatusCode::CONFLICT,
                    PayCodeError::Expired => StatusCode::GONE,
                    PayCodeError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                };
                (status, e.code())
            }
            ApiError::RedeemerInvalid => (StatusCode::UNPROCESSABLE_ENTITY, "REDEEMER_INVALID"),
            ApiError::BankModeInvalid => (StatusCode::UNPROCESSABLE_ENTITY, "BANK_MODE_INVALID"),
            ApiError::Merchant(e) => (merchant_status(e), e.code()),
            ApiError::Signature(SignatureError::Store(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE")
            }
            ApiError::Signature(e) => (StatusCode::UNAUTHORIZED, e.code()),
            ApiError::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE"),
            ApiError::Order(e) => order_status(e),
            ApiError::CurrencyUnsupported => {
                (StatusCode::UNPROCESSABLE_ENTITY, "CURRENCY_UNSUPPORTED")
            }
            ApiError::OrderNameInvalid => (StatusCode::UNPROCESSABLE_ENTITY, "ORDER_NAME_INVALID"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::NotFound => "no such resource".into(),
            // serde's message names the field and the problem, never a value we keep secret.
            ApiError::Json(rejection) => rejection.body_text(),
            ApiError::Identity(e) => e.to_string(),
            ApiError::People(PeopleError::Store(_)) => {
                "storage is unavailable; try again shortly".into()
            }
            ApiError::People(e) => e.to_string(),
            ApiError::Funding(FundingError::Engine(_)) => {
                "the ledger is unavailable; try again with the same Idempotency-Key".into()
            }
            ApiError::Funding(e) => e.to_string(),
            ApiError::P2p(e) | ApiError::ReceiveCode(ReceiveCodeError::P2p(e)) => p2p_message(e),
            ApiError::RedPacket(
                RedPacketServiceError::Engine(_)
                | RedPacketServiceError::People(PeopleError::Store(_)),
            ) => "the ledger is unavailable; try again with the same Idempotency-Key".into(),
            ApiError::RedPacket(e) => e.to_string(),
            ApiError::RedPacketKindInvalid => "kind is normal or lucky".into(),
            ApiError::ArrivalInvalid => "arrival is now, 2h or 24h".into(),
            ApiError::IdempotencyKeyInvalid => {
                "send an Idempotency-Key header of 1 to 48 visible ASCII characters".into()
            }
            ApiError::SessionMissing => {
                "log in first: send the session token as Authorization: Bearer <token>".into()
            }
            ApiError::QueryInvalid => {
                "unknown or malformed query parameters (before: a cursor from `next`, limit: 1 to 100)".into()
            }
            ApiError::OperatorUnauthorized => {
                "operator calls take the operator token: Authorization: Bearer <token>".into()
            }
            ApiError::ReceiveCode(e) => e.to_string(),
            ApiError::PayCode(e) => e.to_string(),
            ApiError::RedeemerInvalid => "redeemer is 1 to 64 characters".into(),
            ApiError::BankModeInvalid => {
                "mode is normal, fail, timeout_after_work or timeout_before_work".into()
            }
            ApiError::Merchant(MerchantError::Store(_))
            | ApiError::Signature(SignatureError::Store(_)) => {
                "storage is unavailable; try again shortly".into()
            }
            ApiError::Merchant(e) => e.to_string(),
            ApiError::Signature(e) => e.to_string(),
            ApiError::BodyTooLarge => format!(
                "the body is larger than {} bytes, or could not be read",
                super::merchant_signing::REQUEST_BODY_BYTES_MAX
            ),
            ApiError::Order(
                OrderError::Engine(_)
                | OrderError::People(PeopleError::Store(_))
                | OrderError::Merchant(MerchantError::Store(_)),
            ) => "storage or the ledger is unavailable; try again with the same key".into(),
            ApiError::Order(e) => e.to_string(),
            ApiError::CurrencyUnsupported => "the only currency is CNY".into(),
            ApiError::OrderNameInvalid => {
                "name the order by exactly one of out_trade_no and transaction_id".into()
            }
            ApiError::Internal => "something went wrong on our side".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            // The variant, not the request: no secret can reach the log this way.
            eprintln!("zhifu serve: {code}: {:?}", ErrorKind(&self));
        }
        let mut body = serde_json::json!({ "code": code, "message": self.message() });
        // A locked PIN says until when, whichever call met the lock.
        let people = match &self {
            ApiError::People(e) | ApiError::P2p(P2pError::People(e)) => Some(e),
            ApiError::RedPacket(RedPacketServiceError::People(e)) => Some(e),
            ApiError::Order(OrderError::People(e)) => Some(e),
            _ => None,
        };
        if let Some(PeopleError::Pin(PinError::Locked { until_ms })) = people {
            body["detail"] =
                serde_json::json!({ "locked_until": super::time::rfc3339_from_ms(*until_ms) });
        }
        (status, axum::Json(body)).into_response()
    }
}

/// What of an error may be logged: its kind and, for storage, the database's message.
struct ErrorKind<'a>(&'a ApiError);

impl std::fmt::Debug for ErrorKind<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ApiError::People(PeopleError::Store(e))
            | ApiError::Merchant(MerchantError::Store(e))
            | ApiError::Signature(SignatureError::Store(e))
            | ApiError::Order(OrderError::People(PeopleError::Store(e)))
            | ApiError::Order(OrderError::Merchant(MerchantError::Store(e))) => {
                write!(f, "store: {e}")
            }
            other => write!(f, "{}", other.status_and_code().1),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::Json(rejection)
    }
}

impl From<MerchantError> for ApiError {
    fn from(e: MerchantError) -> ApiError {
        ApiError::Merchant(e)
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> ApiError {
        ApiError::Order(e)
    }
}

fn order_status(error: &OrderError) -> (StatusCode, &'static str) {
    let status = match error {
        OrderError::People(e) | OrderError::PayCode(RedeemError::People(e)) => {
            return (people_status(e), e.code());
        }
        OrderError::Merchant(e) => return (merchant_status(e), e.code()),
        OrderError::PayCode(RedeemError::Code(e)) => {
            return ApiError::PayCode(*e).status_and_code();
        }
        OrderError::OutTradeNoInvalid
        | OrderError::OutRefundNoInvalid
        | OrderError::DescriptionInvalid
        | OrderError::AmountInvalid
        | OrderError::CodeUnreadable { .. }
        | OrderError::CodeNotOurs
        | OrderError::AmountMissing
        | OrderError::AmountMismatch
        | OrderError::RefundExceedsPaid { .. }
        | OrderError::Ledger(_) => StatusCode::UNPROCESSABLE_ENTITY,
        OrderError::NotFound => StatusCode::NOT_FOUND,
        OrderError::OutTradeNoReused
        | OrderError::OutRefundNoReused
        | OrderError::KeyReused
        | OrderError::OrderClosed
        | OrderError::OrderPaid
        | OrderError::PaymentUnrecorded
        | OrderError::OrderNotPaid
        | OrderError::NotReversible
        | OrderError::NotEnoughBalance
        | OrderError::RefundsTooMany
        | OrderError::RefundWindowPassed
        | OrderError::MerchantBalanceShort => StatusCode::CONFLICT,
        OrderError::Limit(_) => StatusCode::FORBIDDEN,
        OrderError::Engine(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, error.code())
}

impl From<SignatureError> for ApiError {
    fn from(e: SignatureError) -> ApiError {
        ApiError::Signature(e)
    }
}

/// Refusals of the caller's input are 422, of its standing 403; keys and merchants that are
/// not there 404; a serial taken or a full key ring 409.
fn merchant_status(error: &MerchantError) -> StatusCode {
    match error {
        MerchantError::KindInvalid
        | MerchantError::NameInvalid
        | MerchantError::DiscountRateInvalid
        | MerchantError::NotifyUrlInvalid
        | MerchantError::ServiceProviderInvalid
        | MerchantError::KeySerialInvalid
        | MerchantError::KeyAlgorithmInvalid
        | MerchantError::KeyInvalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        MerchantError::NotServiceProvider => StatusCode::FORBIDDEN,
        MerchantError::MerchantNotFound | MerchantError::KeyNotFound => StatusCode::NOT_FOUND,
        MerchantError::KeySerialTaken | MerchantError::KeysTooMany => StatusCode::CONFLICT,
        MerchantError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> ApiError {
        ApiError::Identity(e)
    }
}

impl From<FundingError> for ApiError {
    fn from(e: FundingError) -> ApiError {
        ApiError::Funding(e)
    }
}

fn bank_status(error: BankError) -> StatusCode {
    match error {
        BankError::HolderMismatch
        | BankError::CardInvalid
        | BankError::InsufficientFunds
        | BankError::Declined => StatusCode::UNPROCESSABLE_ENTITY,
        BankError::Timeout => StatusCode::GATEWAY_TIMEOUT,
    }
}

fn p2p_status(e: &P2pError) -> (StatusCode, &'static str) {
    let status = match e {
        P2pError::People(e) => return (people_status(e), e.code()),
        P2pError::AmountInvalid | P2pError::PayeeIsPayer | P2pError::Ledger(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        P2pError::Limit(_) => StatusCode::FORBIDDEN,
        P2pError::PayeeNotFound | P2pError::NotFound => StatusCode::NOT_FOUND,
        P2pError::KeyReused
        | P2pError::NotHeld
        | P2pError::NotYetArrived
        | P2pError::AlreadyArrived => StatusCode::CONFLICT,
        P2pError::Engine(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, e.code())
}

fn p2p_message(e: &P2pError) -> String {
    match e {
        P2pError::Engine(_) | P2pError::People(PeopleError::Store(_)) => {
            "the ledger is unavailable; try again with the same Idempotency-Key".into()
        }
        e => e.to_string(),
    }
}

fn people_status(error: &PeopleError) -> StatusCode {
    match error {
        PeopleError::PhoneTaken => StatusCode::CONFLICT,
        PeopleError::PasswordTooShort | PeopleError::PasswordTooLong => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        PeopleError::CredentialsWrong | PeopleError::SessionInvalid => StatusCode::UNAUTHORIZED,
        PeopleError::PasswordWrong => StatusCode::FORBIDDEN,
        PeopleError::PinNotSet => StatusCode::CONFLICT,
        PeopleError::Pin(pin) => match pin {
            PinError::Format | PinError::Trivial | PinError::EqualsPassword => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            PinError::Wrong { .. } => StatusCode::FORBIDDEN,
            PinError::Locked { .. } => StatusCode::TOO_MANY_REQUESTS,
        },
        PeopleError::NameInvalid | PeopleError::IdentityMismatch => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        PeopleError::IdentityRequired => StatusCode::FORBIDDEN,
        PeopleError::CardAlreadyBound => StatusCode::CONFLICT,
        PeopleError::CardNotFound => StatusCode::NOT_FOUND,
        PeopleError::Bank(bank) => bank_status(*bank),
        PeopleError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl From<PeopleError> for ApiError {
    fn from(e: PeopleError) -> ApiError {
        ApiError::People(e)
    }
}

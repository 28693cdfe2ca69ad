//! Merchant orders and refunds (SPEC §5): how a shop gets paid and gives money back.
//!
//! **Products.** A *native* order gives the merchant a dynamic EMV code (zhifu's template with
//! the order's reference) that a wallet scans and pays; an *in-wallet* order is the same order
//! opened from a link instead of a code; a *pay-code* order is the merchant scanning the
//! consumer's pay code, paid at once or, above 1,000 yuan or after 10 payments without the PIN
//! that day, left `USERPAYING` until the consumer confirms with the PIN; a *static* merchant
//! code carries no amount and each payment to it becomes an order of its own.
//!
//! **States.** `NOTPAY` → `SUCCESS` | `CLOSED` | `USERPAYING`; `USERPAYING` → `SUCCESS` |
//! `PAYERROR` | `CLOSED` | `REVOKED`; `SUCCESS` → `REFUND` (any refund) | `REVOKED` (reversed).
//! An unpaid order past its expiry reads as `CLOSED` and cannot be paid.
//!
//! **Money.** A payment is one linked chain in the ledger: the payer's balance to the
//! merchant's account, the discount fee from the merchant to the institution, and the service
//! provider's commission from the institution to the provider. A refund is the reverse chain
//! for its share. Fees are computed by [`fee_minor`] and [`refund_shares`]: see there for the
//! rounding rules.
//!
//! **Idempotency.** `out_trade_no` keys an order per merchant: the same request returns the
//! same order, a different one is `OUT_TRADE_NO_REUSED`; `out_refund_no` keys a refund. Ledger
//! transfer ids are derived from these keys (and, for a wallet's payment, from the wallet's
//! `Idempotency-Key`), so a retry after a crash never moves money twice.
//!
//! Every write to an order happens under its order lock ([`People::lock_order`]), then, for a
//! payment, the payer's person lock: the state checks, the limits and the ledger chain cannot
//! interleave with another payment, close or refund of the same order.

use super::merchants::{self, Merchant, MerchantError, MerchantId};
use crate::derive_key;
use crate::time::shanghai_day_start_ms;
use crate::wallet::chart::{
    CODE_MERCHANT_FEE, CODE_MERCHANT_FEE_REFUND, CODE_MERCHANT_PAYMENT, CODE_MERCHANT_REFUND,
    CODE_PROVIDER_COMMISSION, CODE_PROVIDER_COMMISSION_REFUND, FEE_INCOME, commission_account_id,
    merchant_account_id, merchant_accounts, wallet_account_id, wallet_owner,
};
use crate::wallet::funding::IdempotencyKey;
use crate::wallet::limits::{LimitError, LimitPolicy};
use crate::wallet::pay_codes::{PayCodes, RedeemError};
use crate::wallet::people::{People, PeopleError, PersonLock};
use hmac::{KeyInit, Mac};
use sha2::Digest;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use zhifu_codes::{
    Amount, CountryCode, CurrencyCode, MerchantCategoryCode, MerchantCity, MerchantName,
    OrderReference, Payload, Target, TargetId, ZhifuAccount,
};
use zhifu_ledger::{
    AccountCode, AccountId, NewTransfer, Reference, TransferCode, TransferId, TransferOp,
};
use zhifu_store::{Engine, EngineError, NotificationRow, OrderRow, RefundRow, StoreError};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

#[derive(Clone, Debug)]
pub struct OrderPolicy {
    /// How long a native or in-wallet order can be paid (default 2 h).
    pub native_ttl_ms: i64,
    /// How long a pay-code order waits for the consumer's PIN.
    pub userpaying_ttl_ms: i64,
    /// Pay-code payments above this need the PIN.
    pub pin_free_max_minor: u64,
    /// Pay-code payments without the PIN a payer may make per day (China Standard Time).
    pub pin_free_per_day: u32,
    pub order_amount_max_minor: u64,
    pub refunds_per_order_max: u32,
    pub refund_window_ms: i64,
    /// The service provider's share of its sub-merchants' discount fees, in basis points.
    pub commission_share_bps: u32,
    /// The institution's GUID in its codes, and the city they name.
    pub guid: String,
    pub city: String,
}

impl Default for OrderPolicy {
    fn default() -> OrderPolicy {
        OrderPolicy {
            native_ttl_ms: 2 * 60 * MINUTE_MS,
            userpaying_ttl_ms: 5 * MINUTE_MS,
            pin_free_max_minor: 100_000,
            pin_free_per_day: 10,
            order_amount_max_minor: 100_000_000,
            refunds_per_order_max: 50,
            refund_window_ms: 365 * DAY_MS,
            commission_share_bps: 2_000,
            guid: zhifu_codes::ZHIFU_GUID.into(),
            city: "Shanghai".into(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OrderKind {
    Native,
    PayCode,
    InWallet,
    Static,
}

impl OrderKind {
    pub fn code(self) -> &'static str {
        match self {
            OrderKind::Native => "NATIVE",
            OrderKind::PayCode => "PAYCODE",
            OrderKind::InWallet => "INWALLET",
            OrderKind::Static => "STATIC",
        }
    }

    pub fn parse(code: &str) -> Option<OrderKind> {
        [
            OrderKind::Native,
            OrderKind::PayCode,
            OrderKind::InWallet,
            OrderKind::Static,
        ]
        .into_iter()
        .find(|kind| kind.code() == code)
    }
}

pub const NOTPAY: &str = "NOTPAY";
pub const USERPAYING: &str = "USERPAYING";
pub const SUCCESS: &str = "SUCCESS";
pub const REFUND: &str = "REFUND";
pub const CLOSED: &str = "CLOSED";
pub const REVOKED: &str = "REVOKED";
pub const PAYERROR: &str = "PAYERROR";
/// A refund recorded and not yet finished in the ledger.
pub const PROCESSING: &str = "PROCESSING";

/// The stored state's constant, for conditional updates that must name the state they expect.
fn stored_state(state: &str) -> &'static str {
    match state {
        NOTPAY => NOTPAY,
        USERPAYING => USERPAYING,
        SUCCESS => SUCCESS,
        REFUND => REFUND,
        CLOSED => CLOSED,
        REVOKED => REVOKED,
        _ => PAYERROR,
    }
}

/// The state an order is in at `now_ms`: an unpaid order past its expiry is closed.
pub fn shown_state(order: &OrderRow, now_ms: i64) -> &str {
    match order.state.as_str() {
        NOTPAY | USERPAYING if now_ms >= order.expires_ms => CLOSED,
        state => state,
    }
}

#[derive(Debug)]
pub enum OrderError {
    OutTradeNoInvalid,
    OutRefundNoInvalid,
    DescriptionInvalid,
    AmountInvalid,
    /// The same `out_trade_no` with a different request.
    OutTradeNoReused,
    OutRefundNoReused,
    /// The wallet's Idempotency-Key was used for another payment.
    KeyReused,
    NotFound,
    /// Closed, revoked, failed or expired: it cannot be paid any more.
    OrderClosed,
    /// Paid already: it cannot be paid again, nor closed.
    OrderPaid,
    /// Its payment reached the ledger but could not be recorded on the order yet; until the
    /// reconciler records it, nobody else may pay it.
    PaymentUnrecorded,
    /// A refund or reversal of an order that was not paid.
    OrderNotPaid,
    /// Reversal is for pay-code orders.
    NotReversible,
    /// The code was not an EMV code.
    CodeUnreadable {
        code: &'static str,
        message: String,
    },
    /// A valid code, but not a merchant code of this institution.
    CodeNotOurs,
    AmountMissing,
    /// The amount given differs from the order's.
    AmountMismatch,
    NotEnoughBalance,
    Limit(LimitError),
    RefundExceedsPaid {
        left_minor: u64,
    },
    RefundsTooMany,
    RefundWindowPassed,
    /// The merchant's account holds less than the refund takes from it.
    MerchantBalanceShort,
    PayCode(RedeemError),
    Merchant(MerchantError),
    People(PeopleError),
    Engine(EngineError),
    Ledger(TransferCode),
}

impl OrderError {
    pub fn code(&self) -> &'static str {
        match self {
            OrderError::OutTradeNoInvalid => "OUT_TRADE_NO_INVALID",
            OrderError::OutRefundNoInvalid => "OUT_REFUND_NO_INVALID",
            OrderError::DescriptionInvalid => "DESCRIPTION_INVALID",
            OrderError::AmountInvalid => "AMOUNT_INVALID",
            OrderError::OutTradeNoReused => "OUT_TRADE_NO_REUSED",
            OrderError::OutRefundNoReused => "OUT_REFUND_NO_REUSED",
            OrderError::KeyReused => "IDEMPOTENCY_KEY_REUSED",
            OrderError::NotFound => "ORDER_NOT_FOUND",
            OrderError::OrderClosed => "ORDER_CLOSED",
            OrderError::OrderPaid => "ORDER_PAID",
            OrderError::PaymentUnrecorded => "ORDER_PAYMENT_UNRECORDED",
            OrderError::OrderNotPaid => "ORDER_NOT_PAID",
            OrderError::NotReversible => "ORDER_NOT_REVERSIBLE",
            OrderError::CodeUnreadable { code, .. } => code,
            OrderError::CodeNotOurs => "CODE_NOT_OURS",
            OrderError::AmountMissing => "AMOUNT_MISSING",
            OrderError::AmountMismatch => "AMOUNT_MISMATCH",
            OrderError::NotEnoughBalance => "NOT_ENOUGH_BALANCE",
            OrderError::Limit(e) => e.code(),
            OrderError::RefundExceedsPaid { .. } => "REFUND_EXCEEDS_PAID",
            OrderError::RefundsTooMany => "REFUNDS_TOO_MANY",
            OrderError::RefundWindowPassed => "REFUND_WINDOW_PASSED",
            OrderError::MerchantBalanceShort => "MERCHANT_BALANCE_SHORT",
            OrderError::PayCode(RedeemError::Code(e)) => e.code(),
            OrderError::PayCode(RedeemError::People(e)) | OrderError::People(e) => e.code(),
            OrderError::Merchant(e) => e.code(),
            OrderError::Engine(e) => e.code(),
            OrderError::Ledger(code) => code.as_str(),
        }
    }
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderError::OutTradeNoInvalid => f.write_str(
                "out_trade_no is 1 to 32 characters of letters, digits, '_', '-', '|' and '*'",
            ),
            OrderError::OutRefundNoInvalid => f.write_str(
                "out_refund_no is 1 to 64 characters of letters, digits, '_', '-', '|', '*' and '@'",
            ),
            OrderError::DescriptionInvalid => {
                f.write_str("description is 1 to 127 characters without control characters")
            }
            OrderError::AmountInvalid => {
                f.write_str("the amount is a positive number of fen, at most 1,000,000 yuan")
            }
            OrderError::OutTradeNoReused => f.write_str(
                "this out_trade_no names an order with different details; use a new one",
            ),
            OrderError::OutRefundNoReused => f.write_str(
                "this out_refund_no names a refund with different details; use a new one",
            ),
            OrderError::KeyReused => {
                f.write_str("this Idempotency-Key was used for a different payment")
            }
            OrderError::NotFound => f.write_str("no such order"),
            OrderError::OrderClosed => {
                f.write_str("the order is closed, revoked, failed or expired and cannot be paid")
            }
            OrderError::OrderPaid => f.write_str("the order is paid already"),
            OrderError::PaymentUnrecorded => f.write_str(
                "the order's payment is being recorded; ask for the order again in a minute",
            ),
            OrderError::OrderNotPaid => f.write_str("the order has not been paid"),
            OrderError::NotReversible => f.write_str("only pay-code orders can be reversed"),
            OrderError::CodeUnreadable { message, .. } => {
                write!(f, "the code cannot be read: {message}")
            }
            OrderError::CodeNotOurs => f.write_str("this is not a merchant code of this wallet"),
            OrderError::AmountMissing => f.write_str("the code has no amount; enter one"),
            OrderError::AmountMismatch => f.write_str("the amount differs from the order's"),
            OrderError::NotEnoughBalance => f.write_str("the balance is not enough for this"),
            OrderError::Limit(e) => e.fmt(f),
            OrderError::RefundExceedsPaid { left_minor } => write!(
                f,
                "the refunds would exceed the amount paid; {left_minor} fen can still be refunded"
            ),
            OrderError::RefundsTooMany => f.write_str("an order takes at most 50 refunds"),
            OrderError::RefundWindowPassed => {
                f.write_str("orders can be refunded for 365 days after payment")
            }
            OrderError::MerchantBalanceShort => f.write_str(
                "the merchant's unsettled balance is less than the refund takes from it",
            ),
            OrderError::PayCode(RedeemError::Code(e)) => e.fmt(f),
            OrderError::PayCode(RedeemError::People(e)) | OrderError::People(e) => e.fmt(f),
            OrderError::Merchant(e) => e.fmt(f),
            OrderError::Engine(e) => e.fmt(f),
            OrderError::Ledger(code) => write!(f, "the ledger refused: {}", code.as_str()),
        }
    }
}

impl std::error::Error for OrderError {}

impl From<StoreError> for OrderError {
    fn from(e: StoreError) -> OrderError {
        OrderError::People(PeopleError::Store(e))
    }
}

impl From<PeopleError> for OrderError {
    fn from(e: PeopleError) -> OrderError {
        OrderError::People(e)
    }
}

impl From<MerchantError> for OrderError {
    fn from(e: MerchantError) -> OrderError {
        OrderError::Merchant(e)
    }
}

/// What a merchant asks for when it creates an order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewOrder {
    pub out_trade_no: String,
    pub kind: OrderKind,
    pub amount_minor: u64,
    pub description: String,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewRefund {
    pub out_refund_no: String,
    pub amount_minor: u64,
    pub reason: Option<String>,
}

/// What a scanned merchant code asks the wallet to pay.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MerchantCode {
    /// A native order's dynamic code.
    Order { order_id: i64 },
    /// A merchant's static code: the payer enters the amount.
    Static { merchant_id: MerchantId },
}

/// The discount fee on `amount_minor` at `rate_bps`, to the nearest fen, halves up
/// (四舍五入): 0.6 % of 0.83 yuan is 0.498 fen → 0 fen; of 0.84 yuan 0.504 → 1 fen.
pub fn fee_minor(amount_minor: u64, rate_bps: u32) -> u64 {
    let scaled = u128::from(amount_minor) * u128::from(rate_bps);
    ((scaled + 5_000) / 10_000) as u64
}

/// The provider's commission: its share of the fee, rounded down, so that the institution
/// never pays out more than it took.
pub fn commission_minor(fee_minor: u64, share_bps: u32) -> u64 {
    (u128::from(fee_minor) * u128::from(share_bps) / 10_000) as u64
}

/// The fee and commission a refund gives back: proportional to the refunded amount, computed
/// on the running total (every recorded refund's amount `+ amount`) to the nearest fen, halves up, minus what
/// earlier refunds gave back. So a full refund, in any number of parts, gives back exactly the
/// fee and the commission, and no fen is lost or made by the rounding of the parts.
pub fn refund_shares(
    order: &OrderRow,
    refunds_before: &[RefundRow],
    amount_minor: u64,
) -> (u64, u64) {
    let refunded_before: u64 = refunds_before.iter().map(|r| r.amount_minor).sum();
    let refunded_after = refunded_before + amount_minor;
    let proportional = |total: u64| -> u64 {
        let scaled = u128::from(total) * u128::from(refunded_after);
        let paid = u128::from(order.amount_minor);
        ((2 * scaled + paid) / (2 * paid)) as u64
    };
    let fee_before: u64 = refunds_before.iter().map(|r| r.fee_minor).sum();
    let commission_before: u64 = refunds_before.iter().map(|r| r.commission_minor).sum();
    (
        proportional(order.fee_minor).saturating_sub(fee_before),
        proportional(order.commission_minor).saturating_sub(commission_before),
    )
}

fn check_out_trade_no(text: &str) -> Result<(), OrderError> {
    let valid = (1..=32).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b));
    valid.then_some(()).ok_or(OrderError::OutTradeNoInvalid)
}

fn check_out_refund_no(text: &str) -> Result<(), OrderError> {
    let valid = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b));
    valid.then_some(()).ok_or(OrderError::OutRefundNoInvalid)
}

fn check_text(text: &str) -> Result<(), OrderError> {
    let valid = (1..=127).contains(&text.chars().count()) && !text.chars().any(char::is_control);
    valid.then_some(()).ok_or(OrderError::DescriptionInvalid)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Orders and refunds. Cheap to clone.
#[derive(Clone)]
pub struct Orders {
    /// Tags order references in codes and makes payers' pseudonyms.
    key: Arc<[u8]>,
    policy: OrderPolicy,
    /// Merchants whose ledger accounts this process has opened.
    opened: Arc<Mutex<HashSet<i64>>>,
    /// Orders whose payment chain committed while their row's write failed (the wallet store
    /// erring, the process going on): refused to every payer until
    /// [`recovery::pass`](super::recovery::pass) records the payment from the ledger. Without
    /// this, a second payer could pay such an order again.
    paid_unrecorded: Arc<Mutex<HashSet<i64>>>,
}

/// A payment found in the ledger and recorded on its order.
pub(crate) struct LedgerPayment {
    /// Further payment chains under the same order: money the merchant holds with no order
    /// to show for it, for an operator to look at.
    pub(crate) extra_chains: u32,
}

/// Transfers read for one order's chains: a payment's three legs and each refund's three.
const CHAIN_TRANSFERS_MAX: usize = 4 * 64;

/// Merchants remembered as opened, at most; past it the set starts over (opening again is
/// harmless).
const OPENED_REMEMBERED_MAX: usize = 100_000;

/// The transfer ids of a payment's chain, or of a refund's.
struct ChainIds {
    main: TransferId,
    fee: TransferId,
    commission: TransferId,
}

impl ChainIds {
    fn derive(purpose: &str, parts: &[&[u8]]) -> ChainIds {
        let id = |leg: &str| {
            let mut digest = sha2::Sha256::new()
                .chain_update(purpose.as_bytes())
                .chain_update([0])
                .chain_update(leg.as_bytes());
            for part in parts {
                digest = digest.chain_update([0]).chain_update(part);
            }
            let digest = digest.finalize();
            let raw = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes")) >> 1;
            TransferId::new(raw.max(1)).expect("below 2^127 and not zero")
        };
        ChainIds {
            main: id("main"),
            fee: id("fee"),
            commission: id("commission"),
        }
    }
}

/// Who is paid how much of a payment or refund: the accounts and amounts of one chain.
struct Split {
    merchant: AccountId,
    provider: Option<AccountId>,
    amount_minor: u64,
    fee_minor: u64,
    commission_minor: u64,
}

impl Orders {
    pub fn new(secret: &[u8], policy: OrderPolicy) -> Orders {
        Orders {
            key: derive_key(secret, "merchant orders").into(),
            policy,
            opened: Arc::default(),
            paid_unrecorded: Arc::default(),
        }
    }

    pub fn policy(&self) -> &OrderPolicy {
        &self.policy
    }

    /// The payer as this merchant sees them: a stable pseudonym, different per merchant, so
    /// that merchants cannot join their customers up.
    pub fn payer_pseudonym(&self, merchant_id: i64, payer_id: i64) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(b"payer\0");
        mac.update(&merchant_id.to_be_bytes());
        mac.update(&payer_id.to_be_bytes());
        format!("u{}", &hex(&mac.finalize().into_bytes())[..24])
    }

    /// Creates a native or in-wallet order (pay-code orders: [`Orders::pay_code_order`]).
    pub fn create(
        &self,
        people: &People,
        merchant_id: MerchantId,
        order: &NewOrder,
        now_ms: i64,
    ) -> Result<OrderRow, OrderError> {
        assert!(matches!(
            order.kind,
            OrderKind::Native | OrderKind::InWallet
        ));
        self.check_new(order)?;
        merchants::merchant(people, merchant_id)?;
        let row = self.new_row(merchant_id, order, None, self.policy.native_ttl_ms, now_ms);
        self.insert_or_same(people, row)
    }

    fn check_new(&self, order: &NewOrder) -> Result<(), OrderError> {
        check_out_trade_no(&order.out_trade_no)?;
        check_text(&order.description)?;
        if order.amount_minor == 0 || order.amount_minor > self.policy.order_amount_max_minor {
            return Err(OrderError::AmountInvalid);
        }
        Ok(())
    }

    fn new_row(
        &self,
        merchant_id: MerchantId,
        order: &NewOrder,
        digest_extra: Option<&str>,
        ttl_ms: i64,
        now_ms: i64,
    ) -> OrderRow {
        let digest = sha2::Sha256::new()
            .chain_update(order.kind.code())
            .chain_update([0])
            .chain_update(order.amount_minor.to_be_bytes())
            .chain_update(order.description.as_bytes())
            .chain_update([0])
            .chain_update(digest_extra.unwrap_or("").as_bytes())
            .finalize();
        OrderRow {
            id: 0,
            merchant_id: merchant_id.get(),
            out_trade_no: order.out_trade_no.clone(),
            kind: order.kind.code().into(),
            amount_minor: order.amount_minor,
            description: order.description.clone(),
            request_digest: hex(&digest[..16]),
            state: NOTPAY.into(),
            payer_id: None,
            pin_confirmed: false,
            fee_minor: 0,
            commission_minor: 0,
            refunded_minor: 0,
            refund_count: 0,
            created_ms: now_ms,
            expires_ms: now_ms + ttl_ms,
            paid_ms: None,
            closed_ms: None,
        }
    }

    fn insert_or_same(&self, people: &People, row: OrderRow) -> Result<OrderRow, OrderError> {
        let digest = row.request_digest.clone();
        let stored = people.db().write_plain(move |s| s.order_insert(&row))?;
        match stored.request_digest == digest {
            true => Ok(stored),
            false => Err(OrderError::OutTradeNoReused),
        }
    }

    /// The EMV code a wallet scans to pay this order: zhifu's template naming the merchant and
    /// the order's tagged reference, the amount, the merchant's name.
    pub fn code_for(&self, merchant: &Merchant, order: &OrderRow) -> String {
        let mut payload = self.merchant_payload(merchant);
        payload.amount = Some(
            Amount::from_minor_units(order.amount_minor, 2).expect("an order amount within limits"),
        );
        let reference =
            OrderReference::parse(&self.reference(order.id)).expect("digits, a dot, hex");
        self.finish_code(payload, merchant, Some(reference))
    }

    /// The merchant's static code: no amount, the payer enters it.
    pub fn static_code_for(&self, merchant: &Merchant) -> String {
        let payload = self.merchant_payload(merchant);
        self.finish_code(payload, merchant, None)
    }

    fn merchant_payload(&self, merchant: &Merchant) -> Payload {
        let text = |value: &str, max: usize| value.chars().take(max).collect::<String>();
        Payload::new(
            MerchantCategoryCode::parse("5999").expect("a valid MCC"),
            CurrencyCode::parse("156").expect("CNY"),
            CountryCode::parse("CN").expect("China"),
            MerchantName::parse(&text(&merchant.name, 25))
                .unwrap_or_else(|_| MerchantName::parse("Merchant").expect("a valid name")),
            MerchantCity::parse(&text(&self.policy.city, 15)).expect("a configured city"),
        )
    }

    fn finish_code(
        &self,
        mut payload: Payload,
        merchant: &Merchant,
        order_reference: Option<OrderReference>,
    ) -> String {
        let account = ZhifuAccount {
            guid: zhifu_codes::Guid::parse(&self.policy.guid).expect("a configured GUID"),
            target: Target::Merchant(
                TargetId::parse(&merchant.id.get().to_string()).expect("digits"),
            ),
            order_reference,
        };
        payload
            .add_zhifu(&account)
            .expect("one template in an empty payload");
        zhifu_codes::encode(&payload).expect("a payload made of valid parts")
    }

    /// `{order id}.{tag}`: the tag makes references impossible to guess, so a code cannot be
    /// made up for someone else's order.
    pub fn reference(&self, order_id: i64) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(b"order\0");
        mac.update(&order_id.to_be_bytes());
        format!("{order_id}.{}", &hex(&mac.finalize().into_bytes())[..12])
    }

    /// The order a reference names, if its tag is right.
    pub fn order_of_reference(&self, reference: &str) -> Option<i64> {
        let (id, _) = reference.split_once('.')?;
        let order_id: i64 = id.parse().ok().filter(|&id| id > 0)?;
        (self.reference(order_id) == reference).then_some(order_id)
    }

    /// Reads a scanned merchant code of this institution.
    pub fn read_code(&self, payload_text: &str) -> Result<MerchantCode, OrderError> {
        let payload =
            zhifu_codes::decode(payload_text.trim()).map_err(|e| OrderError::CodeUnreadable {
                code: e.code.as_str(),
                message: e.message,
            })?;
        let accounts = payload
            .zhifu_accounts(&self.policy.guid)
            .map_err(|_| OrderError::CodeNotOurs)?;
        accounts
            .iter()
            .find_map(
                |account| match (&account.target, &account.order_reference) {
                    (Target::Merchant(_), Some(reference)) => self
                        .order_of_reference(reference.as_str())
                        .map(|order_id| MerchantCode::Order { order_id }),
                    (Target::Merchant(id), None) => id
                        .as_str()
                        .parse()
                        .ok()
                        .and_then(MerchantId::new)
                        .map(|merchant_id| MerchantCode::Static { merchant_id }),
                    (Target::Person(_), _) => None,
                },
            )
            .ok_or(OrderError::CodeNotOurs)
    }

    /// The order by the merchant's number, as that merchant may see it.
    pub fn by_out_trade_no(
        &self,
        people: &People,
        merchant_id: MerchantId,
        out_trade_no: &str,
    ) -> Result<OrderRow, OrderError> {
        check_out_trade_no(out_trade_no).map_err(|_| OrderError::NotFound)?;
        people
            .db()
            .read(|s| s.order_by_out_trade_no(merchant_id.get(), out_trade_no))?
            .ok_or(OrderError::NotFound)
    }

    /// The order by zhifu's transaction number, if it is this merchant's.
    pub fn by_transaction_id(
        &self,
        people: &People,
        merchant_id: MerchantId,
        transaction_id: i64,
    ) -> Result<OrderRow, OrderError> {
        people
            .db()
            .read(|s| s.order(transaction_id))?
            .filter(|order| order.merchant_id == merchant_id.get())
            .ok_or(OrderError::NotFound)
    }

    pub fn refund_by_out_refund_no(
        &self,
        people: &People,
        merchant_id: MerchantId,
        out_refund_no: &str,
    ) -> Result<RefundRow, OrderError> {
        people
            .db()
            .read(|s| s.refund_by_out_refund_no(merchant_id.get(), out_refund_no))?
            .ok_or(OrderError::NotFound)
    }

    pub fn refunds_of_order(
        &self,
        people: &People,
        order_id: i64,
    ) -> Result<Vec<RefundRow>, OrderError> {
        Ok(people.db().read(|s| s.refunds_of_order(order_id))?)
    }

    /// The merchant's orders paid in `[from_ms, to_ms)`, by id after `after_id`.
    pub fn paid_between(
        &self,
        people: &People,
        merchant_id: MerchantId,
        (from_ms, to_ms): (i64, i64),
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<OrderRow>, OrderError> {
        Ok(people
            .db()
            .read(|s| s.orders_paid_between(merchant_id.get(), from_ms, to_ms, after_id, limit))?)
    }

    /// The merchant's orders created in `[from_ms, to_ms)`, by id after `after_id`.
    pub fn created_between(
        &self,
        people: &People,
        merchant_id: MerchantId,
        (from_ms, to_ms): (i64, i64),
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<OrderRow>, OrderError> {
        Ok(people.db().read(|s| {
            s.orders_created_between(merchant_id.get(), from_ms, to_ms, after_id, limit)
        })?)
    }

    /// The merchant's refunds made in `[from_ms, to_ms)`, by id after `after_id`.
    pub fn refunds_between(
        &self,
        people: &People,
        merchant_id: MerchantId,
        (from_ms, to_ms): (i64, i64),
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<RefundRow>, OrderError> {
        Ok(people
            .db()
            .read(|s| s.refunds_between(merchant_id.get(), from_ms, to_ms, after_id, limit))?)
    }

    pub fn order(&self, people: &People, order_id: i64) -> Result<OrderRow, OrderError> {
        people
            .db()
            .read(|s| s.order(order_id))?
            .ok_or(OrderError::NotFound)
    }

    /// A wallet pays a native or in-wallet order (`MerchantCode::Order`) or a static code
    /// (with the amount the payer entered). The PIN was checked by the caller.
    #[allow(clippy::too_many_arguments)]
    pub fn pay_code_scanned(
        &self,
        people: &People,
        engine: &Engine,
        limits: &LimitPolicy,
        payer_id: i64,
        code: &MerchantCode,
        amount_minor: Option<u64>,
        key: &IdempotencyKey,
        now_ms: i64,
    ) -> Result<OrderRow, OrderError> {
        let order = match code {
            MerchantCode::Order { order_id } => {
                let order = self.order(people, *order_id)?;
                if amount_minor.is_some_and(|amount| amount != order.amount_minor) {
                    return Err(OrderError::AmountMismatch);
                }
                order
            }
            MerchantCode::Static { merchant_id } => {
                let amount_minor = amount_minor.ok_or(OrderError::AmountMissing)?;
                let merchant = merchants::merchant(people, *merchant_id)?;
                let digest = sha2::Sha256::new()
                    .chain_update(payer_id.to_be_bytes())
                    .chain_update(key.as_str().as_bytes())
                    .finalize();
                let order = NewOrder {
                    // "S" and 31 hex digits: the payer's key, made the merchant's number.
                    out_trade_no: format!("S{}", &hex(&digest)[..31]),
                    kind: OrderKind::Static,
                    amount_minor,
                    description: merchant.name.chars().take(127).collect(),
                };
                self.check_new(&order)?;
                let row =
                    self.new_row(merchant.id, &order, None, self.policy.native_ttl_ms, now_ms);
                self.insert_or_same(people, row)?
            }
        };
        let payment_key = format!("wallet:{payer_id}:{}", key.as_str());
        self.pay(
            people,
            engine,
            limits,
            order.id,
            payer_id,
            1,
            true,
            &payment_key,
            now_ms,
        )
    }

    /// The merchant scanned a consumer's pay code: redeems it and pays at once, or leaves the
    /// order `USERPAYING` until the consumer confirms with the PIN.
    #[allow(clippy::too_many_arguments)]
    pub fn pay_code_order(
        &self,
        people: &People,
        engine: &Engine,
        limits: &LimitPolicy,
        pay_codes: &PayCodes,
        merchant_id: MerchantId,
        order: &NewOrder,
        auth_code: &str,
        now_ms: i64,
    ) -> Result<OrderRow, OrderError> {
        assert_eq!(order.kind, OrderKind::PayCode);
        self.check_new(order)?;
        let row = self.new_row(
            merchant_id,
            order,
            Some(auth_code),
            self.policy.userpaying_ttl_ms,
            now_ms,
        );
        // A retry of a request that got through: the code is spent by then, answer as before.
        if let Some(existing) = people
            .db()
            .read(|s| s.order_by_out_trade_no(merchant_id.get(), &order.out_trade_no))?
        {
            return match existing.request_digest == row.request_digest {
                true => Ok(existing),
                false => Err(OrderError::OutTradeNoReused),
            };
        }
        merchants::merchant(people, merchant_id)?;
        let redeemer = format!("merchant:{}", merchant_id.get());
        let digest = row.request_digest.clone();
        // The code is taken and the order recorded with its payer in one write.
        let (payer_id, order) = pay_codes
            .redeem_and(people, auth_code, &redeemer, now_ms, move |s, payer_id| {
                let mut row = row;
                row.payer_id = Some(payer_id);
                s.order_insert(&row)
            })
            .map_err(OrderError::PayCode)?;
        if order.request_digest != digest {
            return Err(OrderError::OutTradeNoReused);
        }
        if order.payer_id != Some(payer_id) || order.state != NOTPAY {
            return Ok(order);
        }
        let without_pin = people
            .db()
            .read(|s| s.orders_without_pin_since(payer_id, shanghai_day_start_ms(now_ms)))?;
        if order.amount_minor > self.policy.pin_free_max_minor
            || without_pin >= self.policy.pin_free_per_day
        {
            let _order_lock = people.lock_order(order.id);
            let mut waiting = order.clone();
            waiting.state = USERPAYING.into();
            let written = waiting.clone();
            people
                .db()
                .write_plain(move |s| s.order_update(&written, NOTPAY))?;
            return Ok(waiting);
        }
        self.pay_by_code(people, engine, limits, order.id, payer_id, false, now_ms)
    }

    /// The consumer confirms a `USERPAYING` order with the PIN (checked by the caller): the
    /// code and the PIN are two factors.
    pub fn confirm(
        &self,
        people: &People,
        engine: &Engine,
        limits: &LimitPolicy,
        payer_id: i64,
        order_id: i64,
        now_ms: i64,
    ) -> Result<OrderRow, OrderError> {
        let order = self.order(people, order_id)?;
        if order.payer_id != Some(payer_id) {
            return Err(OrderError::NotFound);
        }
        self.pay_by_code(people, engine, limits, order.id, payer_id, true, now_ms)
    }

    /// Pays a pay-code order under its own key (so a retry is the same payment): the code is
    /// one factor, the PIN, when the consumer confirmed with it, a second. Refused for want of
    /// balance or allowance, the order fails (`PAYERROR`).
    #[allow(clippy::too_many_arguments)]
    fn pay_by_code(
        &self,
        people: &People,
        engine: &Engine,
        limits: &LimitPolicy,
        order_id: i64,
        payer_id: i64,
        pin_confirmed: bool,
        now_ms: i64,
    ) -> Result<OrderRow, OrderError> {
        let (factors, from) = match pin_confirmed {
            true => (2, USERPAYING),
            false => (1, NOTPAY),
        };
        let payment_key = format!("paycode:{order_id}");
        let paid = self.pay(
            people,
            engine,
            limits,
            order_id,
            payer_id,
            factors,
            pin_confirmed,
            &payment_key,
            now_ms,
        );
        if let Err(OrderError::NotEnoughBalance | OrderError::Limit(_)) = &paid {
            self.fail(people, order_id, from)?;
        }
        paid
    }

    /// Pay-code orders waiting for this payer's PIN.
    pub fn awaiting(
        &self,
        people: &People,
        payer_id: i64,
        now_ms: i64,
    ) -> Result<Vec<OrderRow>, OrderError> {
        let orders = people.db().read(|s| s.orders_awaiting_payer(payer_id))?;
        Ok(orders
            .into_iter()
            .filter(|order| shown_state(order, now_ms) == USERPAYING)
            .collect())
    }

    fn fail(&self, people: &People, order_id: i64, from: &'static str) -> Result<(), OrderError> {
        let _order_lock = people.lock_order(order_id);
        let Some(mut order) = people.db().read(|s| s.order(order_id))? else {
            return Ok(());
        };
        order.state = PAYERROR.into();
        people
            .db()
            .write_plain(move |s| s.order_update(&order, from))?;
        Ok(())
    }

    /// Pays an order from the payer's balance: under the order's lock, then the payer's, checks
    /// the state, the expiry and the limits, posts the chain, then records the payment and its
    /// notification in one write.
    #[allow(clippy::too_many_arguments)]
    fn pay(
        &self,
        people: &People,
        engine: &Engine,
        limits: &LimitPolicy,
        order_id: i64,
        payer_id: i64,
        factors: u8,
        pin_confirmed: bool,
        payment_key: &str,
        now_ms: i64,
    ) -> Result<OrderRow, OrderError> {
        let _order_lock = people.lock_order(order_id);
        if self.unrecorded().contains(&order_id) {
            return Err(OrderError::PaymentUnrecorded);
        }
        let order = self.order(people, order_id)?;
        let from_state = match order.state.as_str() {
            SUCCESS | REFUND if order.payer_id == Some(payer_id) => return Ok(order),
            SUCCESS | REFUND => return Err(OrderError::OrderPaid),
            NOTPAY | USERPAYING if now_ms >= order.expires_ms => {
                return Err(OrderError::OrderClosed);
            }
            NOTPAY
                if order.kind != OrderKind::PayCode.code() || order.payer_id == Some(payer_id) =>
            {
                NOTPAY
            }
            USERPAYING if order.payer_id == Some(payer_id) => USERPAYING,
            NOTPAY | USERPAYING => return Err(OrderError::NotFound),
            _ => return Err(OrderError::OrderClosed),
        };
        let merchant = merchants::merchant(
            people,
            MerchantId::new(order.merchant_id).expect("stored ids are positive"),
        )?;
        let fee = fee_minor(order.amount_minor, merchant.discount_rate_bps);
        let commission = match merchant.service_provider_id {
            Some(_) => commission_minor(fee, self.policy.commission_share_bps),
            None => 0,
        };
        let split = Split {
            merchant: merchant_account_id(merchant.id.get()),
            provider: merchant
                .service_provider_id
                .map(|p| commission_account_id(p.get())),
            amount_minor: order.amount_minor,
            fee_minor: fee,
            commission_minor: commission,
        };
        let payer_lock = people.lock_person(payer_id);
        let (class, usage) = people.payer_standing(&payer_lock, now_ms)?;
        limits
            .check_balance_payment(class, factors, usage, order.amount_minor)
            .map_err(OrderError::Limit)?;
        let ids = ChainIds::derive(
            "merchant payment",
            &[&order.id.to_be_bytes(), payment_key.as_bytes()],
        );
        let reference = Reference::parse(&format!("order:{}", order.id));
        self.post_payment(
            engine,
            wallet_account_id(payer_id),
            &split,
            &ids,
            reference,
            &merchant,
        )?;
        let mut paid = order.clone();
        paid.state = SUCCESS.into();
        paid.payer_id = Some(payer_id);
        paid.pin_confirmed = pin_confirmed;
        paid.fee_minor = fee;
        paid.commission_minor = commission;
        paid.paid_ms = Some(now_ms);
        // The money moved: if its record cannot be written now, nobody may pay the order again
        // until the reconciler has written it from the ledger.
        if let Err(e) =
            self.record_paid(people, Some(&payer_lock), paid.clone(), from_state, now_ms)
        {
            self.unrecorded().insert(order_id);
            return Err(e);
        }
        Ok(paid)
    }

    fn post_payment(
        &self,
        engine: &Engine,
        payer: AccountId,
        split: &Split,
        ids: &ChainIds,
        reference: Option<Reference>,
        merchant: &Merchant,
    ) -> Result<(), OrderError> {
        let fee_income = AccountId::new(FEE_INCOME).expect("a chart id");
        let mut legs = vec![(
            ids.main,
            payer,
            split.merchant,
            split.amount_minor,
            CODE_MERCHANT_PAYMENT,
        )];
        if split.fee_minor > 0 {
            legs.push((
                ids.fee,
                split.merchant,
                fee_income,
                split.fee_minor,
                CODE_MERCHANT_FEE,
            ));
        }
        if let (Some(provider), true) = (split.provider, split.commission_minor > 0) {
            legs.push((
                ids.commission,
                fee_income,
                provider,
                split.commission_minor,
                CODE_PROVIDER_COMMISSION,
            ));
        }
        self.ensure_accounts(engine, merchant)?;
        let codes = self.post_chain(engine, &legs, reference)?;
        chain_outcome(&codes, OrderError::NotEnoughBalance)
    }

    /// Opens the merchant's (and its provider's) ledger accounts the first time this process
    /// pays it: opening is idempotent, and a transfer to an account that does not exist yet
    /// would be refused for good under its id.
    fn ensure_accounts(&self, engine: &Engine, merchant: &Merchant) -> Result<(), OrderError> {
        let id = merchant.id.get();
        let opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if opened.contains(&id) {
            return Ok(());
        }
        drop(opened);
        let mut accounts = merchant_accounts(id);
        if let Some(provider) = merchant.service_provider_id {
            accounts.extend(merchant_accounts(provider.get()));
        }
        let codes = engine.open_accounts(accounts).map_err(OrderError::Engine)?;
        if let Some(code) = codes
            .iter()
            .find(|c| !matches!(c, AccountCode::Ok | AccountCode::Exists))
        {
            let problem = format!(
                "a merchant account exists with other fields: {}",
                code.as_str()
            );
            return Err(StoreError::Corrupt(problem).into());
        }
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if opened.len() >= OPENED_REMEMBERED_MAX {
            opened.clear();
        }
        opened.insert(id);
        Ok(())
    }

    fn post_chain(
        &self,
        engine: &Engine,
        legs: &[(TransferId, AccountId, AccountId, u64, u16)],
        reference: Option<Reference>,
    ) -> Result<Vec<TransferCode>, OrderError> {
        let last = legs.len() - 1;
        let transfers = legs
            .iter()
            .enumerate()
            .map(
                |(index, &(id, debit, credit, amount_minor, code))| NewTransfer {
                    id,
                    op: TransferOp::Posted {
                        debit_account_id: debit,
                        credit_account_id: credit,
                        amount_minor,
                    },
                    code,
                    reference: reference.clone(),
                    linked: index < last,
                },
            )
            .collect();
        engine
            .create_transfers(transfers)
            .map_err(OrderError::Engine)
    }

    /// Closes an unpaid order; closing a closed order again is harmless.
    pub fn close(
        &self,
        people: &People,
        merchant_id: MerchantId,
        out_trade_no: &str,
        now_ms: i64,
    ) -> Result<OrderRow, OrderError> {
        let order = self.by_out_trade_no(people, merchant_id, out_trade_no)?;
        let _order_lock = people.lock_order(order.id);
        let order = self.order(people, order.id)?;
        match order.state.as_str() {
            NOTPAY | USERPAYING => {
                let from = if order.state == NOTPAY {
                    NOTPAY
                } else {
                    USERPAYING
                };
                let mut closed = order.clone();
                closed.state = CLOSED.into();
                closed.closed_ms = Some(now_ms);
                let written = closed.clone();
                people
                    .db()
                    .write_plain(move |s| s.order_update(&written, from))?;
                Ok(closed)
            }
            CLOSED | REVOKED | PAYERROR => Ok(order),
            _ => Err(OrderError::OrderPaid),
        }
    }

    /// Reverses a pay-code order whose outcome the merchant does not know: closes it when
    /// unpaid, refunds what is left of it when paid; either way it ends `REVOKED`. The ledger
    /// is asked first, so that a payment whose row was never written is refunded too.
    pub fn reverse(
        &self,
        people: &People,
        engine: &Engine,
        ledger: &mut dyn zhifu_store::Store,
        merchant_id: MerchantId,
        out_trade_no: &str,
        now_ms: i64,
    ) -> Result<OrderRow, OrderError> {
        let order = self.by_out_trade_no(people, merchant_id, out_trade_no)?;
        if order.kind != OrderKind::PayCode.code() {
            return Err(OrderError::NotReversible);
        }
        // A payment or refunds cut short are finished first, so that what was paid and what
        // is left are known: a reversal is asked for exactly when the merchant does not know.
        if matches!(order.state.as_str(), NOTPAY | USERPAYING | CLOSED) {
            self.record_ledger_payment(people, ledger, order.id, now_ms)?;
        }
        for refund in people.db().read(|s| s.refunds_of_order(order.id))? {
            if refund.state == PROCESSING {
                self.finish_processing_refund(people, engine, &refund, now_ms)?;
            }
        }
        let order = self.order(people, order.id)?;
        if matches!(order.state.as_str(), SUCCESS | REFUND)
            && order.refunded_minor < order.amount_minor
        {
            let refund = NewRefund {
                out_refund_no: format!("reverse-{}", order.id),
                amount_minor: order.amount_minor - order.refunded_minor,
                reason: Some("reversed".into()),
            };
            self.refund(people, engine, merchant_id, order.id, &refund, now_ms)?;
        }
        let _order_lock = people.lock_order(order.id);
        let order = self.order(people, order.id)?;
        if order.state == REVOKED {
            return Ok(order);
        }
        let from = match order.state.as_str() {
            NOTPAY => NOTPAY,
            USERPAYING => USERPAYING,
            SUCCESS => SUCCESS,
            REFUND => REFUND,
            CLOSED => CLOSED,
            _ => PAYERROR,
        };
        let mut revoked = order;
        revoked.state = REVOKED.into();
        revoked.closed_ms = Some(now_ms);
        let written = revoked.clone();
        people
            .db()
            .write_plain(move |s| s.order_update(&written, from))?;
        Ok(revoked)
    }

    /// Refunds part or all of a paid order to the payer's balance, at once.
    pub fn refund(
        &self,
        people: &People,
        engine: &Engine,
        merchant_id: MerchantId,
        order_id: i64,
        refund: &NewRefund,
        now_ms: i64,
    ) -> Result<RefundRow, OrderError> {
        check_out_refund_no(&refund.out_refund_no)?;
        if let Some(reason) = &refund.reason {
            check_text(reason)?;
        }
        if refund.amount_minor == 0 || refund.amount_minor > self.policy.order_amount_max_minor {
            return Err(OrderError::AmountInvalid);
        }
        let _order_lock = people.lock_order(order_id);
        let order = self.order(people, order_id)?;
        if order.merchant_id != merchant_id.get() {
            return Err(OrderError::NotFound);
        }
        if let Some(existing) = people
            .db()
            .read(|s| s.refund_by_out_refund_no(merchant_id.get(), &refund.out_refund_no))?
        {
            if existing.order_id != order.id || existing.amount_minor != refund.amount_minor {
                return Err(OrderError::OutRefundNoReused);
            }
            // A refund cut short (a crash, a ledger error) is finished by its retry.
            return match existing.state == PROCESSING {
                true => self.finish_refund(people, engine, &order, existing, now_ms),
                false => Ok(existing),
            };
        }
        let refunds_before = people.db().read(|s| s.refunds_of_order(order.id))?;
        self.check_refundable(&order, &refunds_before, refund.amount_minor, now_ms)?;
        let (fee_back, commission_back) =
            refund_shares(&order, &refunds_before, refund.amount_minor);
        // Recorded before its chain, so that a crash in between leaves a row to finish: the
        // refund's ledger ids derive from its `out_refund_no`, and nothing else could find the
        // money again.
        let row = RefundRow {
            id: 0,
            order_id: order.id,
            merchant_id: merchant_id.get(),
            out_refund_no: refund.out_refund_no.clone(),
            amount_minor: refund.amount_minor,
            fee_minor: fee_back,
            commission_minor: commission_back,
            reason: refund.reason.clone(),
            state: PROCESSING.into(),
            created_ms: now_ms,
            finished_ms: None,
        };
        let stored = people.db().write_plain(move |s| s.refund_insert(&row))?;
        // Another order's refund under the same `out_refund_no`, stored meanwhile.
        if stored.order_id != order.id || stored.amount_minor != refund.amount_minor {
            return Err(OrderError::OutRefundNoReused);
        }
        self.finish_refund(people, engine, &order, stored, now_ms)
    }

    /// Posts a recorded refund's chain and records the outcome: `SUCCESS`, with the order's
    /// sums and the merchant's notification, or, when the ledger refused the chain, no refund
    /// at all. Posting again is harmless: the ids are the refund's own, so the ledger moves
    /// the money once. An engine error leaves the refund `PROCESSING` for a retry or the
    /// recovery pass. Runs under the order's lock.
    pub(crate) fn finish_refund(
        &self,
        people: &People,
        engine: &Engine,
        order: &OrderRow,
        refund: RefundRow,
        now_ms: i64,
    ) -> Result<RefundRow, OrderError> {
        assert_eq!(refund.order_id, order.id);
        assert_eq!(refund.state, PROCESSING);
        let merchant_id = MerchantId::new(order.merchant_id).expect("stored ids are positive");
        let merchant = merchants::merchant(people, merchant_id)?;
        let payer_id = order.payer_id.expect("a paid order has a payer");
        let ids = ChainIds::derive(
            "merchant refund",
            &[
                &merchant_id.get().to_be_bytes(),
                refund.out_refund_no.as_bytes(),
            ],
        );
        let split = Split {
            merchant: merchant_account_id(merchant.id.get()),
            provider: merchant
                .service_provider_id
                .map(|p| commission_account_id(p.get())),
            amount_minor: refund.amount_minor,
            fee_minor: refund.fee_minor,
            commission_minor: refund.commission_minor,
        };
        match self.post_refund(engine, wallet_account_id(payer_id), &split, &ids, order.id) {
            Ok(()) => {}
            // Unknown outcome, or ids the ledger holds with another payload (the chain may
            // have moved money): the refund stays `PROCESSING` for a retry or an operator.
            Err(unknown @ (OrderError::Engine(_) | OrderError::KeyReused)) => return Err(unknown),
            Err(refused) => {
                let id = refund.id;
                people.db().write_plain(move |s| s.refund_forget(id))?;
                return Err(refused);
            }
        }
        let mut refunded = order.clone();
        if order.state != REVOKED {
            refunded.state = REFUND.into();
        }
        refunded.refunded_minor += refund.amount_minor;
        refunded.refund_count += 1;
        assert!(
            refunded.refunded_minor <= refunded.amount_minor,
            "refunds above the paid amount"
        );
        let from = stored_state(&order.state);
        let mut finished = refund;
        finished.state = SUCCESS.into();
        // Now, not when it was requested: recovery may finish it a day later, and the bills
        // count it on the day the merchant was told.
        finished.finished_ms = Some(now_ms);
        let written = finished.clone();
        let event = event(
            &refunded,
            "REFUND.SUCCESS",
            &format!("refund:{}:{}", finished.order_id, finished.id),
            now_ms,
        );
        // Under the order lock neither the refund nor the order can have moved; if one did,
        // this job is undone (and only this one: the writer's batch goes on).
        people.db().write_plain(move |s| {
            if !s.refund_finish(written.id, SUCCESS, now_ms)? || !s.order_update(&refunded, from)? {
                return Err(StoreError::Corrupt(
                    "a refund or its order changed under the order's lock".into(),
                ));
            }
            s.notification_insert(&event)
        })?;
        Ok(finished)
    }

    /// Records the payment the ledger holds for an order whose row says it is unpaid: the
    /// chain was posted and the process stopped before the row was written. The payer, the
    /// fee and the commission are the chain's; the merchant is notified as for any payment.
    /// `None` when the ledger holds no payment for it (or the order is not unpaid). Runs
    /// under the order's lock.
    pub(crate) fn record_ledger_payment(
        &self,
        people: &People,
        ledger: &mut dyn zhifu_store::Store,
        order_id: i64,
        now_ms: i64,
    ) -> Result<Option<LedgerPayment>, OrderError> {
        let _order_lock = people.lock_order(order_id);
        let order = self.order(people, order_id)?;
        if !matches!(order.state.as_str(), NOTPAY | USERPAYING | CLOSED) {
            return Ok(None);
        }
        let reference = Reference::parse(&format!("order:{}", order.id)).expect("a reference");
        let chain = ledger.transfers_by_reference(&reference, CHAIN_TRANSFERS_MAX)?;
        let Some(main_at) = chain.iter().position(|t| t.code == CODE_MERCHANT_PAYMENT) else {
            return Ok(None);
        };
        let main = &chain[main_at];
        let payer_id = wallet_owner(main.debit_account_id).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "order {} was paid from a non-wallet account",
                order.id
            ))
        })?;
        // The legs that follow the payment in its chain, up to the next payment, if any.
        let legs = chain[main_at + 1..]
            .iter()
            .take_while(|t| t.code != CODE_MERCHANT_PAYMENT);
        let amount_of = |code: u16| {
            legs.clone()
                .find(|t| t.code == code)
                .map_or(0, |t| t.amount_minor)
        };
        let extra_chains = chain[main_at + 1..]
            .iter()
            .filter(|t| t.code == CODE_MERCHANT_PAYMENT)
            .count() as u32;
        let mut paid = order.clone();
        paid.state = SUCCESS.into();
        paid.payer_id = Some(payer_id);
        // A pay-code order was paid with the PIN only from `USERPAYING`; one closed since
        // counts as paid without it (the daily count of PIN-free payments errs on the safe
        // side). Every other payment was confirmed with the PIN.
        paid.pin_confirmed = order.kind != OrderKind::PayCode.code() || order.state == USERPAYING;
        paid.fee_minor = amount_of(CODE_MERCHANT_FEE);
        paid.commission_minor = amount_of(CODE_PROVIDER_COMMISSION);
        // The ledger's time; within the order's life as this process sees it (a clock that
        // stepped back must not panic here).
        let ledger_ms = main.timestamp_ns / 1_000_000;
        paid.paid_ms = Some(ledger_ms.min(now_ms).max(order.created_ms));
        paid.closed_ms = None;
        self.record_paid(people, None, paid, stored_state(&order.state), now_ms)?;
        Ok(Some(LedgerPayment { extra_chains }))
    }

    /// Writes a paid order (from `from`) and its `TRANSACTION.SUCCESS` notification in one
    /// job. Runs under the order's lock, so the state cannot have moved since it was read; if
    /// it did, nothing is written and the caller is told.
    /// The orders paid in the ledger whose rows are still to be written.
    fn unrecorded(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.paid_unrecorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records, from the ledger, the payments that reached it while their rows could not be
    /// written; an order is let go once its row says it is no longer unpaid. Returns how many
    /// were recorded and how many could not be looked at.
    pub(crate) fn record_unrecorded(
        &self,
        people: &People,
        ledger: &mut dyn zhifu_store::Store,
        now_ms: i64,
    ) -> (u32, u32) {
        let waiting: Vec<i64> = self.unrecorded().iter().copied().collect();
        let (mut recorded, mut failed) = (0, 0);
        for order_id in waiting {
            match self.record_ledger_payment(people, ledger, order_id, now_ms) {
                Ok(found) => {
                    recorded += u32::from(found.is_some());
                    self.unrecorded().remove(&order_id);
                }
                Err(_) => failed += 1,
            }
        }
        (recorded, failed)
    }

    /// Records a payment and its notification in one write. With the payer's lock held (a
    /// payment being made), quietly, counting it in what the payer spent; without (a payment
    /// recovered from the ledger), as a write that empties the caches.
    fn record_paid(
        &self,
        people: &People,
        payer: Option<&PersonLock<'_>>,
        paid: OrderRow,
        from: &'static str,
        now_ms: i64,
    ) -> Result<(), OrderError> {
        let amount_minor = paid.amount_minor;
        let event = event(
            &paid,
            "TRANSACTION.SUCCESS",
            &format!("order:{}", paid.id),
            now_ms,
        );
        let write = move |s: &mut dyn zhifu_store::WalletStore| {
            let updated = s.order_update(&paid, from)?;
            if updated {
                s.notification_insert(&event)?;
            }
            Ok(updated)
        };
        let updated = match payer {
            Some(payer) => {
                let updated = people.db().write_plain_quiet(write)?;
                if updated {
                    people.note_spent(payer, amount_minor, None);
                }
                updated
            }
            None => people.db().write_plain(write)?,
        };
        match updated {
            true => Ok(()),
            false => {
                Err(StoreError::Corrupt("an order changed state under its lock".into()).into())
            }
        }
    }

    /// Finishes a refund left `PROCESSING`: under its order's lock, if it still is.
    pub(crate) fn finish_processing_refund(
        &self,
        people: &People,
        engine: &Engine,
        refund: &RefundRow,
        now_ms: i64,
    ) -> Result<RefundRow, OrderError> {
        let _order_lock = people.lock_order(refund.order_id);
        let order = self.order(people, refund.order_id)?;
        let current = people
            .db()
            .read(|s| s.refund_by_out_refund_no(refund.merchant_id, &refund.out_refund_no))?;
        match current {
            Some(current) if current.id == refund.id && current.state == PROCESSING => {
                self.finish_refund(people, engine, &order, current, now_ms)
            }
            Some(current) => Ok(current),
            None => Err(OrderError::NotFound),
        }
    }

    /// Whether `amount_minor` may be refunded, counting the refunds recorded so far, those
    /// still `PROCESSING` included.
    fn check_refundable(
        &self,
        order: &OrderRow,
        refunds_before: &[RefundRow],
        amount_minor: u64,
        now_ms: i64,
    ) -> Result<(), OrderError> {
        match order.state.as_str() {
            SUCCESS | REFUND => {}
            REVOKED if order.paid_ms.is_some() => {}
            _ => return Err(OrderError::OrderNotPaid),
        }
        let paid_ms = order.paid_ms.expect("a paid order has a payment time");
        if now_ms >= paid_ms + self.policy.refund_window_ms {
            return Err(OrderError::RefundWindowPassed);
        }
        if refunds_before.len() >= self.policy.refunds_per_order_max as usize {
            return Err(OrderError::RefundsTooMany);
        }
        let refunded_minor: u64 = refunds_before.iter().map(|r| r.amount_minor).sum();
        let left_minor = order.amount_minor.saturating_sub(refunded_minor);
        if amount_minor > left_minor {
            return Err(OrderError::RefundExceedsPaid { left_minor });
        }
        Ok(())
    }

    fn post_refund(
        &self,
        engine: &Engine,
        payer: AccountId,
        split: &Split,
        ids: &ChainIds,
        order_id: i64,
    ) -> Result<(), OrderError> {
        let fee_income = AccountId::new(FEE_INCOME).expect("a chart id");
        // The commission and the fee come back first, so that the merchant's account holds
        // them before the refund leaves it.
        let mut legs = Vec::with_capacity(3);
        if let (Some(provider), true) = (split.provider, split.commission_minor > 0) {
            legs.push((
                ids.commission,
                provider,
                fee_income,
                split.commission_minor,
                CODE_PROVIDER_COMMISSION_REFUND,
            ));
        }
        if split.fee_minor > 0 {
            legs.push((
                ids.fee,
                fee_income,
                split.merchant,
                split.fee_minor,
                CODE_MERCHANT_FEE_REFUND,
            ));
        }
        legs.push((
            ids.main,
            split.merchant,
            payer,
            split.amount_minor,
            CODE_MERCHANT_REFUND,
        ));
        let codes = self.post_chain(
            engine,
            &legs,
            Reference::parse(&format!("order:{order_id}")),
        )?;
        chain_outcome(&codes, OrderError::MerchantBalanceShort)
    }
}

/// The chain's outcome: all in the ledger, or why not (`short` when an account lacked funds).
fn chain_outcome(codes: &[TransferCode], short: OrderError) -> Result<(), OrderError> {
    if codes.iter().all(|c| c.is_success()) {
        return Ok(());
    }
    if codes.contains(&TransferCode::ExistsWithDifferentPayload) {
        return Err(OrderError::KeyReused);
    }
    let cause = codes
        .iter()
        .copied()
        .find(|c| !c.is_success() && *c != TransferCode::LinkedEventFailed)
        .unwrap_or(TransferCode::LinkedEventFailed);
    match cause {
        TransferCode::ExceedsBalance => Err(short),
        code => Err(OrderError::Ledger(code)),
    }
}

/// The outbox row for an event about an order; due at once.
fn event(order: &OrderRow, event_type: &str, subject: &str, now_ms: i64) -> NotificationRow {
    NotificationRow {
        id: 0,
        event_id: format!("{event_type}:{subject}"),
        merchant_id: order.merchant_id,
        event_type: event_type.into(),
        resource: subject.into(),
        created_ms: now_ms,
        attempts: 0,
        next_ms: Some(now_ms),
        delivered_ms: None,
    }
}

//! Receive-money codes (收款码, SPEC §3): a person's static EMV code, optionally with a preset
//! amount. Whoever scans it pays that person at once (face to face, no acceptance step),
//! within their balance limits and the **static-code cap of 500 yuan a day** (PBoC grade D).
//!
//! The code names the person by a receive id, `{user_id}.{tag}`, where the tag is a keyed hash
//! of the user id: a code cannot be made up for someone else, and the id says nothing a
//! scanner could use against the person (the name in the code is masked).

use super::chart::{CODE_RECEIVE_CODE, wallet_account_id};
use super::funding::{IdempotencyKey, derived_transfer_id};
use super::limits::{LimitError, LimitPolicy};
use super::p2p::{P2pError, TRANSFER_MAX_MINOR, create_one};
use super::people::{People, PeopleError, PersonLock};
use crate::derive_key;
use crate::time::shanghai_day_start_ms;
use hmac::{KeyInit, Mac};
use std::fmt;
use zhifu_codes::{
    Amount, CountryCode, CurrencyCode, MerchantCategoryCode, MerchantCity, MerchantName, Payload,
    Target, TargetId, ZhifuAccount,
};
use zhifu_ledger::{NewTransfer, TransferOp};
use zhifu_store::{Engine, P2pRow, TransferRecord};

#[derive(Clone, Debug)]
pub struct ReceiveCodePolicy {
    /// The institution's GUID in its codes' template (a reverse domain).
    pub guid: String,
    /// The city the codes name (EMV requires one).
    pub city: String,
    /// What one payer may pay to static codes per day, China Standard Time.
    pub static_daily_cap_minor: u64,
}

impl Default for ReceiveCodePolicy {
    fn default() -> ReceiveCodePolicy {
        ReceiveCodePolicy {
            guid: zhifu_codes::ZHIFU_GUID.into(),
            city: "Shanghai".into(),
            static_daily_cap_minor: 50_000,
        }
    }
}

/// Money transfers (ISO 18245), the category a person's code carries.
const PERSON_MCC: &str = "4829";
/// The tag's length in hex digits: 40 bits, enough that guessing one is hopeless online.
const TAG_HEX_LEN: usize = 10;

#[derive(Debug)]
pub enum ReceiveCodeError {
    /// Not a valid EMV code: the codec's stable code and message.
    Unreadable {
        code: &'static str,
        message: String,
    },
    /// A valid code, but not a person's code of this institution.
    NotOurs,
    /// The code has no amount and none was given.
    AmountMissing,
    /// The code presets an amount and another was given.
    AmountMismatch,
    StaticDailyCap {
        left_minor: u64,
    },
    P2p(P2pError),
}

impl ReceiveCodeError {
    pub fn code(&self) -> &'static str {
        match self {
            ReceiveCodeError::Unreadable { code, .. } => code,
            ReceiveCodeError::NotOurs => "RECEIVE_CODE_NOT_OURS",
            ReceiveCodeError::AmountMissing => "AMOUNT_MISSING",
            ReceiveCodeError::AmountMismatch => "AMOUNT_MISMATCH",
            ReceiveCodeError::StaticDailyCap { .. } => "LIMIT_STATIC_CODE_DAILY",
            ReceiveCodeError::P2p(e) => e.code(),
        }
    }
}

impl fmt::Display for ReceiveCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiveCodeError::Unreadable { message, .. } => {
                write!(f, "not a payment code: {message}")
            }
            ReceiveCodeError::NotOurs => {
                f.write_str("this is not a person's receive code of this wallet")
            }
            ReceiveCodeError::AmountMissing => f.write_str("enter the amount to pay"),
            ReceiveCodeError::AmountMismatch => f.write_str("the code asks for another amount"),
            ReceiveCodeError::StaticDailyCap { left_minor } => write!(
                f,
                "payments to static codes are capped at 500 yuan a day; {left_minor} fen left today"
            ),
            ReceiveCodeError::P2p(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReceiveCodeError {}

impl From<P2pError> for ReceiveCodeError {
    fn from(e: P2pError) -> ReceiveCodeError {
        ReceiveCodeError::P2p(e)
    }
}

impl From<PeopleError> for ReceiveCodeError {
    fn from(e: PeopleError) -> ReceiveCodeError {
        ReceiveCodeError::P2p(P2pError::People(e))
    }
}

impl From<zhifu_store::StoreError> for ReceiveCodeError {
    fn from(e: zhifu_store::StoreError) -> ReceiveCodeError {
        ReceiveCodeError::P2p(P2pError::People(PeopleError::Store(e)))
    }
}

/// Makes and reads receive codes. Cheap to clone.
#[derive(Clone)]
pub struct ReceiveCodes {
    key: std::sync::Arc<[u8]>,
    policy: ReceiveCodePolicy,
}

impl ReceiveCodes {
    pub fn new(secret: &[u8], policy: ReceiveCodePolicy) -> ReceiveCodes {
        ReceiveCodes {
            key: derive_key(secret, "receive codes").into(),
            policy,
        }
    }

    /// The person's code, with `amount_minor` preset if given. Only a verified person can
    /// receive, so only they get a code; the name shown is the masked real name.
    pub fn code_for(
        &self,
        people: &People,
        user_id: i64,
        amount_minor: Option<u64>,
    ) -> Result<String, ReceiveCodeError> {
        let identity = people
            .identity(user_id)?
            .ok_or(P2pError::Limit(LimitError::RecipientUnverified))?;
        if amount_minor.is_some_and(|a| a == 0 || a > TRANSFER_MAX_MINOR) {
            return Err(P2pError::AmountInvalid.into());
        }
        let text = |value: &str| value.chars().take(15).collect::<String>();
        let mut payload = Payload::new(
            MerchantCategoryCode::parse(PERSON_MCC).expect("a valid MCC"),
            CurrencyCode::parse("156").expect("CNY"),
            CountryCode::parse("CN").expect("China"),
            MerchantName::parse(&text(&identity.name_masked))
                .map_err(|_| ReceiveCodeError::NotOurs)?,
            MerchantCity::parse(&text(&self.policy.city)).expect("a configured city"),
        );
        payload.amount =
            amount_minor.map(|a| Amount::from_minor_units(a, 2).expect("an amount within limits"));
        let account = ZhifuAccount {
            guid: zhifu_codes::Guid::parse(&self.policy.guid).expect("a configured GUID"),
            target: Target::Person(
                TargetId::parse(&self.receive_id(user_id)).expect("digits, a dot and hex"),
            ),
            order_reference: None,
        };
        payload
            .add_zhifu(&account)
            .expect("one template in an empty payload");
        Ok(zhifu_codes::encode(&payload).expect("a payload made of valid parts"))
    }

    /// Whose code this is and what it asks: (payee, preset amount).
    pub fn read(&self, payload_text: &str) -> Result<(i64, Option<u64>), ReceiveCodeError> {
        let payload =
            zhifu_codes::decode(payload_text.trim()).map_err(|e| ReceiveCodeError::Unreadable {
                code: e.code.as_str(),
                message: e.message,
            })?;
        let accounts = payload
            .zhifu_accounts(&self.policy.guid)
            .map_err(|_| ReceiveCodeError::NotOurs)?;
        let payee_id = accounts
            .iter()
            .find_map(|account| match &account.target {
                Target::Person(id) => self.user_of(id.as_str()),
                Target::Merchant(_) => None,
            })
            .ok_or(ReceiveCodeError::NotOurs)?;
        let preset = match &payload.amount {
            None => None,
            Some(amount) => Some(amount.minor_units(2).ok_or(ReceiveCodeError::NotOurs)?),
        };
        Ok((payee_id, preset))
    }

    /// Pays the person whose code `payload_text` is. Runs under the payer's person lock, so
    /// the limits and the static-code cap hold against concurrent payments.
    #[allow(clippy::too_many_arguments)]
    pub fn pay(
        &self,
        people: &People,
        engine: &Engine,
        limits: &LimitPolicy,
        payer_id: i64,
        payload_text: &str,
        amount_minor: Option<u64>,
        key: &IdempotencyKey,
        now_ms: i64,
    ) -> Result<P2pRow, ReceiveCodeError> {
        let (payee_id, preset) = self.read(payload_text)?;
        let amount_minor = match (preset, amount_minor) {
            (Some(preset), Some(given)) if preset != given => {
                return Err(ReceiveCodeError::AmountMismatch);
            }
            (Some(amount), _) | (None, Some(amount)) => amount,
            (None, None) => return Err(ReceiveCodeError::AmountMissing),
        };
        if amount_minor == 0 || amount_minor > TRANSFER_MAX_MINOR {
            return Err(P2pError::AmountInvalid.into());
        }
        if payee_id == payer_id {
            return Err(P2pError::PayeeIsPayer.into());
        }
        let transfer_id = derived_transfer_id("receive code", payer_id, key);
        let id_text = transfer_id.get().to_string();
        let payer = people.lock_person(payer_id);
        if let Some(existing) = people.db().read(|s| s.p2p(&id_text))? {
            if existing.payee_id != payee_id || existing.amount_minor != amount_minor {
                return Err(P2pError::KeyReused.into());
            }
            // A crash may have come between the payment's commit and this record.
            record_static_payment(people, &existing)?;
            return Ok(existing);
        }
        self.check_limits(people, limits, &payer, payee_id, amount_minor, now_ms)?;
        let payment = NewTransfer {
            id: transfer_id,
            op: TransferOp::Posted {
                debit_account_id: wallet_account_id(payer_id),
                credit_account_id: wallet_account_id(payee_id),
                amount_minor,
            },
            code: CODE_RECEIVE_CODE,
            reference: None,
            linked: false,
        };
        let row = P2pRow {
            transfer_id: id_text,
            payer_id,
            payee_id,
            amount_minor,
            created_ms: now_ms,
            arrives_ms: now_ms,
            expires_ms: now_ms,
            state: "accepted".into(),
        };
        create_one(
            people,
            engine,
            payment,
            vec![TransferRecord::P2pMade(row.clone())],
        )?;
        record_static_payment(people, &row)?;
        Ok(row)
    }

    fn check_limits(
        &self,
        people: &People,
        limits: &LimitPolicy,
        payer: &PersonLock<'_>,
        payee_id: i64,
        amount_minor: u64,
        now_ms: i64,
    ) -> Result<(), ReceiveCodeError> {
        let payer_id = payer.user_id();
        if !people.class(payee_id)?.can_receive() {
            return Err(P2pError::Limit(LimitError::RecipientUnverified).into());
        }
        let (class, usage) = people.payer_standing(payer, now_ms)?;
        // The PIN is one factor.
        limits
            .check_balance_payment(class, 1, usage, amount_minor)
            .map_err(P2pError::Limit)?;
        let day_start_ms = shanghai_day_start_ms(now_ms);
        let spent = people
            .db()
            .read(|s| s.static_code_spent_since(payer_id, day_start_ms))?;
        let left_minor = self.policy.static_daily_cap_minor.saturating_sub(spent);
        match amount_minor > left_minor {
            true => Err(ReceiveCodeError::StaticDailyCap { left_minor }),
            false => Ok(()),
        }
    }

    fn receive_id(&self, user_id: i64) -> String {
        format!("{user_id}.{}", self.tag(user_id))
    }

    /// The user a receive id names, if its tag is right.
    fn user_of(&self, receive_id: &str) -> Option<i64> {
        let (user, tag) = receive_id.split_once('.')?;
        let user_id: i64 = user.parse().ok().filter(|&id| id > 0)?;
        // Both sides are hex of a fixed length; a plain comparison leaks nothing useful,
        // as the tag of any id is public on that person's code anyway.
        (tag == self.tag(user_id)).then_some(user_id)
    }

    fn tag(&self, user_id: i64) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(&user_id.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        digest
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()[..TAG_HEX_LEN]
            .to_owned()
    }
}

/// Counts a payment against the payer's daily static-code cap. Not quiet: the payment's row,
/// committed with it by the ledger's writer, changed the payer's spending, and this write
/// moves the wallet's generation on once it is durable (the payer's lock is still held).
fn record_static_payment(people: &People, row: &P2pRow) -> Result<(), ReceiveCodeError> {
    let recorded = row.clone();
    people.db().write_plain(move |s| {
        s.static_code_payment_insert(
            &recorded.transfer_id,
            recorded.payer_id,
            recorded.amount_minor,
            recorded.created_ms,
        )
    })?;
    Ok(())
}

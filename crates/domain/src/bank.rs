//! The banks behind wallets (SPEC §1): card binding with the four-element check, pulling
//! money from a card (top-up), paying out to one (withdrawal), and asking what became of an
//! operation whose answer was lost.
//!
//! [`SimulatedBank`] is the built-in default. It can be told to fail or to time out, so that
//! every failure path can be exercised; a timeout may come after the bank did the work, the
//! case that must never pay twice or lose money.

use crate::wallet::identity::{CardNumber, IdNumber, Phone};
use hmac::{KeyInit, Mac};
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

/// Who claims to hold a card: checked by the bank with the card itself (four elements).
pub struct Holder<'a> {
    pub name: &'a str,
    pub id_number: &'a IdNumber,
    pub phone: &'a Phone,
}

/// A card as the wallet may keep it: the bank's token, never the number.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BankCard {
    pub token: String,
    pub bank: String,
    pub last_four: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BankError {
    /// The holder's data does not match the bank's records.
    HolderMismatch,
    /// The card is unknown, blocked or the token is not one of ours.
    CardInvalid,
    InsufficientFunds,
    /// The bank refused this operation (including one key reused for another operation).
    Declined,
    /// No answer in time: the operation may or may not have happened. Ask [`Bank::outcome`].
    Timeout,
}

impl BankError {
    pub fn code(self) -> &'static str {
        match self {
            BankError::HolderMismatch => "BANK_HOLDER_MISMATCH",
            BankError::CardInvalid => "BANK_CARD_INVALID",
            BankError::InsufficientFunds => "BANK_INSUFFICIENT_FUNDS",
            BankError::Declined => "BANK_DECLINED",
            BankError::Timeout => "BANK_TIMEOUT",
        }
    }
}

impl fmt::Display for BankError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BankError::HolderMismatch => {
                "the bank says the name, ID number or phone does not match this card"
            }
            BankError::CardInvalid => "the bank does not accept this card",
            BankError::InsufficientFunds => "the card's account does not have enough money",
            BankError::Declined => "the bank declined the operation",
            BankError::Timeout => "the bank did not answer in time; the outcome is being checked",
        })
    }
}

impl std::error::Error for BankError {}

/// What became of an operation, by its key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    Done,
    Failed,
    /// The bank has never seen this key: the request did not arrive.
    Unknown,
}

pub trait Bank: Send + Sync {
    /// The four-element check; on success, the bank's token for the card.
    fn bind_card(&self, card: &CardNumber, holder: &Holder<'_>) -> Result<BankCard, BankError>;
    /// Pulls `amount_minor` from the card. The same key always gets the same outcome and moves
    /// money at most once.
    fn debit(&self, token: &str, amount_minor: u64, key: &str) -> Result<(), BankError>;
    /// Pays `amount_minor` to the card; idempotent by key like [`Bank::debit`].
    fn credit(&self, token: &str, amount_minor: u64, key: &str) -> Result<(), BankError>;
    fn outcome(&self, key: &str) -> Outcome;
}

/// How the simulated bank behaves (an operator can switch it at run time).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BankMode {
    Normal,
    /// Declines every debit and credit, moving nothing.
    Fail,
    /// Does every debit and credit but never answers: the lost-answer case.
    TimeoutAfterWork,
    /// Times out before doing anything.
    TimeoutBeforeWork,
}

impl BankMode {
    /// The name `parse` takes.
    pub fn code(self) -> &'static str {
        match self {
            BankMode::Normal => "normal",
            BankMode::Fail => "fail",
            BankMode::TimeoutAfterWork => "timeout_after_work",
            BankMode::TimeoutBeforeWork => "timeout_before_work",
        }
    }

    pub fn parse(text: &str) -> Option<BankMode> {
        Some(match text {
            "normal" => BankMode::Normal,
            "fail" => BankMode::Fail,
            "timeout_after_work" => BankMode::TimeoutAfterWork,
            "timeout_before_work" => BankMode::TimeoutBeforeWork,
            _ => return None,
        })
    }
}

/// Money on every simulated card at first sight: 50,000.00 yuan.
pub const SIMULATED_CARD_BALANCE_MINOR: u64 = 5_000_000;

/// An in-memory bank. Its first binding of a card decides the card's holder; later bindings
/// must match. Tokens are derived from the card number, so a bound card keeps working across
/// restarts; balances, holders and operations start again at each start (it is a simulator,
/// and says so in the README).
pub struct SimulatedBank {
    token_key: Vec<u8>,
    state: Mutex<SimulatedState>,
}

#[derive(Default)]
struct SimulatedState {
    mode: Option<BankMode>,
    /// Holder (ID number) by token.
    holders: HashMap<String, String>,
    balances_minor: HashMap<String, u64>,
    /// Operations by key: what was asked and how it ended.
    operations: HashMap<String, Operation>,
}

#[derive(Clone, PartialEq, Eq)]
struct Operation {
    request: (bool, String, u64),
    done: bool,
}

impl SimulatedBank {
    pub fn new(token_key: &[u8]) -> SimulatedBank {
        SimulatedBank {
            token_key: token_key.to_vec(),
            state: Mutex::new(SimulatedState::default()),
        }
    }

    pub fn set_mode(&self, mode: BankMode) {
        self.state().mode = Some(mode);
    }

    pub fn mode(&self) -> BankMode {
        self.state().mode.unwrap_or(BankMode::Normal)
    }

    /// What a simulated card holds now (tests check that nothing was lost or made).
    pub fn balance_minor(&self, token: &str) -> Option<u64> {
        is_simulated_token(token).then(|| {
            *self
                .state()
                .balances_minor
                .get(token)
                .unwrap_or(&SIMULATED_CARD_BALANCE_MINOR)
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SimulatedState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn token(&self, card: &CardNumber) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.token_key)
            .expect("HMAC takes keys of any length");
        mac.update(card.reveal().as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{TOKEN_PREFIX}{hex}")
    }

    fn operate(
        &self,
        debit: bool,
        token: &str,
        amount_minor: u64,
        key: &str,
    ) -> Result<(), BankError> {
        let mut state = self.state();
        if !is_simulated_token(token) || amount_minor == 0 {
            return Err(BankError::CardInvalid);
        }
        let request = (debit, token.to_owned(), amount_minor);
        if let Some(operation) = state.operations.get(key) {
            return match (operation.request == request, operation.done) {
                (false, _) => Err(BankError::Declined),
                (true, true) => Ok(()),
                (true, false) => Err(BankError::Declined),
            };
        }
        let mode = state.mode.unwrap_or(BankMode::Normal);
        if mode == BankMode::TimeoutBeforeWork {
            return Err(BankError::Timeout);
        }
        let balance = *state
            .balances_minor
            .get(token)
            .unwrap_or(&SIMULATED_CARD_BALANCE_MINOR);
        let result = match mode {
            BankMode::Fail => Err(BankError::Declined),
            _ if debit && balance < amount_minor => Err(BankError::InsufficientFunds),
            _ => Ok(()),
        };
        let balance_after = match (result, debit) {
            (Ok(()), true) => balance - amount_minor,
            (Ok(()), false) => balance.saturating_add(amount_minor),
            (Err(_), _) => balance,
        };
        state.balances_minor.insert(token.to_owned(), balance_after);
        state.operations.insert(
            key.to_owned(),
            Operation {
                request,
                done: result.is_ok(),
            },
        );
        match (mode, result) {
            (BankMode::TimeoutAfterWork, _) => Err(BankError::Timeout),
            (_, result) => result,
        }
    }
}

const TOKEN_PREFIX: &str = "simbank_";

fn is_simulated_token(token: &str) -> bool {
    token
        .strip_prefix(TOKEN_PREFIX)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Bank for SimulatedBank {
    fn bind_card(&self, card: &CardNumber, holder: &Holder<'_>) -> Result<BankCard, BankError> {
        if holder.name.trim().is_empty() {
            return Err(BankError::HolderMismatch);
        }
        let token = self.token(card);
        let mut state = self.state();
        let recorded = state
            .holders
            .entry(token.clone())
            .or_insert_with(|| holder.id_number.reveal().to_owned());
        if recorded != holder.id_number.reveal() {
            return Err(BankError::HolderMismatch);
        }
        Ok(BankCard {
            token,
            bank: "Simulated Bank".into(),
            last_four: card.last_four().to_owned(),
        })
    }

    fn debit(&self, token: &str, amount_minor: u64, key: &str) -> Result<(), BankError> {
        self.operate(true, token, amount_minor, key)
    }

    fn credit(&self, token: &str, amount_minor: u64, key: &str) -> Result<(), BankError> {
        self.operate(false, token, amount_minor, key)
    }

    fn outcome(&self, key: &str) -> Outcome {
        match self.state().operations.get(key) {
            Some(operation) if operation.done => Outcome::Done,
            Some(_) => Outcome::Failed,
            None => Outcome::Unknown,
        }
    }
}

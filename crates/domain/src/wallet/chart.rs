//! Where the wallet's money lives in the ledger: the chart of accounts.
//!
//! The institution's own accounts have small fixed ids; every person's accounts are
//! `user_id × 256 + slot`, so a person's ids are derived, never stored, and cannot collide
//! with the institution's (user ids start at 1).

use zhifu_ledger::{AccountId, AccountKind, BalanceRule, Currency, NewAccount};

/// The institution's funds at its custodian bank (备付金): an asset, so its debits carry
/// it. Top-ups debit it, withdrawals credit it.
pub const BANK_SETTLEMENT: u64 = 1;
/// Withdrawal fees and other income.
pub const FEE_INCOME: u64 = 2;
/// Red packet shares pass through here on their way to whoever grabs them.
pub const RED_PACKET_HOLD: u64 = 3;

const SLOTS_PER_PERSON: i64 = 256;
const SLOT_WALLET: i64 = 1;
/// Slots from here up belong to merchants: a merchant's accounts are `merchant_id × 256 +
/// slot`, in the same space as people's but never on a person's slot.
const SLOT_FIRST_MERCHANT: i64 = 128;
/// What a merchant has been paid and not yet settled to its bank.
const SLOT_MERCHANT_UNSETTLED: i64 = 128;
/// A service provider's commissions.
const SLOT_PROVIDER_COMMISSION: i64 = 129;

/// The accounts the institution needs before anyone signs up; opening them again is harmless.
pub fn institution_accounts() -> Vec<NewAccount> {
    vec![
        NewAccount {
            id: account_id(BANK_SETTLEMENT),
            currency: Currency::CNY,
            kind: AccountKind::BankSettlement,
            rule: BalanceRule::CreditsWithinDebits,
        },
        NewAccount {
            id: account_id(FEE_INCOME),
            currency: Currency::CNY,
            kind: AccountKind::FeeIncome,
            rule: BalanceRule::NO_OVERDRAFT,
        },
        NewAccount {
            id: account_id(RED_PACKET_HOLD),
            currency: Currency::CNY,
            kind: AccountKind::InFlightHold,
            rule: BalanceRule::NO_OVERDRAFT,
        },
    ]
}

/// A person's balance (零钱): never overdrawn.
pub fn wallet_account_id(user_id: i64) -> AccountId {
    person_account_id(user_id, SLOT_WALLET)
}

/// Whose balance the account is, when it is a person's balance.
pub fn wallet_owner(account: AccountId) -> Option<i64> {
    let id = i64::try_from(account.get()).ok()?;
    (id % SLOTS_PER_PERSON == SLOT_WALLET && id >= SLOTS_PER_PERSON)
        .then_some(id / SLOTS_PER_PERSON)
}

pub fn wallet_account(user_id: i64) -> NewAccount {
    NewAccount {
        id: wallet_account_id(user_id),
        currency: Currency::CNY,
        kind: AccountKind::ConsumerWallet,
        rule: BalanceRule::NO_OVERDRAFT,
    }
}

/// A merchant's takings, net of fees, until settlement pays them out: never overdrawn (a
/// refund needs the money to be there).
pub fn merchant_account_id(merchant_id: i64) -> AccountId {
    person_account_id(merchant_id, SLOT_MERCHANT_UNSETTLED)
}

/// A service provider's commission on its sub-merchants' fees.
pub fn commission_account_id(provider_id: i64) -> AccountId {
    person_account_id(provider_id, SLOT_PROVIDER_COMMISSION)
}

/// The accounts a merchant needs; opening them again is harmless.
pub fn merchant_accounts(merchant_id: i64) -> Vec<NewAccount> {
    vec![
        NewAccount {
            id: merchant_account_id(merchant_id),
            currency: Currency::CNY,
            kind: AccountKind::MerchantUnsettled,
            rule: BalanceRule::NO_OVERDRAFT,
        },
        NewAccount {
            id: commission_account_id(merchant_id),
            currency: Currency::CNY,
            kind: AccountKind::ProviderCommission,
            rule: BalanceRule::NO_OVERDRAFT,
        },
    ]
}

fn person_account_id(user_id: i64, slot: i64) -> AccountId {
    assert!(user_id > 0 && (0..SLOTS_PER_PERSON).contains(&slot));
    let id = user_id
        .checked_mul(SLOTS_PER_PERSON)
        .and_then(|base| base.checked_add(slot))
        .expect("user ids stay below 2^55");
    account_id(id as u64)
}

fn account_id(id: u64) -> AccountId {
    AccountId::new(id).expect("chart ids are positive and at most i64::MAX")
}

/// Business codes on the wallet's transfers (the ledger's `code`), stable once written.
pub const CODE_TOP_UP: u16 = 1;
pub const CODE_WITHDRAWAL: u16 = 2;
pub const CODE_WITHDRAWAL_FEE: u16 = 3;
pub const CODE_P2P: u16 = 4;
pub const CODE_RED_PACKET: u16 = 5;
/// A payment to a person's receive-money code: posted at once, no acceptance.
pub const CODE_RECEIVE_CODE: u16 = 6;
/// A payment to a merchant order, its discount fee, and the provider's commission on it.
pub const CODE_MERCHANT_PAYMENT: u16 = 7;
pub const CODE_MERCHANT_FEE: u16 = 8;
pub const CODE_PROVIDER_COMMISSION: u16 = 9;
/// A refund, the fee it gives back to the merchant, and the commission it takes back.
pub const CODE_MERCHANT_REFUND: u16 = 10;
pub const CODE_MERCHANT_FEE_REFUND: u16 = 11;
pub const CODE_PROVIDER_COMMISSION_REFUND: u16 = 12;

/// Whose account this is: a person's (by user id) or one of the institution's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    Person(i64),
    BankSettlement,
    FeeIncome,
    RedPacketHold,
    /// A merchant's takings or a provider's commission, by merchant id.
    Merchant(i64),
    Other,
}

pub fn owner(id: AccountId) -> Owner {
    let raw = id.get() as i64;
    match raw {
        r if r == BANK_SETTLEMENT as i64 => Owner::BankSettlement,
        r if r == FEE_INCOME as i64 => Owner::FeeIncome,
        r if r == RED_PACKET_HOLD as i64 => Owner::RedPacketHold,
        r if r >= SLOTS_PER_PERSON && r % SLOTS_PER_PERSON >= SLOT_FIRST_MERCHANT => {
            Owner::Merchant(r / SLOTS_PER_PERSON)
        }
        r if r >= SLOTS_PER_PERSON => Owner::Person(r / SLOTS_PER_PERSON),
        _ => Owner::Other,
    }
}

//! Accounts: who holds money, in which currency, under which balance rule.

use crate::money::Currency;
use std::fmt;
use std::num::NonZeroU64;

/// An account id: `1..=i64::MAX`, so that it is a plain `BIGINT` in every database.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(NonZeroU64);

impl AccountId {
    pub fn new(raw: u64) -> Option<AccountId> {
        if raw > i64::MAX as u64 {
            return None;
        }
        NonZeroU64::new(raw).map(AccountId)
    }

    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "A{}", self.0)
    }
}

/// What an account stands for (SPEC §2). Stored by [`AccountKind::code`]; codes never change.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AccountKind {
    ConsumerWallet,
    MerchantUnsettled,
    MerchantSettled,
    ProviderCommission,
    FeeIncome,
    CampaignBudget,
    /// Money on its way: P2P transfers awaiting acceptance, red packets, pending refunds.
    InFlightHold,
    /// The institution's funds at its custodian bank (备付金), an asset.
    BankSettlement,
    SwitchPosition,
    TransitFloat,
    /// Owner's equity and other operator-controlled accounts (e.g. to fund a simulation).
    Operator,
}

impl AccountKind {
    const ALL: [AccountKind; 11] = [
        AccountKind::ConsumerWallet,
        AccountKind::MerchantUnsettled,
        AccountKind::MerchantSettled,
        AccountKind::ProviderCommission,
        AccountKind::FeeIncome,
        AccountKind::CampaignBudget,
        AccountKind::InFlightHold,
        AccountKind::BankSettlement,
        AccountKind::SwitchPosition,
        AccountKind::TransitFloat,
        AccountKind::Operator,
    ];

    pub fn code(self) -> u16 {
        self as u16 + 1
    }

    pub fn from_code(code: u16) -> Option<AccountKind> {
        let index = usize::from(code).checked_sub(1)?;
        AccountKind::ALL.get(index).copied()
    }
}

/// What the balances of an account may never do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BalanceRule {
    /// No rule: operator and clearing accounts.
    Unbounded,
    /// Debits (posted and pending) never exceed credits by more than the limit. A limit of zero
    /// is "no overdraft" (a wallet); a positive one is a bounded overdraft (transit "ride first,
    /// pay later").
    DebitsWithinCredits { overdraft_limit_minor: u64 },
    /// Credits (posted and pending) never exceed debits: an asset that cannot go negative.
    CreditsWithinDebits,
}

impl BalanceRule {
    pub const NO_OVERDRAFT: BalanceRule = BalanceRule::DebitsWithinCredits {
        overdraft_limit_minor: 0,
    };
}

/// The four running totals of an account, in minor units. Each stays within `0..=i64::MAX`
/// so that it is a `BIGINT` everywhere; reaching past that is an overflow error, never a wrap.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Balances {
    pub debits_pending_minor: u64,
    pub debits_posted_minor: u64,
    pub credits_pending_minor: u64,
    pub credits_posted_minor: u64,
}

impl Balances {
    /// Credits minus debits, posted only: positive for a wallet that holds money.
    pub fn posted_net_minor(&self) -> i128 {
        i128::from(self.credits_posted_minor) - i128::from(self.debits_posted_minor)
    }

    /// Credits minus debits, pending only.
    pub fn pending_net_minor(&self) -> i128 {
        i128::from(self.credits_pending_minor) - i128::from(self.debits_pending_minor)
    }

    /// What a debit-rule account may still spend: credits posted, minus debits posted and
    /// pending, plus the overdraft limit.
    pub fn available_minor(&self, rule: BalanceRule) -> i128 {
        let limit = match rule {
            BalanceRule::DebitsWithinCredits {
                overdraft_limit_minor,
            } => overdraft_limit_minor,
            BalanceRule::Unbounded | BalanceRule::CreditsWithinDebits => 0,
        };
        i128::from(self.credits_posted_minor) + i128::from(limit)
            - i128::from(self.debits_posted_minor)
            - i128::from(self.debits_pending_minor)
    }

    /// Whether every total fits a signed 64-bit column.
    pub fn within_bigint(&self) -> bool {
        let max = i64::MAX as u64;
        self.debits_pending_minor <= max
            && self.debits_posted_minor <= max
            && self.credits_pending_minor <= max
            && self.credits_posted_minor <= max
    }

    /// Whether these balances obey `rule`.
    pub fn obey(&self, rule: BalanceRule) -> bool {
        let debits = u128::from(self.debits_posted_minor) + u128::from(self.debits_pending_minor);
        let credits =
            u128::from(self.credits_posted_minor) + u128::from(self.credits_pending_minor);
        match rule {
            BalanceRule::Unbounded => true,
            BalanceRule::DebitsWithinCredits {
                overdraft_limit_minor,
            } => {
                debits <= u128::from(self.credits_posted_minor) + u128::from(overdraft_limit_minor)
            }
            BalanceRule::CreditsWithinDebits => credits <= u128::from(self.debits_posted_minor),
        }
    }
}

/// A request to open an account. The id is chosen by the caller: opening the same account twice
/// is idempotent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NewAccount {
    pub id: AccountId,
    pub currency: Currency,
    pub kind: AccountKind,
    pub rule: BalanceRule,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Account {
    pub id: AccountId,
    pub currency: Currency,
    pub kind: AccountKind,
    pub rule: BalanceRule,
    pub closed: bool,
    pub balances: Balances,
}

impl Account {
    pub fn open(new: NewAccount) -> Account {
        Account {
            id: new.id,
            currency: new.currency,
            kind: new.kind,
            rule: new.rule,
            closed: false,
            balances: Balances::default(),
        }
    }

    pub fn same_fields(&self, new: &NewAccount) -> bool {
        self.currency == new.currency && self.kind == new.kind && self.rule == new.rule
    }
}

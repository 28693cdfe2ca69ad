//! Real-name classes and what each may pay from its balance (SPEC §3, after the PBoC's rules
//! for non-bank payment institutions of 2016-07-01).
//!
//! The check is a pure function of the usage so far; the caller makes it atomic with the
//! payment (the wallet keeps usage in ledger accounts that forbid overdraft, so the same commit
//! that moves the money consumes the allowance).

use std::fmt;

/// How well the platform knows a person.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum RealNameClass {
    /// Phone only: may hold and spend what it has, may not receive transfers or red packets.
    Unverified,
    /// Phone and one external check (the ID number validated).
    ClassI,
    /// ID, a bound bank card with four elements matched at the bank, and phone.
    ClassII,
    /// Five checks, or face to face.
    ClassIII,
}

impl RealNameClass {
    pub fn code(self) -> &'static str {
        match self {
            RealNameClass::Unverified => "UNVERIFIED",
            RealNameClass::ClassI => "I",
            RealNameClass::ClassII => "II",
            RealNameClass::ClassIII => "III",
        }
    }

    /// Transfers and red packets go only to people whose name is known.
    pub fn can_receive(self) -> bool {
        self != RealNameClass::Unverified
    }
}

/// Limits in fen (CNY minor units); configurable, SPEC defaults.
#[derive(Clone, Debug)]
pub struct LimitPolicy {
    pub class_i_cumulative_minor: u64,
    pub class_ii_yearly_minor: u64,
    pub class_iii_yearly_minor: u64,
    /// Per day with fewer than two authentication factors (PIN alone, say).
    pub daily_one_factor_minor: u64,
    /// Per day with two factors or more.
    pub daily_two_factors_minor: u64,
}

const YUAN: u64 = 100;

impl Default for LimitPolicy {
    fn default() -> LimitPolicy {
        LimitPolicy {
            class_i_cumulative_minor: 1_000 * YUAN,
            class_ii_yearly_minor: 100_000 * YUAN,
            class_iii_yearly_minor: 200_000 * YUAN,
            daily_one_factor_minor: 1_000 * YUAN,
            daily_two_factors_minor: 5_000 * YUAN,
        }
    }
}

/// What a person has paid from the balance so far, in fen.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct BalanceUsage {
    pub since_opening_minor: u64,
    pub this_year_minor: u64,
    pub today_minor: u64,
}

/// The limit a payment would break, and how much of it is left.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LimitError {
    /// Unverified accounts receive nothing.
    RecipientUnverified,
    ClassICumulative {
        left_minor: u64,
    },
    Yearly {
        left_minor: u64,
    },
    Daily {
        left_minor: u64,
    },
}

impl LimitError {
    pub fn code(self) -> &'static str {
        match self {
            LimitError::RecipientUnverified => "RECIPIENT_UNVERIFIED",
            LimitError::ClassICumulative { .. } => "LIMIT_CLASS_I_CUMULATIVE",
            LimitError::Yearly { .. } => "LIMIT_YEARLY",
            LimitError::Daily { .. } => "LIMIT_DAILY",
        }
    }
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::RecipientUnverified => f.write_str(
                "the recipient has not verified their real name and cannot receive money yet",
            ),
            LimitError::ClassICumulative { left_minor } => write!(
                f,
                "a class I account may pay 1,000 yuan from its balance in all; {left_minor} fen left; verify with a bank card to raise it"
            ),
            LimitError::Yearly { left_minor } => {
                write!(
                    f,
                    "this year's balance payment limit leaves {left_minor} fen"
                )
            }
            LimitError::Daily { left_minor } => {
                write!(f, "today's balance payment limit leaves {left_minor} fen")
            }
        }
    }
}

impl std::error::Error for LimitError {}

impl LimitPolicy {
    /// Whether a person of `class`, authenticated with `factors`, may pay `amount_minor` from
    /// the balance after `usage`. An unverified person pays like class I (they can only have
    /// received money before a rule change, or from a top-up).
    pub fn check_balance_payment(
        &self,
        class: RealNameClass,
        factors: u8,
        usage: BalanceUsage,
        amount_minor: u64,
    ) -> Result<(), LimitError> {
        let left = |limit: u64, used: u64| limit.saturating_sub(used);
        match class {
            RealNameClass::Unverified | RealNameClass::ClassI => {
                let left_minor = left(self.class_i_cumulative_minor, usage.since_opening_minor);
                if amount_minor > left_minor {
                    return Err(LimitError::ClassICumulative { left_minor });
                }
            }
            RealNameClass::ClassII | RealNameClass::ClassIII => {
                let yearly = match class {
                    RealNameClass::ClassII => self.class_ii_yearly_minor,
                    _ => self.class_iii_yearly_minor,
                };
                let left_minor = left(yearly, usage.this_year_minor);
                if amount_minor > left_minor {
                    return Err(LimitError::Yearly { left_minor });
                }
            }
        }
        let daily = match factors {
            0 | 1 => self.daily_one_factor_minor,
            _ => self.daily_two_factors_minor,
        };
        let left_minor = left(daily, usage.today_minor);
        if amount_minor > left_minor {
            return Err(LimitError::Daily { left_minor });
        }
        Ok(())
    }
}

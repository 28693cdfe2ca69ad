//! The withdrawal fee (SPEC §3): 0.1 %, at least 0.10 yuan, after a lifetime free quota of
//! 1,000 yuan per ID number, shared by every account of that person. The fee is charged on top
//! of the amount, so the card receives exactly what the person asked for, and it goes to fee
//! income.

/// Configurable; SPEC defaults, in fen.
#[derive(Clone, Debug)]
pub struct WithdrawalPolicy {
    /// The rate in parts per million of the part above the free quota (1,000 = 0.1 %).
    pub fee_rate_ppm: u64,
    pub fee_min_minor: u64,
    pub free_quota_lifetime_minor: u64,
}

impl Default for WithdrawalPolicy {
    fn default() -> WithdrawalPolicy {
        WithdrawalPolicy {
            fee_rate_ppm: 1_000,
            fee_min_minor: 10,
            free_quota_lifetime_minor: 100_000,
        }
    }
}

/// What a withdrawal costs, shown to the person before they confirm.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WithdrawalQuote {
    pub amount_minor: u64,
    /// The part the free quota covers.
    pub free_minor: u64,
    /// The part the fee is charged on.
    pub charged_minor: u64,
    pub fee_minor: u64,
    /// Taken from the balance: the amount plus the fee.
    pub debit_minor: u64,
    pub free_quota_left_after_minor: u64,
}

impl WithdrawalPolicy {
    /// `free_quota_used_minor` is what this person (by ID number) has already withdrawn free.
    pub fn quote(&self, amount_minor: u64, free_quota_used_minor: u64) -> WithdrawalQuote {
        let quota_left = self
            .free_quota_lifetime_minor
            .saturating_sub(free_quota_used_minor);
        let free_minor = amount_minor.min(quota_left);
        let charged_minor = amount_minor - free_minor;
        let fee_minor = if charged_minor == 0 {
            0
        } else {
            // Half a fen and more rounds up, in u128 so that no amount can overflow.
            let fee =
                (u128::from(charged_minor) * u128::from(self.fee_rate_ppm) + 500_000) / 1_000_000;
            u64::try_from(fee)
                .unwrap_or(u64::MAX)
                .max(self.fee_min_minor)
        };
        WithdrawalQuote {
            amount_minor,
            free_minor,
            charged_minor,
            fee_minor,
            debit_minor: amount_minor.saturating_add(fee_minor),
            free_quota_left_after_minor: quota_left - free_minor,
        }
    }
}

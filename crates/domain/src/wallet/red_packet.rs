//! Red packets (SPEC §3): a normal packet splits evenly, a lucky one (拼手气) at random by
//! "double mean": each draw is uniform between one fen and twice the mean of what is left,
//! while leaving at least one fen for every share still to come; the last share takes the
//! rest. The split is drawn when the packet is sent and stored, so grabbing is only a claim on
//! the next share.

use crate::Random;
use std::fmt;

/// Configurable; defaults after WeChat's rules, in fen.
#[derive(Clone, Debug)]
pub struct RedPacketPolicy {
    pub packet_total_max_minor: u64,
    pub shares_max: u32,
    pub share_min_minor: u64,
}

impl Default for RedPacketPolicy {
    fn default() -> RedPacketPolicy {
        RedPacketPolicy {
            packet_total_max_minor: 20_000,
            shares_max: 100,
            share_min_minor: 1,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RedPacketKind {
    /// Every share holds `share_minor`.
    Normal { share_minor: u64 },
    /// `total_minor` split at random.
    Lucky { total_minor: u64 },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RedPacketError {
    SharesOutOfRange { shares_max: u32 },
    TotalTooLarge { total_max_minor: u64 },
    ShareTooSmall { share_min_minor: u64 },
}

impl RedPacketError {
    pub fn code(self) -> &'static str {
        match self {
            RedPacketError::SharesOutOfRange { .. } => "RED_PACKET_SHARES",
            RedPacketError::TotalTooLarge { .. } => "RED_PACKET_TOO_LARGE",
            RedPacketError::ShareTooSmall { .. } => "RED_PACKET_SHARE_TOO_SMALL",
        }
    }
}

impl fmt::Display for RedPacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedPacketError::SharesOutOfRange { shares_max } => {
                write!(f, "a red packet has 1 to {shares_max} shares")
            }
            RedPacketError::TotalTooLarge { total_max_minor } => {
                write!(f, "a red packet holds at most {total_max_minor} fen")
            }
            RedPacketError::ShareTooSmall { share_min_minor } => {
                write!(f, "every share must hold at least {share_min_minor} fen")
            }
        }
    }
}

impl std::error::Error for RedPacketError {}

impl RedPacketPolicy {
    /// The packet's shares, in the order they will be grabbed.
    pub fn split(
        &self,
        kind: RedPacketKind,
        shares: u32,
        random: &mut dyn Random,
    ) -> Result<Vec<u64>, RedPacketError> {
        if shares == 0 || shares > self.shares_max {
            return Err(RedPacketError::SharesOutOfRange {
                shares_max: self.shares_max,
            });
        }
        let total_minor = match kind {
            RedPacketKind::Normal { share_minor } => share_minor.saturating_mul(u64::from(shares)),
            RedPacketKind::Lucky { total_minor } => total_minor,
        };
        if total_minor > self.packet_total_max_minor {
            return Err(RedPacketError::TotalTooLarge {
                total_max_minor: self.packet_total_max_minor,
            });
        }
        if total_minor < self.share_min_minor * u64::from(shares) {
            return Err(RedPacketError::ShareTooSmall {
                share_min_minor: self.share_min_minor,
            });
        }
        let split = match kind {
            RedPacketKind::Normal { share_minor } => vec![share_minor; shares as usize],
            RedPacketKind::Lucky { total_minor } => self.double_mean(total_minor, shares, random),
        };
        assert_eq!(
            split.iter().sum::<u64>(),
            total_minor,
            "a split keeps every fen"
        );
        assert_eq!(split.len(), shares as usize);
        Ok(split)
    }

    fn double_mean(&self, total_minor: u64, shares: u32, random: &mut dyn Random) -> Vec<u64> {
        let minimum = self.share_min_minor;
        let mut left_minor = total_minor;
        let mut split = Vec::with_capacity(shares as usize);
        for shares_left in (2..=u64::from(shares)).rev() {
            // Enough must stay for the shares after this one.
            let ceiling =
                (2 * left_minor / shares_left).min(left_minor - minimum * (shares_left - 1));
            let share = if ceiling <= minimum {
                minimum
            } else {
                minimum + random.below(ceiling - minimum + 1)
            };
            split.push(share);
            left_minor -= share;
        }
        split.push(left_minor);
        split
    }
}

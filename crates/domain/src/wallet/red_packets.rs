//! Red packets (红包, SPEC §3). Sending draws the split and holds every share in the ledger as
//! a pending transfer from the sender with a 24-hour timeout; grabbing posts the next share and
//! pays it on to the grabber in one linked chain; an unclaimed share expires in the ledger and
//! stays with the sender. Grabs of one packet are serialised (its packet lock, and a unique index
//! per person as a backstop), so exactly `shares` people win however many try at once.

use super::chart::{CODE_RED_PACKET, RED_PACKET_HOLD, wallet_account_id};
use super::funding::{IdempotencyKey, derived_transfer_id};
use super::limits::{LimitError, LimitPolicy};
use super::people::{People, PeopleError};
use super::red_packet::{RedPacketError, RedPacketKind, RedPacketPolicy};
use crate::Random;
use std::fmt;
use zhifu_ledger::{AccountId, NewTransfer, TransferCode, TransferId, TransferOp};
use zhifu_store::{Engine, EngineError, RedPacketRow};

/// How long a packet can be grabbed.
pub const OPEN_MS: i64 = 24 * 3_600_000;

#[derive(Debug)]
pub enum RedPacketServiceError {
    Split(RedPacketError),
    Limit(LimitError),
    NotFound,
    Expired,
    SoldOut,
    RecipientUnverified,
    KeyReused,
    Ledger(TransferCode),
    Engine(EngineError),
    People(PeopleError),
}

impl RedPacketServiceError {
    pub fn code(&self) -> &'static str {
        match self {
            RedPacketServiceError::Split(e) => e.code(),
            RedPacketServiceError::Limit(e) => e.code(),
            RedPacketServiceError::NotFound => "RED_PACKET_NOT_FOUND",
            RedPacketServiceError::Expired => "RED_PACKET_EXPIRED",
            RedPacketServiceError::SoldOut => "RED_PACKET_SOLD_OUT",
            RedPacketServiceError::RecipientUnverified => "RECIPIENT_UNVERIFIED",
            RedPacketServiceError::KeyReused => "IDEMPOTENCY_KEY_REUSED",
            RedPacketServiceError::Ledger(code) => code.as_str(),
            RedPacketServiceError::Engine(e) => e.code(),
            RedPacketServiceError::People(e) => e.code(),
        }
    }
}

impl fmt::Display for RedPacketServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedPacketServiceError::Split(e) => e.fmt(f),
            RedPacketServiceError::Limit(e) => e.fmt(f),
            RedPacketServiceError::NotFound => f.write_str("no such red packet"),
            RedPacketServiceError::Expired => f.write_str("this red packet has expired"),
            RedPacketServiceError::SoldOut => {
                f.write_str("every share of this red packet is taken")
            }
            RedPacketServiceError::RecipientUnverified => {
                f.write_str("verify your real name (name and ID number) to grab red packets")
            }
            RedPacketServiceError::KeyReused => {
                f.write_str("this Idempotency-Key was used for a different red packet")
            }
            RedPacketServiceError::Ledger(TransferCode::ExceedsBalance) => {
                f.write_str("your balance is not enough for this red packet")
            }
            RedPacketServiceError::Ledger(code) => {
                write!(f, "the ledger refused the red packet: {}", code.as_str())
            }
            RedPacketServiceError::Engine(e) => write!(f, "the ledger is unavailable: {e}"),
            RedPacketServiceError::People(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RedPacketServiceError {}

impl From<PeopleError> for RedPacketServiceError {
    fn from(e: PeopleError) -> RedPacketServiceError {
        RedPacketServiceError::People(e)
    }
}

impl From<zhifu_store::StoreError> for RedPacketServiceError {
    fn from(e: zhifu_store::StoreError) -> RedPacketServiceError {
        RedPacketServiceError::People(PeopleError::Store(e))
    }
}

/// A grab's result: the share, and whether this grab took it (false: taken before).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Grab {
    pub amount_minor: u64,
    pub first_time: bool,
}

fn share_pending_id(packet_id: TransferId, index: u32) -> TransferId {
    shifted(packet_id, index, 0)
}

/// Ids of a packet's ledger transfers: the packet id with the share index and a role mixed in.
fn shifted(packet_id: TransferId, index: u32, role: u128) -> TransferId {
    let key = IdempotencyKey::parse(&format!("{}:{index}:{role}", packet_id.get())).expect("short");
    derived_transfer_id("red packet share", 0, &key)
}

#[allow(clippy::too_many_arguments)]
pub fn send(
    people: &People,
    engine: &Engine,
    policy: &RedPacketPolicy,
    limits: &LimitPolicy,
    sender_id: i64,
    kind: RedPacketKind,
    shares: u32,
    key: &IdempotencyKey,
    now_ms: i64,
    random: &mut dyn Random,
) -> Result<RedPacketRow, RedPacketServiceError> {
    let split = policy
        .split(kind, shares, random)
        .map_err(RedPacketServiceError::Split)?;
    let total_minor: u64 = split.iter().sum();
    let packet_id = derived_transfer_id("red packet", sender_id, key);
    let id_text = packet_id.get().to_string();
    let kind_text = match kind {
        RedPacketKind::Normal { .. } => "normal",
        RedPacketKind::Lucky { .. } => "lucky",
    };
    let sender = people.lock_person(sender_id);
    if let Some(existing) = people.db().read(|s| s.red_packet(&id_text))? {
        let same = existing.kind == kind_text
            && existing.total_minor == total_minor
            && existing.shares == shares;
        return if same {
            Ok(existing)
        } else {
            Err(RedPacketServiceError::KeyReused)
        };
    }
    // A packet is a balance payment: it counts towards the sender's limits (the PIN is one
    // factor), checked under the sender's person lock like every other.
    let (class, usage) = people.payer_standing(&sender, now_ms)?;
    limits
        .check_balance_payment(class, 1, usage, total_minor)
        .map_err(RedPacketServiceError::Limit)?;
    let holds: Vec<NewTransfer> = split
        .iter()
        .enumerate()
        .map(|(index, &amount_minor)| NewTransfer {
            id: share_pending_id(packet_id, index as u32),
            op: TransferOp::Pending {
                debit_account_id: wallet_account_id(sender_id),
                credit_account_id: AccountId::new(RED_PACKET_HOLD).expect("a chart id"),
                amount_minor,
                timeout_ms: OPEN_MS as u64,
            },
            code: CODE_RED_PACKET,
            reference: None,
            // All shares or none.
            linked: index + 1 < split.len(),
        })
        .collect();
    let codes = engine
        .create_transfers(holds)
        .map_err(RedPacketServiceError::Engine)?;
    if !codes
        .iter()
        .all(|c| matches!(c, TransferCode::Ok | TransferCode::Exists))
    {
        let cause = codes
            .iter()
            .copied()
            .find(|c| *c != TransferCode::LinkedEventFailed)
            .unwrap_or(TransferCode::LinkedEventFailed);
        return Err(RedPacketServiceError::Ledger(cause));
    }
    let row = RedPacketRow {
        packet_id: id_text,
        sender_id,
        kind: kind_text.into(),
        total_minor,
        shares,
        created_ms: now_ms,
        expires_ms: now_ms + OPEN_MS,
    };
    let inserted = row.clone();
    people
        .db()
        .write_plain(move |s| s.red_packet_insert(&inserted, &split))?;
    Ok(row)
}

/// Takes the next share for `grabber_id`, or returns the one they took before.
pub fn grab(
    people: &People,
    engine: &Engine,
    packet_id: &str,
    grabber_id: i64,
    now_ms: i64,
) -> Result<Grab, RedPacketServiceError> {
    let read = || {
        people
            .db()
            .read(|s| Ok((s.red_packet(packet_id)?, s.red_packet_shares(packet_id)?)))
    };
    // A packet whose shares are all taken answers without queueing for its lock: on a
    // popular packet, most of those who try are too late.
    let (_, shares) = read()?;
    let taken = |shares: &[zhifu_store::ShareRow]| shares.iter().all(|s| s.grabber_id.is_some());
    if !shares.is_empty()
        && taken(&shares)
        && !shares.iter().any(|s| s.grabber_id == Some(grabber_id))
    {
        return Err(RedPacketServiceError::SoldOut);
    }
    let _serial = people.lock_packet(packet_id);
    let (packet, shares) = read()?;
    let packet = packet.ok_or(RedPacketServiceError::NotFound)?;
    if let Some(mine) = shares.iter().find(|s| s.grabber_id == Some(grabber_id)) {
        return Ok(Grab {
            amount_minor: mine.amount_minor,
            first_time: false,
        });
    }
    if now_ms >= packet.expires_ms {
        return Err(RedPacketServiceError::Expired);
    }
    if !people.class(grabber_id)?.can_receive() {
        return Err(RedPacketServiceError::RecipientUnverified);
    }
    let share = shares
        .iter()
        .find(|s| s.grabber_id.is_none())
        .ok_or(RedPacketServiceError::SoldOut)?;
    let packet_transfer_id = TransferId::new(
        packet_id
            .parse()
            .map_err(|_| RedPacketServiceError::NotFound)?,
    )
    .ok_or(RedPacketServiceError::NotFound)?;
    let pending_id = share_pending_id(packet_transfer_id, share.index);
    let chain = vec![
        NewTransfer {
            id: shifted(packet_transfer_id, share.index, 1),
            op: TransferOp::PostPending {
                pending_id,
                amount_minor: None,
            },
            code: CODE_RED_PACKET,
            reference: None,
            linked: true,
        },
        NewTransfer {
            id: shifted(packet_transfer_id, share.index, 2),
            op: TransferOp::Posted {
                debit_account_id: AccountId::new(RED_PACKET_HOLD).expect("a chart id"),
                credit_account_id: wallet_account_id(grabber_id),
                amount_minor: share.amount_minor,
            },
            code: CODE_RED_PACKET,
            reference: None,
            linked: false,
        },
    ];
    let codes = engine
        .create_transfers(chain)
        .map_err(RedPacketServiceError::Engine)?;
    if codes.contains(&TransferCode::PendingExpired)
        || codes.contains(&TransferCode::PendingAlreadyVoided)
    {
        return Err(RedPacketServiceError::Expired);
    }
    if !codes
        .iter()
        .all(|c| matches!(c, TransferCode::Ok | TransferCode::Exists))
    {
        let cause = codes
            .iter()
            .copied()
            .find(|c| *c != TransferCode::LinkedEventFailed);
        return Err(RedPacketServiceError::Ledger(
            cause.unwrap_or(TransferCode::LinkedEventFailed),
        ));
    }
    // Grabs of one packet are serialised by its lock, so the share is still free; the
    // unique index and the ledger's ids (one payout per share) would refuse a second taker.
    let (claimed_packet, index) = (packet_id.to_owned(), share.index);
    if !people
        .db()
        .write_plain(move |s| s.red_packet_claim(&claimed_packet, index, grabber_id, now_ms))?
    {
        return Err(RedPacketServiceError::People(PeopleError::Store(
            zhifu_store::StoreError::Corrupt("a red packet share was claimed twice".into()),
        )));
    }
    Ok(Grab {
        amount_minor: share.amount_minor,
        first_time: true,
    })
}

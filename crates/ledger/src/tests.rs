//! Unit tests of the rules, one behaviour each. The property tests that compare the ledger with
//! an independent model and with storage live in `zhifu-store`.

use crate::*;

const CNY: Currency = Currency::CNY;

fn account_id(n: u64) -> AccountId {
    AccountId::new(n).unwrap()
}

fn transfer_id(n: u128) -> TransferId {
    TransferId::new(n).unwrap()
}

fn posted(id: u128, debit: u64, credit: u64, amount_minor: u64) -> NewTransfer {
    NewTransfer {
        id: transfer_id(id),
        op: TransferOp::Posted {
            debit_account_id: account_id(debit),
            credit_account_id: account_id(credit),
            amount_minor,
        },
        code: 1,
        reference: None,
        linked: false,
    }
}

/// Account 1 is an unbounded operator account, 2 and 3 are wallets without overdraft.
fn ledger_with_wallets() -> Ledger {
    let mut ledger = Ledger::new();
    let mut out = BatchOutput::default();
    let accounts = [
        NewAccount {
            id: account_id(1),
            currency: CNY,
            kind: AccountKind::Operator,
            rule: BalanceRule::Unbounded,
        },
        NewAccount {
            id: account_id(2),
            currency: CNY,
            kind: AccountKind::ConsumerWallet,
            rule: BalanceRule::NO_OVERDRAFT,
        },
        NewAccount {
            id: account_id(3),
            currency: CNY,
            kind: AccountKind::ConsumerWallet,
            rule: BalanceRule::NO_OVERDRAFT,
        },
    ];
    assert!(
        ledger
            .open_accounts(&accounts, &mut out)
            .iter()
            .all(|c| *c == AccountCode::Ok)
    );
    ledger
}

thread_local! {
    /// What a store would hold across batches: the engine prefetches it into `Prior`.
    static STORED: std::cell::RefCell<Prior> = std::cell::RefCell::new(Prior::default());
}

fn apply(
    ledger: &mut Ledger,
    now_ns: i64,
    requests: &[NewTransfer],
) -> (Vec<TransferCode>, BatchOutput) {
    let mut out = BatchOutput::default();
    STORED.with_borrow_mut(|prior| {
        let codes = ledger.create_transfers(now_ns, requests, prior, &mut out);
        persist(prior, &out);
        (codes, out)
    })
}

fn persist(prior: &mut Prior, out: &BatchOutput) {
    for transfer in &out.transfers {
        prior
            .known
            .insert(transfer.id, Known::Applied(transfer.clone()));
    }
}

#[test]
fn no_overdraft_wallet_cannot_go_negative() {
    let mut ledger = ledger_with_wallets();
    let (codes, _) = apply(
        &mut ledger,
        1,
        &[
            posted(1, 1, 2, 500),
            posted(2, 2, 3, 501),
            posted(3, 2, 3, 500),
        ],
    );
    assert_eq!(
        codes,
        [
            TransferCode::Ok,
            TransferCode::ExceedsBalance,
            TransferCode::Ok
        ]
    );
    assert_eq!(
        ledger
            .account(account_id(2))
            .unwrap()
            .balances
            .posted_net_minor(),
        0
    );
    assert_eq!(
        ledger
            .account(account_id(3))
            .unwrap()
            .balances
            .posted_net_minor(),
        500
    );
    check_conservation(ledger.accounts()).unwrap();
}

#[test]
fn linked_chain_fails_as_a_whole() {
    let mut ledger = ledger_with_wallets();
    let mut chain = [
        posted(1, 1, 2, 100),
        posted(2, 2, 3, 100),
        posted(3, 2, 3, 1),
    ];
    chain[0].linked = true;
    chain[1].linked = true;
    let (codes, out) = apply(&mut ledger, 1, &chain);
    assert_eq!(
        codes,
        [
            TransferCode::LinkedEventFailed,
            TransferCode::LinkedEventFailed,
            TransferCode::ExceedsBalance
        ]
    );
    assert!(out.transfers.is_empty());
    assert_eq!(
        out.rejections.len(),
        3,
        "state-dependent rejections are kept for retries"
    );
    assert_eq!(
        ledger.account(account_id(2)).unwrap().balances,
        Balances::default()
    );
}

#[test]
fn failed_chain_undoes_a_pending_it_added_and_resolved() {
    // Found by the store's model property on PostgreSQL: the rollback removed the chain's own
    // pending before restoring the ones it had resolved, so it found nothing to remove.
    let mut ledger = ledger_with_wallets();
    apply(&mut ledger, 1, &[posted(1, 1, 2, 500)]);
    let mut chain = [
        NewTransfer {
            id: transfer_id(2),
            op: TransferOp::Pending {
                debit_account_id: account_id(2),
                credit_account_id: account_id(3),
                amount_minor: 200,
                timeout_ms: 1000,
            },
            code: 1,
            reference: None,
            linked: true,
        },
        NewTransfer {
            id: transfer_id(3),
            op: TransferOp::PostPending {
                pending_id: transfer_id(2),
                amount_minor: None,
            },
            code: 1,
            reference: None,
            linked: true,
        },
        posted(4, 2, 3, 10_000),
    ];
    chain[2].linked = false;
    let (codes, out) = apply(&mut ledger, 2, &chain);
    assert_eq!(
        codes,
        [
            TransferCode::LinkedEventFailed,
            TransferCode::LinkedEventFailed,
            TransferCode::ExceedsBalance
        ]
    );
    assert!(out.transfers.is_empty());
    let wallet = ledger.account(account_id(2)).unwrap().balances;
    assert_eq!(
        (wallet.posted_net_minor(), wallet.debits_pending_minor),
        (500, 0)
    );
    check_conservation(ledger.accounts()).unwrap();
}

#[test]
fn open_chain_is_rejected() {
    let mut ledger = ledger_with_wallets();
    let mut chain = [posted(1, 1, 2, 100)];
    chain[0].linked = true;
    let (codes, out) = apply(&mut ledger, 1, &chain);
    assert_eq!(codes, [TransferCode::LinkedChainOpen]);
    assert!(
        out.rejections.is_empty(),
        "payload-only rejections are not stored"
    );
}

#[test]
fn pending_post_partial_releases_the_rest() {
    let mut ledger = ledger_with_wallets();
    let pending = NewTransfer {
        id: transfer_id(2),
        op: TransferOp::Pending {
            debit_account_id: account_id(2),
            credit_account_id: account_id(3),
            amount_minor: 300,
            timeout_ms: 1000,
        },
        code: 1,
        reference: Reference::parse("order-1"),
        linked: false,
    };
    let post = NewTransfer {
        id: transfer_id(3),
        op: TransferOp::PostPending {
            pending_id: transfer_id(2),
            amount_minor: Some(120),
        },
        code: 1,
        reference: None,
        linked: false,
    };
    let (codes, _) = apply(
        &mut ledger,
        1,
        &[posted(1, 1, 2, 300), pending, post.clone()],
    );
    assert_eq!(codes, [TransferCode::Ok; 3]);
    let wallet = ledger.account(account_id(2)).unwrap().balances;
    assert_eq!(
        (wallet.posted_net_minor(), wallet.debits_pending_minor),
        (180, 0)
    );
    let (codes, _) = apply(&mut ledger, 2, &[post]);
    assert_eq!(codes, [TransferCode::Exists]);
    check_conservation(ledger.accounts()).unwrap();
}

#[test]
fn pending_expires_and_cannot_be_posted_after() {
    let mut ledger = ledger_with_wallets();
    let pending = NewTransfer {
        id: transfer_id(2),
        op: TransferOp::Pending {
            debit_account_id: account_id(2),
            credit_account_id: account_id(3),
            amount_minor: 300,
            timeout_ms: 1,
        },
        code: 1,
        reference: None,
        linked: false,
    };
    let (codes, out) = apply(&mut ledger, 10, &[posted(1, 1, 2, 300), pending]);
    assert_eq!(codes, [TransferCode::Ok; 2]);
    let pending_ts = out.transfers[1].timestamp_ns;
    let post = NewTransfer {
        id: transfer_id(3),
        op: TransferOp::PostPending {
            pending_id: transfer_id(2),
            amount_minor: None,
        },
        code: 1,
        reference: None,
        linked: false,
    };
    let (codes, _) = apply(
        &mut ledger,
        pending_ts + 1_000_000,
        std::slice::from_ref(&post),
    );
    assert_eq!(
        codes,
        [TransferCode::PendingExpired],
        "due but not yet voided by the engine"
    );
    let mut out = BatchOutput::default();
    STORED.with_borrow_mut(|prior| {
        assert_eq!(
            ledger.expire_due(pending_ts + 1_000_000, 10, prior, &mut out),
            1
        );
        persist(prior, &out);
    });
    assert_eq!(out.transfers[0].kind, TransferKind::Expiry);
    assert_eq!(out.transfers[0].id, transfer_id(2).expiry_id());
    let (codes, _) = apply(&mut ledger, pending_ts + 2_000_000, &[post]);
    assert_eq!(codes, [TransferCode::PendingExpired]);
    assert_eq!(
        ledger
            .account(account_id(2))
            .unwrap()
            .balances
            .available_minor(BalanceRule::NO_OVERDRAFT),
        300
    );
}

#[test]
fn payload_errors_have_stable_codes() {
    let mut ledger = ledger_with_wallets();
    let (codes, out) = apply(
        &mut ledger,
        1,
        &[
            posted(1, 1, 1, 5),
            posted(2, 1, 2, 0),
            posted(3, 1, 2, u64::MAX),
            posted(4, 1, 9, 5),
        ],
    );
    assert_eq!(
        codes,
        [
            TransferCode::AccountsSame,
            TransferCode::AmountZero,
            TransferCode::AmountTooLarge,
            TransferCode::CreditAccountNotFound
        ]
    );
    assert!(out.transfers.is_empty());
    assert_eq!(
        out.rejections.len(),
        1,
        "only the state-dependent one is kept"
    );
    assert_eq!(TransferCode::ExceedsBalance.as_str(), "EXCEEDS_BALANCE");
    for code in TransferCode::ALL {
        assert_eq!(TransferCode::from_number(code.number()), Some(*code));
    }
}

#[test]
fn totals_near_i64_max_overflow_instead_of_wrapping() {
    let mut ledger = ledger_with_wallets();
    let near = i64::MAX as u64 - 1;
    let (codes, _) = apply(
        &mut ledger,
        1,
        &[
            posted(1, 1, 2, near),
            posted(2, 1, 2, 1),
            posted(3, 1, 2, 1),
        ],
    );
    assert_eq!(
        codes,
        [TransferCode::Ok, TransferCode::Ok, TransferCode::Overflow]
    );
    assert_eq!(
        ledger
            .account(account_id(2))
            .unwrap()
            .balances
            .credits_posted_minor,
        i64::MAX as u64
    );
}

#[test]
fn ids_reject_zero_and_the_engine_space() {
    assert!(TransferId::new(0).is_none());
    assert!(TransferId::new(1 << 127).is_none());
    assert!(AccountId::new(0).is_none());
    assert!(AccountId::new(i64::MAX as u64 + 1).is_none());
    assert!(TransferId::parse_hex("not-hex").is_none());
    assert_eq!(
        TransferId::parse_hex("00000000-0000-0000-0000-00000000000a"),
        TransferId::new(10)
    );
    assert!(Reference::parse("has space").is_none());
    assert!(Reference::parse(&"x".repeat(65)).is_none());
}

#[test]
fn closing_needs_a_zero_balance() {
    let mut ledger = ledger_with_wallets();
    apply(&mut ledger, 1, &[posted(1, 1, 2, 5)]);
    let mut out = BatchOutput::default();
    assert_eq!(
        ledger.close_account(account_id(2), &mut out),
        AccountCode::BalanceNotZero
    );
    assert_eq!(
        ledger.close_account(account_id(3), &mut out),
        AccountCode::Ok
    );
    assert_eq!(
        ledger.close_account(account_id(3), &mut out),
        AccountCode::AlreadyClosed
    );
    let (codes, _) = apply(&mut ledger, 2, &[posted(2, 2, 3, 1)]);
    assert_eq!(codes, [TransferCode::CreditAccountClosed]);
}

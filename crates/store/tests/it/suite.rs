//! Behaviour that both stores must show, one test per promise.

use crate::support::{
    Backend, CNY, TestStore, aid, open_operator_and_wallets, pending, posted, tid,
};
use std::sync::Arc;
use zhifu_ledger::{
    AccountCode, AccountKind, BalanceRule, Currency, NewAccount, NewTransfer, Reference,
    TransferCode, TransferId, TransferKind, TransferOp,
};
use zhifu_store::{EngineError, ManualClock, Side, SystemClock, balance, statement};

const T0_NS: i64 = 1_800_000_000_000_000_000;

/// Goal: a retry returns the first answer and never moves money twice, also across a restart
/// and also when the first answer was a rejection and the state has changed since.
fn idempotent_retries(backend: Backend) {
    let store = TestStore::new(backend);
    let engine = store.engine(Arc::new(SystemClock));
    open_operator_and_wallets(&engine, 3);
    assert_eq!(
        engine
            .create_transfers(vec![posted(1, 1, 2, 1000)])
            .unwrap(),
        [TransferCode::Ok]
    );
    assert_eq!(
        engine
            .create_transfers(vec![posted(1, 1, 2, 1000)])
            .unwrap(),
        [TransferCode::Exists]
    );
    assert_eq!(
        engine.create_transfers(vec![posted(1, 1, 2, 999)]).unwrap(),
        [TransferCode::ExistsWithDifferentPayload]
    );
    assert_eq!(
        engine
            .create_transfers(vec![posted(2, 2, 3, 5000)])
            .unwrap(),
        [TransferCode::ExceedsBalance]
    );
    assert_eq!(
        engine
            .create_transfers(vec![posted(3, 1, 2, 10_000)])
            .unwrap(),
        [TransferCode::Ok]
    );
    assert_eq!(
        engine
            .create_transfers(vec![posted(2, 2, 3, 5000)])
            .unwrap(),
        [TransferCode::ExceedsBalance],
        "first answer kept"
    );
    // The same id twice in one request: the second is a retry of the first.
    assert_eq!(
        engine
            .create_transfers(vec![posted(4, 2, 3, 10), posted(4, 2, 3, 10)])
            .unwrap(),
        [TransferCode::Ok, TransferCode::Exists]
    );
    drop(engine);
    let engine = store.engine(Arc::new(SystemClock));
    assert_eq!(
        engine
            .create_transfers(vec![posted(1, 1, 2, 1000)])
            .unwrap(),
        [TransferCode::Exists]
    );
    assert_eq!(
        engine
            .create_transfers(vec![posted(2, 2, 3, 5000)])
            .unwrap(),
        [TransferCode::ExceedsBalance]
    );
    drop(engine);
    let accounts = store.accounts();
    assert_eq!(accounts[1].balances.posted_net_minor(), 11_000 - 10);
    assert_eq!(accounts[2].balances.posted_net_minor(), 10);
    let mut reader = store.open();
    assert_eq!(reader.transfer(tid(1)).unwrap().unwrap().amount_minor, 1000);
    assert!(reader.transfer(tid(2)).unwrap().is_none());
    assert_eq!(
        reader.rejection(tid(2)).unwrap().unwrap().result,
        TransferCode::ExceedsBalance
    );
}

/// Goal: bad input gets a typed error with a stable code and changes nothing.
fn bad_input_changes_nothing(backend: Backend) {
    let store = TestStore::new(backend);
    let engine = store.engine(Arc::new(SystemClock));
    open_operator_and_wallets(&engine, 3);
    let yen = NewAccount {
        id: aid(4),
        currency: Currency::JPY,
        kind: AccountKind::Operator,
        rule: BalanceRule::Unbounded,
    };
    engine.open_accounts(vec![yen]).unwrap();
    engine
        .create_transfers(vec![posted(1, 1, 2, i64::MAX as u64 - 5)])
        .unwrap();
    let before = store.accounts();
    let cases = [
        (posted(10, 1, 3, 0), TransferCode::AmountZero),
        (posted(11, 2, 2, 5), TransferCode::AccountsSame),
        (
            posted(12, 1, 3, i64::MAX as u64 + 1),
            TransferCode::AmountTooLarge,
        ),
        (posted(13, 1, 3, u64::MAX), TransferCode::AmountTooLarge),
        (posted(14, 99, 3, 5), TransferCode::DebitAccountNotFound),
        (posted(15, 1, 99, 5), TransferCode::CreditAccountNotFound),
        (posted(16, 1, 4, 5), TransferCode::CurrencyMismatch),
        (posted(17, 1, 2, 6), TransferCode::Overflow),
        (posted(18, 3, 1, 1), TransferCode::ExceedsBalance),
        (
            pending(19, 1, 3, 5, zhifu_ledger::TIMEOUT_MS_MAX + 1),
            TransferCode::TimeoutTooLarge,
        ),
        (
            NewTransfer {
                op: TransferOp::VoidPending {
                    pending_id: tid(777),
                },
                ..posted(20, 1, 2, 1)
            },
            TransferCode::PendingNotFound,
        ),
        (
            NewTransfer {
                op: TransferOp::PostPending {
                    pending_id: tid(1),
                    amount_minor: None,
                },
                ..posted(21, 1, 2, 1)
            },
            TransferCode::PendingIdNotPending,
        ),
    ];
    for (request, code) in &cases {
        assert_eq!(
            engine.create_transfers(vec![request.clone()]).unwrap(),
            [*code],
            "{request:?}"
        );
        assert_eq!(code.as_str(), code.as_str().to_uppercase());
    }
    assert_eq!(
        engine.create_transfers(vec![]),
        Err(EngineError::RequestEmpty)
    );
    let too_many = (0..10_000).map(|n| posted(100 + n, 1, 3, 1)).collect();
    assert!(matches!(
        engine.create_transfers(too_many),
        Err(EngineError::RequestTooLarge { .. })
    ));
    assert_eq!(EngineError::RequestEmpty.code(), "REQUEST_EMPTY");
    drop(engine);
    assert_eq!(store.accounts(), before, "balances unchanged");
    let mut reader = store.open();
    for (request, _) in &cases {
        assert!(
            reader.transfer(request.id).unwrap().is_none(),
            "no transfer row for {:?}",
            request.id
        );
    }
    // Malformed ids and references never reach the ledger: they do not parse.
    assert!(
        TransferId::new(0).is_none()
            && TransferId::parse_hex("xyz").is_none()
            && aid_checked(0).is_none()
    );
    assert!(Reference::parse("").is_none() && Reference::parse("a b").is_none());
}

fn aid_checked(n: u64) -> Option<zhifu_ledger::AccountId> {
    zhifu_ledger::AccountId::new(n)
}

/// Goal: statements page backwards in time with the balance after each entry; transfers are
/// found by id and by reference.
fn statements_and_lookups(backend: Backend) {
    let store = TestStore::new(backend);
    let engine = store.engine(Arc::new(SystemClock));
    open_operator_and_wallets(&engine, 3);
    for n in 0..25u128 {
        let mut transfer = if n % 5 == 4 {
            posted(100 + n, 2, 3, 7)
        } else {
            posted(100 + n, 1, 2, 10)
        };
        transfer.reference = Reference::parse(&format!("order-{}", n % 3));
        assert_eq!(
            engine.create_transfers(vec![transfer]).unwrap(),
            [TransferCode::Ok]
        );
    }
    drop(engine);
    let mut reader = store.open();
    let mut entries = Vec::new();
    let mut cursor = None;
    loop {
        let page = statement(reader.as_mut(), aid(2), cursor, 10).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        cursor = page.last().map(|e| e.timestamp_ns);
        entries.extend(page);
    }
    assert_eq!(entries.len(), 25);
    assert!(
        entries
            .windows(2)
            .all(|w| w[0].timestamp_ns > w[1].timestamp_ns),
        "newest first"
    );
    let mut running = 0i128;
    for entry in entries.iter().rev() {
        running += match entry.side {
            Side::Credit => entry.amount_minor as i128,
            Side::Debit => -(entry.amount_minor as i128),
        };
        assert_eq!(entry.balances_after.posted_net_minor(), running);
    }
    assert_eq!(
        balance(reader.as_mut(), aid(2))
            .unwrap()
            .unwrap()
            .balances
            .posted_net_minor(),
        running
    );
    let by_reference = reader
        .transfers_by_reference(&Reference::parse("order-1").unwrap(), 100)
        .unwrap();
    assert_eq!(by_reference.len(), 8);
    assert!(
        by_reference
            .iter()
            .all(|t| t.reference.as_ref().unwrap().as_str() == "order-1")
    );
    assert!(balance(reader.as_mut(), aid(42)).unwrap().is_none());
}

/// Goal: a pending transfer outlives a restart, and its timeout still voids it afterwards.
fn pending_survives_restart_and_expires(backend: Backend) {
    let store = TestStore::new(backend);
    let clock = Arc::new(ManualClock::new(T0_NS));
    let engine = store.engine(clock.clone());
    open_operator_and_wallets(&engine, 3);
    let codes = engine
        .create_transfers(vec![
            posted(1, 1, 2, 100),
            pending(2, 2, 3, 60, 1_000),
            pending(3, 2, 3, 40, 0),
        ])
        .unwrap();
    assert_eq!(codes, [TransferCode::Ok; 3]);
    assert_eq!(
        engine.create_transfers(vec![posted(4, 2, 3, 1)]).unwrap(),
        [TransferCode::ExceedsBalance],
        "all held"
    );
    drop(engine);
    let engine = store.engine(clock.clone());
    // The pending got timestamp T0 + 1 ns (the funding took T0): it expires 1 ns after +1 s.
    clock.advance_ms(1_001);
    let post = |id: u128, pending_id: u128, amount_minor| NewTransfer {
        op: TransferOp::PostPending {
            pending_id: tid(pending_id),
            amount_minor,
        },
        ..posted(id, 1, 2, 1)
    };
    assert_eq!(
        engine.create_transfers(vec![post(5, 2, None)]).unwrap(),
        [TransferCode::PendingExpired]
    );
    assert_eq!(
        engine.create_transfers(vec![post(6, 3, Some(15))]).unwrap(),
        [TransferCode::Ok]
    );
    assert_eq!(
        engine.create_transfers(vec![post(7, 3, None)]).unwrap(),
        [TransferCode::PendingAlreadyPosted]
    );
    drop(engine);
    let accounts = store.accounts();
    assert_eq!(accounts[1].balances.posted_net_minor(), 85);
    assert_eq!(accounts[1].balances.debits_pending_minor, 0);
    assert_eq!(accounts[2].balances.posted_net_minor(), 15);
    let expiry = store.open().transfer(tid(2).expiry_id()).unwrap().unwrap();
    assert_eq!(
        (expiry.kind, expiry.amount_minor),
        (TransferKind::Expiry, 60)
    );
}

/// Goal: many callers at once, all crediting one hot account, each get their own answer and
/// every unit arrives; many callers spending one balance never overdraw it.
fn concurrent_hot_account_and_double_spend(backend: Backend) {
    let store = TestStore::new(backend);
    let engine = Arc::new(store.engine(Arc::new(SystemClock)));
    open_operator_and_wallets(&engine, 4);
    engine
        .create_transfers(vec![posted(1, 1, 3, 1_000)])
        .unwrap();
    let threads: Vec<_> = (0..16u128)
        .map(|thread| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut spent = 0;
                for n in 0..50u128 {
                    let base = 1_000 + thread * 1_000 + n * 2;
                    assert_eq!(
                        engine
                            .create_transfers(vec![posted(base, 1, 2, 3)])
                            .unwrap(),
                        [TransferCode::Ok]
                    );
                    match engine
                        .create_transfers(vec![posted(base + 1, 3, 4, 7)])
                        .unwrap()[0]
                    {
                        TransferCode::Ok => spent += 7,
                        TransferCode::ExceedsBalance => {}
                        other => panic!("unexpected {other}"),
                    }
                }
                spent
            })
        })
        .collect();
    let spent: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(
        spent,
        1_000 / 7 * 7,
        "exactly as many spends as the balance covers"
    );
    drop(engine);
    let accounts = store.accounts();
    assert_eq!(accounts[1].balances.posted_net_minor(), 16 * 50 * 3);
    assert_eq!(
        accounts[2].balances.posted_net_minor(),
        1_000 - spent as i128
    );
}

/// Goal: a linked chain that fails leaves no trace of money in storage, and accounts open and
/// close idempotently with stable codes.
fn chains_and_account_lifecycle(backend: Backend) {
    let store = TestStore::new(backend);
    let engine = store.engine(Arc::new(SystemClock));
    open_operator_and_wallets(&engine, 3);
    let mut chain = vec![posted(1, 1, 2, 50), posted(2, 2, 3, 50), posted(3, 2, 3, 1)];
    chain[0].linked = true;
    chain[1].linked = true;
    let codes = engine.create_transfers(chain).unwrap();
    assert_eq!(
        codes,
        [
            TransferCode::LinkedEventFailed,
            TransferCode::LinkedEventFailed,
            TransferCode::ExceedsBalance
        ]
    );
    let wallet = NewAccount {
        id: aid(2),
        currency: CNY,
        kind: AccountKind::ConsumerWallet,
        rule: BalanceRule::NO_OVERDRAFT,
    };
    assert_eq!(
        engine.open_accounts(vec![wallet]).unwrap(),
        [AccountCode::Exists]
    );
    let changed = NewAccount {
        rule: BalanceRule::Unbounded,
        ..wallet
    };
    assert_eq!(
        engine.open_accounts(vec![changed]).unwrap(),
        [AccountCode::ExistsWithDifferentFields]
    );
    engine.create_transfers(vec![posted(4, 1, 2, 5)]).unwrap();
    assert_eq!(
        engine.close_account(aid(2)).unwrap(),
        AccountCode::BalanceNotZero
    );
    assert_eq!(engine.close_account(aid(3)).unwrap(), AccountCode::Ok);
    assert_eq!(engine.close_account(aid(9)).unwrap(), AccountCode::NotFound);
    assert_eq!(
        engine.create_transfers(vec![posted(5, 2, 3, 1)]).unwrap(),
        [TransferCode::CreditAccountClosed]
    );
    drop(engine);
    let mut reader = store.open();
    assert!(
        reader.transfer(tid(1)).unwrap().is_none() && reader.transfer(tid(2)).unwrap().is_none()
    );
    let engine = store.engine(Arc::new(SystemClock));
    assert_eq!(
        engine.close_account(aid(3)).unwrap(),
        AccountCode::AlreadyClosed,
        "closure is stored"
    );
}

crate::on_both_stores!(
    idempotent_retries,
    bad_input_changes_nothing,
    statements_and_lookups,
    pending_survives_restart_and_expires,
    concurrent_hot_account_and_double_spend,
    chains_and_account_lifecycle,
);

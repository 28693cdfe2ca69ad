//! Goal: random histories of transfers, pending/post/void, expiries, linked chains and
//! restarts give, on each store, the same answer to every request and the same final balances
//! as the independent model, and conservation holds. Method: proptest draws the histories over
//! a few accounts with every kind of rule (and one that does not exist) and a small id space,
//! so that retries, duplicates and conflicts are common.

use crate::model::Model;
use crate::support::{Backend, TestStore, account, aid, posted};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::sync::Arc;
use zhifu_ledger::{
    AccountKind, BalanceRule, Currency, NewAccount, NewTransfer, Reference, TransferId, TransferOp,
};
use zhifu_store::ManualClock;

#[derive(Clone, Debug)]
enum Step {
    Request(Vec<NewTransfer>),
    AdvanceMs(u64),
    Restart,
}

fn accounts() -> Vec<NewAccount> {
    vec![
        account(1, AccountKind::Operator, BalanceRule::Unbounded),
        account(2, AccountKind::ConsumerWallet, BalanceRule::NO_OVERDRAFT),
        account(3, AccountKind::ConsumerWallet, BalanceRule::NO_OVERDRAFT),
        account(
            4,
            AccountKind::TransitFloat,
            BalanceRule::DebitsWithinCredits {
                overdraft_limit_minor: 50,
            },
        ),
        account(
            5,
            AccountKind::BankSettlement,
            BalanceRule::CreditsWithinDebits,
        ),
        NewAccount {
            id: aid(6),
            currency: Currency::JPY,
            kind: AccountKind::Operator,
            rule: BalanceRule::Unbounded,
        },
    ]
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 1..300u64, 1 => Just(0u64), 1 => Just(i64::MAX as u64), 1 => Just(u64::MAX)]
}

fn op() -> impl Strategy<Value = TransferOp> {
    let account_id = (1..=7u64).prop_map(aid);
    let pending_id = (1..=24u128).prop_map(|n| TransferId::new(n).unwrap());
    prop_oneof![
        4 => (account_id.clone(), account_id.clone(), amount()).prop_map(|(debit_account_id, credit_account_id, amount_minor)| {
            TransferOp::Posted { debit_account_id, credit_account_id, amount_minor }
        }),
        3 => (account_id.clone(), account_id, amount(), prop_oneof![Just(0u64), 1..4u64]).prop_map(
            |(debit_account_id, credit_account_id, amount_minor, timeout_ms)| {
                TransferOp::Pending { debit_account_id, credit_account_id, amount_minor, timeout_ms }
            }
        ),
        2 => (pending_id.clone(), proptest::option::of(prop_oneof![Just(0u64), 1..300u64]))
            .prop_map(|(pending_id, amount_minor)| TransferOp::PostPending { pending_id, amount_minor }),
        1 => pending_id.prop_map(|pending_id| TransferOp::VoidPending { pending_id }),
    ]
}

fn transfer() -> impl Strategy<Value = NewTransfer> {
    (
        1..=24u128,
        op(),
        0..3u16,
        proptest::bool::weighted(0.25),
        proptest::bool::weighted(0.3),
    )
        .prop_map(|(id, op, code, linked, with_reference)| NewTransfer {
            id: TransferId::new(id).unwrap(),
            op,
            code,
            reference: with_reference
                .then(|| Reference::parse(&format!("ref-{}", id % 4)).unwrap()),
            linked,
        })
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        8 => proptest::collection::vec(transfer(), 1..5).prop_map(Step::Request),
        3 => (0..4u64).prop_map(Step::AdvanceMs),
        1 => Just(Step::Restart),
    ];
    proptest::collection::vec(step, 1..40)
}

fn run_history(backend: Backend, steps: &[Step]) -> Result<(), TestCaseError> {
    let store = TestStore::new(backend);
    let clock = Arc::new(ManualClock::new(1_800_000_000_000_000_000));
    let mut engine = store.engine(clock.clone());
    let mut model = Model::default();
    engine.open_accounts(accounts()).unwrap();
    accounts().iter().for_each(|a| model.open_account(a));
    // Money to move: wallets and the float get funds, the bank asset gets room to be credited.
    let funding = vec![
        posted(1001, 1, 2, 500),
        posted(1002, 1, 3, 200),
        posted(1003, 1, 4, 100),
        posted(1004, 5, 1, 400),
    ];
    let now_ns = clock.now();
    model.expire(now_ns);
    prop_assert_eq!(
        engine.create_transfers(funding.clone()).unwrap(),
        model.create_transfers(now_ns, &funding)
    );
    for step in steps {
        match step {
            Step::Request(request) => {
                let now_ns = clock.now();
                model.expire(now_ns);
                let expected = model.create_transfers(now_ns, request);
                let actual = engine.create_transfers(request.clone()).unwrap();
                prop_assert_eq!(actual, expected, "request {:?}", request);
            }
            Step::AdvanceMs(ms) => clock.advance_ms(*ms),
            Step::Restart => {
                drop(engine);
                engine = store.engine(clock.clone());
                model.restart();
            }
        }
    }
    // Bring both to the same moment. The engine expires due pending transfers in every batch
    // and also on its own when idle (which races the end of the test); the model expires them
    // on each request. One request that is rejected on its payload alone settles both.
    let probe = vec![posted(9_999, 2, 2, 1)];
    let now_ns = clock.now();
    model.expire(now_ns);
    prop_assert_eq!(
        engine.create_transfers(probe.clone()).unwrap(),
        model.create_transfers(now_ns, &probe)
    );
    drop(engine);
    for stored in store.accounts() {
        let modelled = &model.accounts()[&stored.id];
        prop_assert_eq!(
            stored.balances,
            modelled.balances,
            "account {:?}",
            stored.id
        );
        prop_assert_eq!(stored.closed, modelled.closed);
    }
    Ok(())
}

trait Now {
    fn now(&self) -> i64;
}

impl Now for ManualClock {
    fn now(&self) -> i64 {
        zhifu_store::Clock::now_ns(self)
    }
}

fn ledger_matches_model(backend: Backend) {
    let cases = match backend {
        Backend::Sqlite => 64,
        Backend::Postgres => 32,
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&steps(), |steps| run_history(backend, &steps))
        .unwrap();
}

crate::on_both_stores!(ledger_matches_model);

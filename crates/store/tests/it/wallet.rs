//! The wallet's records (people and sessions) behave the same on both stores.

use crate::on_both_stores;
use crate::support::{Backend, TestStore, open_operator_and_wallets, posted};
use std::sync::Arc;
use zhifu_ledger::TransferCode;
use zhifu_store::{
    BalanceSpent, CardRow, IdentityRow, NewUser, P2pRow, RedPacketRow, TransferRecord,
};

on_both_stores!(
    users_and_sessions,
    records_commit_only_with_transfers_that_stand
);

fn user(phone_lookup: &[u8]) -> NewUser {
    NewUser {
        phone_lookup: phone_lookup.to_vec(),
        phone_masked: "138****5678".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_ms: 1_800_000_000_000,
    }
}

fn users_and_sessions(backend: Backend) {
    let store = TestStore::new(backend);
    let mut wallet = store.config.open_wallet().expect("open the wallet store");
    let alice = wallet
        .user_create(&user(b"alice"))
        .unwrap()
        .expect("a new phone");
    let bob = wallet
        .user_create(&user(b"bob"))
        .unwrap()
        .expect("a new phone");
    assert_ne!(alice, bob);
    // The same phone again creates nothing and changes nothing.
    assert_eq!(wallet.user_create(&user(b"alice")).unwrap(), None);
    let found = wallet.user_by_phone(b"alice").unwrap().expect("alice");
    assert_eq!(found.id, alice);
    assert_eq!(wallet.user(alice).unwrap(), Some(found));
    assert_eq!(wallet.user_by_phone(b"carol").unwrap(), None);
    assert_eq!(wallet.user(i64::MAX).unwrap(), None);

    wallet.session_create(b"token-1", alice, 42).unwrap();
    assert!(
        wallet.session_create(b"token-1", bob, 43).is_err(),
        "a token is unique"
    );
    assert!(
        wallet.session_create(b"token-2", i64::MAX, 43).is_err(),
        "only for a real user"
    );
    let session = wallet.session(b"token-1").unwrap().expect("the session");
    assert_eq!((session.user_id, session.expires_ms), (alice, 42));
    assert!(wallet.session_delete(b"token-1").unwrap());
    assert!(!wallet.session_delete(b"token-1").unwrap());
    assert_eq!(wallet.session(b"token-1").unwrap(), None);

    assert_eq!(wallet.pin(alice).unwrap(), None);
    wallet.pin_set(alice, b"salt", b"hash-1").unwrap();
    wallet.pin_attempts_save(alice, 5, Some(99)).unwrap();
    let pin = wallet.pin(alice).unwrap().expect("a PIN");
    assert_eq!((pin.failures, pin.locked_until_ms), (5, Some(99)));
    // Changing the PIN clears the lockout.
    wallet.pin_set(alice, b"salt-2", b"hash-2").unwrap();
    let pin = wallet.pin(alice).unwrap().expect("a PIN");
    assert_eq!(
        (
            pin.salt.as_slice(),
            pin.hash.as_slice(),
            pin.failures,
            pin.locked_until_ms
        ),
        (&b"salt-2"[..], &b"hash-2"[..], 0, None)
    );
    assert!(
        wallet.pin_set(i64::MAX, b"s", b"h").is_err(),
        "only for a real user"
    );

    // Identities: saved, then raised to a higher class.
    let mut identity = IdentityRow {
        user_id: alice,
        class: "I".into(),
        name_masked: "*丽".into(),
        id_lookup: b"id-lookup".to_vec(),
        id_masked: "1****************X".into(),
        verified_ms: 7,
    };
    assert_eq!(wallet.identity(alice).unwrap(), None);
    wallet.identity_save(&identity).unwrap();
    identity.class = "II".into();
    wallet.identity_save(&identity).unwrap();
    assert_eq!(wallet.identity(alice).unwrap(), Some(identity.clone()));

    // Cards: bound once per wallet, unbound, bound again.
    let card = |user_id, token: &str| CardRow {
        user_id,
        token: token.into(),
        bank: "Simulated Bank".into(),
        last_four: "1234".into(),
        bound_ms: 8,
    };
    assert!(wallet.card_bind(&card(alice, "tok-1")).unwrap());
    assert!(
        !wallet.card_bind(&card(alice, "tok-1")).unwrap(),
        "already bound"
    );
    assert!(
        wallet.card_bind(&card(bob, "tok-1")).unwrap(),
        "another account of the holder"
    );
    assert!(wallet.card_bind(&card(alice, "tok-2")).unwrap());
    assert_eq!(wallet.cards(alice).unwrap().len(), 2);
    assert!(wallet.card_unbind(alice, "tok-1", 9).unwrap());
    assert!(!wallet.card_unbind(alice, "tok-1", 9).unwrap());
    assert_eq!(
        wallet
            .cards(alice)
            .unwrap()
            .iter()
            .map(|c| c.token.as_str())
            .collect::<Vec<_>>(),
        ["tok-2"]
    );
    assert!(
        wallet.card_bind(&card(alice, "tok-1")).unwrap(),
        "bound again after unbinding"
    );
    assert_eq!(wallet.cards(bob).unwrap().len(), 1);

    // The free withdrawal quota: shared per person, a share per key, released on failure.
    assert_eq!(wallet.quota_used(b"id-lookup").unwrap(), 0);
    assert!(wallet.quota_use_record("w1", b"id-lookup", 60_000).unwrap());
    assert!(
        !wallet.quota_use_record("w1", b"id-lookup", 10).unwrap(),
        "one share per key"
    );
    assert!(wallet.quota_use_record("w2", b"id-lookup", 40_000).unwrap());
    assert!(wallet.quota_use_record("w3", b"someone-else", 5).unwrap());
    assert_eq!(wallet.quota_used(b"id-lookup").unwrap(), 100_000);
    wallet.quota_use_release("w2").unwrap();
    assert_eq!(wallet.quota_used(b"id-lookup").unwrap(), 60_000);
    assert_eq!(wallet.quota_use("w2").unwrap(), Some(40_000));
    assert_eq!(wallet.quota_use("w9").unwrap(), None);

    // Withdrawals: open until settled, found by the reconciler oldest first, closed once.
    let withdrawal = |key: &str, started_ms| zhifu_store::WithdrawalRow {
        key: format!("{alice}:{key}"),
        user_id: alice,
        withdrawal_key: key.into(),
        card_token: "card-token".into(),
        amount_minor: 10_000,
        fee_minor: 10,
        free_minor: 0,
        started_ms,
        state: "open".into(),
    };
    assert!(wallet.withdrawal_open(&withdrawal("w-b", 20)).unwrap());
    assert!(wallet.withdrawal_open(&withdrawal("w-a", 10)).unwrap());
    assert!(
        !wallet.withdrawal_open(&withdrawal("w-a", 99)).unwrap(),
        "once per key"
    );
    let open = wallet.withdrawals_open(20, 10).unwrap();
    assert_eq!(open, [withdrawal("w-a", 10), withdrawal("w-b", 20)]);
    assert_eq!(
        wallet.withdrawals_open(15, 10).unwrap().len(),
        1,
        "too young"
    );
    assert_eq!(wallet.withdrawals_open(20, 1).unwrap().len(), 1, "limited");
    wallet
        .withdrawal_close(&format!("{alice}:w-a"), "paid")
        .unwrap();
    wallet
        .withdrawal_close(&format!("{alice}:w-a"), "declined")
        .unwrap();
    assert_eq!(
        wallet.withdrawals_open(20, 10).unwrap(),
        [withdrawal("w-b", 20)]
    );

    // Pay codes: a new one spends the older; the first take spends it, later takes see that.
    wallet.pay_code_issue(b"code-1", alice, 100, 160).unwrap();
    wallet.pay_code_issue(b"code-2", alice, 110, 170).unwrap();
    let taken = wallet
        .pay_code_take(b"code-1", 120)
        .unwrap()
        .expect("known");
    assert_eq!(taken.spent_ms, Some(110), "spent when code-2 was shown");
    let taken = wallet
        .pay_code_take(b"code-2", 120)
        .unwrap()
        .expect("known");
    assert_eq!(
        (taken.user_id, taken.expires_ms, taken.spent_ms),
        (alice, 170, None)
    );
    let again = wallet
        .pay_code_take(b"code-2", 130)
        .unwrap()
        .expect("known");
    assert_eq!(again.spent_ms, Some(120), "spent by the first take");
    assert_eq!(wallet.pay_code_take(b"never", 130).unwrap(), None);
    assert!(wallet.pay_device_insert(5_000_001, alice, 1).unwrap());
    assert!(
        !wallet.pay_device_insert(5_000_001, bob, 1).unwrap(),
        "number taken"
    );
    assert_eq!(wallet.pay_device_owner(5_000_001).unwrap(), Some(alice));
    assert_eq!(wallet.pay_device_owner(5_000_002).unwrap(), None);
    assert!(wallet.pay_device_step_spend(5_000_001, 42).unwrap());
    assert!(
        !wallet.pay_device_step_spend(5_000_001, 42).unwrap(),
        "once"
    );
    assert!(wallet.pay_device_step_spend(5_000_001, 43).unwrap());
    assert!(
        wallet
            .static_code_payment_insert("s1", alice, 300, 10)
            .unwrap()
    );
    assert!(
        !wallet
            .static_code_payment_insert("s1", alice, 300, 10)
            .unwrap()
    );
    assert!(
        wallet
            .static_code_payment_insert("s2", alice, 200, 20)
            .unwrap()
    );
    assert_eq!(wallet.static_code_spent_since(alice, 0).unwrap(), 500);
    assert_eq!(wallet.static_code_spent_since(alice, 15).unwrap(), 200);
    assert_eq!(wallet.static_code_spent_since(bob, 0).unwrap(), 0);

    // Transfers between people: listed for both, counted for the payer's limits.
    let p2p = |id: &str, amount_minor, created_ms, state: &str| P2pRow {
        transfer_id: id.into(),
        payer_id: alice,
        payee_id: bob,
        amount_minor,
        created_ms,
        arrives_ms: created_ms,
        expires_ms: created_ms + 100,
        state: state.into(),
    };
    // The ledger's writer commits them with their transfers.
    let engine = store.engine(Arc::new(zhifu_store::SystemClock));
    open_operator_and_wallets(&engine, 3);
    engine
        .create_transfers(vec![posted(1, 1, 2, 10_000)])
        .unwrap();
    let record = |id: u128, records: Vec<TransferRecord>| {
        let codes = engine
            .create_transfers_recorded(vec![posted(id, 2, 3, 1)], records)
            .unwrap();
        assert!(matches!(
            codes[..],
            [TransferCode::Ok | TransferCode::Exists]
        ));
    };
    record(
        11,
        vec![TransferRecord::P2pMade(p2p("11", 500, 10, "held"))],
    );
    record(
        12,
        vec![TransferRecord::P2pMade(p2p("12", 300, 20, "held"))],
    );
    record(
        11,
        vec![TransferRecord::P2pMade(p2p("11", 999, 11, "held"))],
    );
    record(
        13,
        vec![TransferRecord::P2pMade(p2p("13", 200, 30, "held"))],
    );
    let resolved = |id: &str, state| TransferRecord::P2pResolved {
        transfer_id: id.into(),
        state,
    };
    record(
        14,
        vec![resolved("12", "accepted"), resolved("13", "returned")],
    );
    assert_eq!(
        wallet.p2p("11").unwrap(),
        Some(p2p("11", 500, 10, "held")),
        "a transfer's row is kept as it was first written"
    );
    assert_eq!(wallet.p2p("14").unwrap(), None, "a transfer with no row");
    assert_eq!(wallet.p2p("t1").unwrap(), None, "no transfer id at all");
    let spent = |sums_minor, first_expiry_ms| BalanceSpent {
        sums_minor,
        first_expiry_ms,
    };
    assert_eq!(
        wallet.balance_spent(alice, [0, 15, 25], 50).unwrap(),
        spent([800, 300, 0], Some(110)),
        "held and accepted count, returned does not, each window from its start; \
         the held one stops counting at its expiry"
    );
    assert_eq!(
        wallet.balance_spent(alice, [0, 0, 0], 110).unwrap(),
        spent([300; 3], None),
        "t1 expired: returned"
    );
    assert_eq!(
        wallet.balance_spent(bob, [0, 0, 0], 50).unwrap(),
        spent([0; 3], None)
    );
    assert_eq!(
        wallet.p2p("12").unwrap().map(|r| r.state),
        Some("accepted".into())
    );

    // Red packets: shares stored with the packet, each claimed once, one per person.
    let packet = RedPacketRow {
        packet_id: "p1".into(),
        sender_id: alice,
        kind: "lucky".into(),
        total_minor: 600,
        shares: 3,
        created_ms: 1,
        expires_ms: 2,
    };
    assert!(wallet.red_packet_insert(&packet, &[100, 200, 300]).unwrap());
    assert!(!wallet.red_packet_insert(&packet, &[600]).unwrap(), "once");
    assert_eq!(wallet.red_packet("p1").unwrap(), Some(packet));
    assert!(wallet.red_packet_claim("p1", 0, bob, 5).unwrap());
    assert!(
        !wallet.red_packet_claim("p1", 0, alice, 5).unwrap(),
        "taken"
    );
    assert!(
        wallet.red_packet_claim("p1", 1, bob, 5).is_err(),
        "one share per person"
    );
    // Alice's transfers (800 still out) were sent at 10..30, after the packet (at 1).
    assert_eq!(
        wallet.balance_spent(alice, [0, 2, 5], 1).unwrap(),
        spent([1_400, 800, 800], Some(2)),
        "open: the whole packet is out until it expires at 2"
    );
    assert_eq!(
        wallet.balance_spent(alice, [0, 2, 5], 2).unwrap(),
        spent([900, 800, 800], Some(110)),
        "expired: only the grabbed share stays out"
    );
    let shares = wallet.red_packet_shares("p1").unwrap();
    assert_eq!(shares.iter().map(|s| s.amount_minor).sum::<u64>(), 600);
    assert_eq!(
        (shares[0].grabber_id, shares[1].grabber_id),
        (Some(bob), None)
    );

    // A restart reads what was written.
    drop(wallet);
    let mut wallet = store.config.open_wallet().expect("reopen");
    assert_eq!(
        wallet.user_by_phone(b"bob").unwrap().map(|u| u.id),
        Some(bob)
    );
}

/// An older version kept the transfers between people in the wallet's own file; the ledger's
/// writer now commits them with their transfers in the ledger's. Opening the wallet moves
/// them over, once, and loses none.
#[test]
fn p2p_rows_of_an_older_version_move_to_the_ledger_file() {
    let store = TestStore::new(Backend::Sqlite);
    let zhifu_store::StoreConfig::Sqlite { path } = &store.config else {
        unreachable!("a SQLite test store")
    };
    let wallet_path = path.with_file_name("wallet.sqlite");
    let mut wallet = store.config.open_wallet().expect("open the wallet store");
    let alice = wallet.user_create(&user(b"alice")).unwrap().unwrap();
    let bob = wallet.user_create(&user(b"bob")).unwrap().unwrap();
    drop(wallet);
    {
        let engine = store.engine(Arc::new(zhifu_store::SystemClock));
        open_operator_and_wallets(&engine, 3);
        engine
            .create_transfers(vec![posted(1, 1, 2, 10_000)])
            .unwrap();
        engine
            .create_transfers(vec![posted(77, 2, 3, 500)])
            .unwrap();
    }
    // The wallet's file as an older version left it: the table in it, with `row` in it.
    let leave_old_table = |row: &str| {
        let old = rusqlite::Connection::open(&wallet_path).unwrap();
        old.execute_batch(&format!(
            "CREATE TABLE p2p_transfers (transfer_id TEXT PRIMARY KEY, payer_id INTEGER NOT NULL, \
             payee_id INTEGER NOT NULL, amount_minor INTEGER NOT NULL, created_ms INTEGER NOT NULL, \
             expires_ms INTEGER NOT NULL, state TEXT NOT NULL, arrives_ms INTEGER); \
             INSERT INTO p2p_transfers VALUES ({row});"
        ))
        .unwrap();
    };
    let old_table_left = || -> bool {
        let old = rusqlite::Connection::open(&wallet_path).unwrap();
        old.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'p2p_transfers'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    };
    let moved_row = |wallet: &mut Box<dyn zhifu_store::WalletStore>| {
        let moved = wallet
            .p2p("77")
            .unwrap()
            .expect("the row, in the ledger's file");
        (moved.amount_minor, moved.state)
    };

    leave_old_table(&format!(
        "'77', {alice}, {bob}, 500, 10, 110, 'accepted', 10"
    ));
    let mut wallet = store.config.open_wallet().expect("open the wallet store");
    assert_eq!(moved_row(&mut wallet), (500, "accepted".into()));
    assert!(!old_table_left(), "the wallet's old table is gone");
    drop(wallet);

    // A crash between the copy and the drop: the copy is done again and changes nothing.
    leave_old_table(&format!("'77', {alice}, {bob}, 999, 10, 110, 'held', 10"));
    let mut wallet = store.config.open_wallet().expect("open the wallet store");
    assert_eq!(moved_row(&mut wallet), (500, "accepted".into()));
    assert!(!old_table_left());
    drop(wallet);

    // A row whose transfer the ledger does not hold: these files do not belong together.
    leave_old_table(&format!("'78', {alice}, {bob}, 1, 10, 110, 'held', 10"));
    let refused = store.config.open_wallet().err().expect("a refusal");
    assert!(refused.to_string().contains("78"), "{refused}");
    assert!(old_table_left(), "nothing dropped");
}

/// Goal: a wallet row given with transfers commits with them when they all stand (applied
/// now, or before: a retry), and never for a request the ledger refused, even in part.
fn records_commit_only_with_transfers_that_stand(backend: Backend) {
    let store = TestStore::new(backend);
    let mut wallet = store.config.open_wallet().expect("open the wallet store");
    let alice = wallet.user_create(&user(b"alice")).unwrap().unwrap();
    let bob = wallet.user_create(&user(b"bob")).unwrap().unwrap();
    let made = |id: &str| {
        vec![TransferRecord::P2pMade(P2pRow {
            transfer_id: id.into(),
            payer_id: alice,
            payee_id: bob,
            amount_minor: 100,
            created_ms: 10,
            arrives_ms: 10,
            expires_ms: 110,
            state: "held".into(),
        })]
    };
    let engine = store.engine(Arc::new(zhifu_store::SystemClock));
    open_operator_and_wallets(&engine, 3);
    engine
        .create_transfers(vec![posted(1, 1, 2, 1_000)])
        .unwrap();
    let ok = [TransferCode::Ok];
    assert_eq!(
        engine
            .create_transfers_recorded(vec![posted(2, 2, 3, 100)], made("2"))
            .unwrap(),
        ok
    );
    assert!(wallet.p2p("2").unwrap().is_some());

    assert_eq!(
        engine
            .create_transfers_recorded(vec![posted(3, 2, 3, 5_000)], made("3"))
            .unwrap(),
        [TransferCode::ExceedsBalance]
    );
    let mut first = posted(4, 2, 3, 10);
    first.linked = true;
    assert_eq!(
        engine
            .create_transfers_recorded(vec![first, posted(5, 2, 3, 5_000)], made("4"))
            .unwrap(),
        [
            TransferCode::LinkedEventFailed,
            TransferCode::ExceedsBalance
        ]
    );
    assert_eq!(wallet.p2p("3").unwrap(), None, "refused");
    assert_eq!(wallet.p2p("4").unwrap(), None, "refused in part");

    // A transfer an older version made without its row (a crash between two commits): the
    // retry writes it.
    assert_eq!(
        engine.create_transfers(vec![posted(6, 2, 3, 100)]).unwrap(),
        ok
    );
    assert_eq!(
        engine
            .create_transfers_recorded(vec![posted(6, 2, 3, 100)], made("6"))
            .unwrap(),
        [TransferCode::Exists]
    );
    assert!(wallet.p2p("6").unwrap().is_some());

    let accepted = vec![TransferRecord::P2pResolved {
        transfer_id: "2".into(),
        state: "accepted",
    }];
    assert_eq!(
        engine
            .create_transfers_recorded(vec![posted(7, 2, 3, 1)], accepted)
            .unwrap(),
        ok
    );
    let state = wallet.p2p("2").unwrap().map(|row| row.state);
    assert_eq!(state.as_deref(), Some("accepted"));
}

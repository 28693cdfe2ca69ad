//! Merchant acquiring's records behave the same on both stores: merchants and sub-merchants,
//! keys by serial with revocation, and nonces accepted once until purged.

use crate::on_both_stores;
use crate::support::{Backend, TestStore};
use zhifu_store::{
    MerchantKeyRow, NewMerchant, OrderRow, RefundRow, StoreConfig, WalletDb, WalletStore,
};

on_both_stores!(
    merchants_and_sub_merchants,
    keys_by_serial_and_revocation,
    nonces_are_accepted_once_until_purged,
    merchant_records_go_through_the_batching_writer,
    a_failing_one_statement_job_is_undone_alone,
    unpaid_orders_and_refunds_in_flight_are_found_for_recovery,
);

fn merchant(name: &str, kind: &str, provider: Option<i64>) -> NewMerchant {
    NewMerchant {
        name: name.into(),
        kind: kind.into(),
        service_provider_id: provider,
        discount_rate_bps: 60,
        notify_url: Some("https://shop.example/notify".into()),
        created_ms: 1_800_000_000_000,
    }
}

fn key(merchant_id: i64, serial: &str) -> MerchantKeyRow {
    MerchantKeyRow {
        merchant_id,
        serial: serial.into(),
        algorithm: "Ed25519".into(),
        public_key_pem: "-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----\n".into(),
        created_ms: 1_800_000_000_000,
        revoked_ms: None,
    }
}

fn merchants_and_sub_merchants(backend: Backend) {
    let store = TestStore::new(backend);
    let mut wallet = store.config.open_wallet().expect("open the wallet store");
    let shop = wallet
        .merchant_insert(&merchant("Corner shop", "merchant", None))
        .unwrap();
    let provider = wallet
        .merchant_insert(&merchant("Provider", "service_provider", None))
        .unwrap();
    let mut sub = merchant("Noodle bar", "merchant", Some(provider));
    sub.notify_url = None;
    sub.discount_rate_bps = 38;
    let noodles = wallet.merchant_insert(&sub).unwrap();
    let tea = wallet
        .merchant_insert(&merchant("Tea house", "merchant", Some(provider)))
        .unwrap();
    assert!(shop < provider && provider < noodles && noodles < tea);

    let row = wallet.merchant(noodles).unwrap().expect("the sub-merchant");
    assert_eq!(
        (
            row.name.as_str(),
            row.kind.as_str(),
            row.service_provider_id,
            row.discount_rate_bps,
            row.notify_url.as_deref()
        ),
        ("Noodle bar", "merchant", Some(provider), 38, None)
    );
    assert_eq!(wallet.merchant(i64::MAX).unwrap(), None);

    let ids = |rows: Vec<zhifu_store::MerchantRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(wallet.sub_merchants(provider, 0, 10).unwrap()),
        [noodles, tea]
    );
    assert_eq!(
        ids(wallet.sub_merchants(provider, noodles, 10).unwrap()),
        [tea]
    );
    assert_eq!(
        ids(wallet.sub_merchants(provider, 0, 1).unwrap()),
        [noodles]
    );
    assert!(wallet.sub_merchants(shop, 0, 10).unwrap().is_empty());

    // The schema refuses what the rules never write: a provider that does not exist, a
    // service provider under a provider, an unknown kind, a rate above 100 %.
    for bad in [
        merchant("Ghost's", "merchant", Some(i64::MAX)),
        merchant("Nested", "service_provider", Some(provider)),
        merchant("Odd", "bank", None),
        NewMerchant {
            discount_rate_bps: 10_001,
            ..merchant("Greedy", "merchant", None)
        },
    ] {
        assert!(wallet.merchant_insert(&bad).is_err(), "{bad:?}");
    }
}

fn keys_by_serial_and_revocation(backend: Backend) {
    let store = TestStore::new(backend);
    let mut wallet = store.config.open_wallet().expect("open the wallet store");
    let shop = wallet
        .merchant_insert(&merchant("Corner shop", "merchant", None))
        .unwrap();
    let other = wallet
        .merchant_insert(&merchant("Other shop", "merchant", None))
        .unwrap();

    assert!(wallet.merchant_key_insert(&key(shop, "k1")).unwrap());
    let mut rsa = key(shop, "k2");
    rsa.algorithm = "RSA-SHA256".into();
    rsa.created_ms += 1;
    assert!(wallet.merchant_key_insert(&rsa).unwrap());
    assert!(
        !wallet.merchant_key_insert(&key(shop, "k1")).unwrap(),
        "a serial is unique per merchant"
    );
    assert!(
        wallet.merchant_key_insert(&key(other, "k1")).unwrap(),
        "another merchant may use the same serial"
    );
    assert!(
        wallet.merchant_key_insert(&key(i64::MAX, "k1")).is_err(),
        "only for a real merchant"
    );
    assert_eq!(wallet.merchant_key(shop, "k2").unwrap(), Some(rsa.clone()));
    assert_eq!(wallet.merchant_key(shop, "k3").unwrap(), None);
    let serials =
        |rows: Vec<MerchantKeyRow>| rows.into_iter().map(|r| r.serial).collect::<Vec<_>>();
    assert_eq!(
        serials(wallet.merchant_keys_active(shop).unwrap()),
        ["k1", "k2"]
    );

    assert!(wallet.merchant_key_revoke(shop, "k1", 99).unwrap());
    assert!(
        !wallet.merchant_key_revoke(shop, "k1", 100).unwrap(),
        "revoked once"
    );
    assert!(!wallet.merchant_key_revoke(shop, "k9", 100).unwrap());
    assert_eq!(serials(wallet.merchant_keys_active(shop).unwrap()), ["k2"]);
    let revoked = wallet.merchant_key(shop, "k1").unwrap().expect("kept");
    assert_eq!(revoked.revoked_ms, Some(99));
    assert!(
        !wallet.merchant_key_insert(&key(shop, "k1")).unwrap(),
        "a revoked serial is never reused"
    );
    assert_eq!(serials(wallet.merchant_keys_active(other).unwrap()), ["k1"]);
    // The public key stays out of Debug output.
    assert!(!format!("{revoked:?}").contains("BEGIN PUBLIC KEY"));
}

fn nonces_are_accepted_once_until_purged(backend: Backend) {
    let store = TestStore::new(backend);
    let mut wallet = store.config.open_wallet().expect("open the wallet store");
    assert!(wallet.merchant_nonce_record(1, "n-1", 1_000).unwrap());
    assert!(!wallet.merchant_nonce_record(1, "n-1", 2_000).unwrap());
    assert!(
        wallet.merchant_nonce_record(2, "n-1", 2_000).unwrap(),
        "nonces are per merchant"
    );
    assert!(wallet.merchant_nonce_record(1, "n-2", 3_000).unwrap());
    // Purges what was seen strictly before the bound, and nothing newer.
    assert_eq!(wallet.merchant_nonces_purge(2_000).unwrap(), 1);
    assert_eq!(wallet.merchant_nonces_purge(2_000).unwrap(), 0);
    assert!(!wallet.merchant_nonce_record(2, "n-1", 4_000).unwrap());
    assert!(!wallet.merchant_nonce_record(1, "n-2", 4_000).unwrap());
    assert!(
        wallet.merchant_nonce_record(1, "n-1", 4_000).unwrap(),
        "forgotten once purged"
    );
}

/// The acquiring records are reached through `WalletDb`'s `dyn WalletStore`, and the writer's
/// per-job savepoint undoes a refused job's nonce with the rest of its writes.
fn merchant_records_go_through_the_batching_writer(backend: Backend) {
    let store = TestStore::new(backend);
    let db = WalletDb::open(&store.config, 1).expect("open the wallet db");
    let shop = db
        .write_plain(|s| s.merchant_insert(&merchant("Corner shop", "merchant", None)))
        .unwrap();
    let refused = db
        .write(move |s: &mut dyn WalletStore| {
            assert!(s.merchant_nonce_record(shop, "undone", 1)?);
            Ok(Err::<(), _>("refused"))
        })
        .unwrap();
    assert_eq!(refused, Err("refused"));
    let first = db
        .write_plain(move |s| s.merchant_nonce_record(shop, "undone", 2))
        .unwrap();
    let again = db
        .write_plain(move |s| s.merchant_nonce_record(shop, "undone", 3))
        .unwrap();
    assert!(first && !again);
    let row = db.read(|s| s.merchant(shop)).unwrap().expect("the shop");
    assert_eq!(row.name, "Corner shop");
}

/// A job of one statement runs without a savepoint on SQLite: when its statement fails (here a
/// payment by a person who does not exist), it must still be undone alone, and the jobs
/// batched with it must commit.
fn a_failing_one_statement_job_is_undone_alone(backend: Backend) {
    let store = TestStore::new(backend);
    let db = std::sync::Arc::new(WalletDb::open(&store.config, 1).expect("open the wallet db"));
    let shop = db
        .write_plain(|s| s.merchant_insert(&merchant("Corner shop", "merchant", None)))
        .unwrap();
    // The writer waits inside a job while the 60 queue up behind it, so that they share one
    // batch: failing and succeeding jobs side by side.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = {
        let db = db.clone();
        std::thread::spawn(move || db.write_plain(move |_| Ok(released.recv().is_ok())))
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let threads: Vec<_> = (0..60_i64)
        .map(|i| {
            let db = db.clone();
            std::thread::spawn(move || match i % 3 {
                0 => db
                    .write_statement_quiet(move |s| {
                        s.static_code_payment_insert(&format!("t-{i}"), 1_000_000 + i, 100, i)
                    })
                    .is_err(),
                _ => db
                    .write_statement_quiet(move |s| {
                        s.merchant_nonce_record(shop, &format!("n-{i}"), i)
                    })
                    .unwrap(),
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    release.send(()).unwrap();
    assert!(holder.join().unwrap().unwrap());
    for thread in threads {
        assert!(
            thread.join().unwrap(),
            "a payment by nobody was recorded, or a nonce lost"
        );
    }
    for i in 0..60_i64 {
        let nonce = format!("n-{i}");
        let again = db
            .write_statement_quiet(move |s| s.merchant_nonce_record(shop, &nonce, i))
            .unwrap();
        assert_eq!(
            again,
            i % 3 == 0,
            "nonce {i}: recorded exactly when its job was kept"
        );
        let payer_id = 1_000_000 + i;
        let spent = db.read(move |s| s.static_code_spent_since(payer_id, 0));
        assert_eq!(spent.unwrap(), 0);
    }
}

fn order(merchant_id: i64, out_trade_no: &str, expires_ms: i64) -> OrderRow {
    OrderRow {
        id: 0,
        merchant_id,
        out_trade_no: out_trade_no.into(),
        kind: "NATIVE".into(),
        amount_minor: 1_000,
        description: "Noodles".into(),
        request_digest: "d".into(),
        state: "NOTPAY".into(),
        payer_id: None,
        pin_confirmed: false,
        fee_minor: 0,
        commission_minor: 0,
        refunded_minor: 0,
        refund_count: 0,
        created_ms: 1_000,
        expires_ms,
        paid_ms: None,
        closed_ms: None,
    }
}

/// What the recovery pass reads: unpaid (and closed) orders by expiry, refunds still
/// `PROCESSING`; and how a refund in flight ends: finished once, or forgotten.
fn unpaid_orders_and_refunds_in_flight_are_found_for_recovery(backend: Backend) {
    let store = TestStore::new(backend);
    let mut wallet = store.config.open_wallet().expect("open the wallet store");
    let shop = wallet
        .merchant_insert(&merchant("Corner shop", "merchant", None))
        .unwrap();
    let early = wallet.order_insert(&order(shop, "early", 10_000)).unwrap();
    let late = wallet.order_insert(&order(shop, "late", 20_000)).unwrap();
    let paid = wallet.order_insert(&order(shop, "paid", 10_000)).unwrap();
    let mut paid_row = paid.clone();
    paid_row.state = "SUCCESS".into();
    paid_row.paid_ms = Some(2_000);
    assert!(wallet.order_update(&paid_row, "NOTPAY").unwrap());
    let mut closed = late.clone();
    closed.state = "CLOSED".into();
    closed.closed_ms = Some(3_000);
    assert!(wallet.order_update(&closed, "NOTPAY").unwrap());
    let expiring = |wallet: &mut Box<dyn WalletStore>, from: i64, to: i64, after: (i64, i64)| {
        wallet
            .orders_unpaid_expiring(from, to, after, 10)
            .unwrap()
            .iter()
            .map(|o| o.out_trade_no.clone())
            .collect::<Vec<_>>()
    };
    let first = (i64::MIN, 0);
    assert_eq!(expiring(&mut wallet, 0, i64::MAX, first), ["early", "late"]);
    assert_eq!(expiring(&mut wallet, 10_001, i64::MAX, first), ["late"]);
    assert_eq!(
        expiring(&mut wallet, 0, 10_000, first),
        Vec::<String>::new()
    );
    assert_eq!(
        expiring(&mut wallet, 0, i64::MAX, (10_000, early.id)),
        ["late"]
    );
    // By expiry first: an order created later that expires sooner comes first.
    let sooner = wallet.order_insert(&order(shop, "sooner", 5_000)).unwrap();
    assert_eq!(
        expiring(&mut wallet, 0, i64::MAX, first),
        ["sooner", "early", "late"]
    );
    assert_eq!(
        expiring(&mut wallet, 0, i64::MAX, (sooner.expires_ms, sooner.id)),
        ["early", "late"]
    );

    let refund = |no: &str, created_ms: i64| RefundRow {
        id: 0,
        order_id: paid.id,
        merchant_id: shop,
        out_refund_no: no.into(),
        amount_minor: 100,
        fee_minor: 1,
        commission_minor: 0,
        reason: None,
        state: "PROCESSING".into(),
        created_ms,
        finished_ms: None,
    };
    let first = wallet.refund_insert(&refund("r-1", 5_000)).unwrap();
    let second = wallet.refund_insert(&refund("r-2", 6_000)).unwrap();
    let processing = |wallet: &mut Box<dyn WalletStore>, until: i64| {
        wallet
            .refunds_processing(until, 0, 10)
            .unwrap()
            .iter()
            .map(|r| r.out_refund_no.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(processing(&mut wallet, 6_000), ["r-1", "r-2"]);
    assert_eq!(processing(&mut wallet, 5_999), ["r-1"]);
    // Bills see finished refunds only.
    assert!(
        wallet
            .refunds_between(shop, 0, i64::MAX, 0, 10)
            .unwrap()
            .is_empty()
    );

    assert!(wallet.refund_finish(first.id, "SUCCESS", 9_000).unwrap());
    assert!(!wallet.refund_finish(first.id, "SUCCESS", 9_000).unwrap());
    assert!(!wallet.refund_forget(first.id).unwrap());
    assert!(wallet.refund_forget(second.id).unwrap());
    assert_eq!(processing(&mut wallet, i64::MAX), Vec::<String>::new());
    assert_eq!(wallet.refund_by_out_refund_no(shop, "r-2").unwrap(), None);
    let finished = wallet.refunds_between(shop, 0, i64::MAX, 0, 10).unwrap();
    assert_eq!(
        finished
            .iter()
            .map(|r| (r.state.as_str(), r.created_ms, r.success_ms()))
            .collect::<Vec<_>>(),
        [("SUCCESS", 5_000, Some(9_000))]
    );
    // A day's refunds are those that succeeded in it, whenever they were asked for.
    assert!(
        wallet
            .refunds_between(shop, 0, 9_000, 0, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        wallet
            .refunds_between(shop, 9_000, 9_001, 0, 10)
            .unwrap()
            .len(),
        1
    );
    // A forgotten refund's row is gone: its number could be stored again.
    let again = wallet.refund_insert(&refund("r-2", 7_000)).unwrap();
    assert_eq!(
        (again.created_ms, again.state.as_str()),
        (7_000, "PROCESSING")
    );
}

/// On SQLite the wallet's WAL is copied back into its file by the log keeper, between
/// commits: the writer checkpoints only past 65,536 pages, far more than these rows take, so
/// without the keeper the file would not grow at all here.
#[test]
fn the_wallet_log_is_copied_back_by_the_keeper_not_by_commits() {
    let store = TestStore::new(Backend::Sqlite);
    let StoreConfig::Sqlite { path } = &store.config else {
        unreachable!("an SQLite store")
    };
    let file = path.with_file_name("wallet.sqlite");
    let db = WalletDb::open(&store.config, 1).expect("open the wallet db");
    let shop = db
        .write_plain(|s| s.merchant_insert(&merchant("Corner shop", "merchant", None)))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let size_before = std::fs::metadata(&file).unwrap().len();
    // About 80 KiB of rows, each in a commit of its own.
    for i in 0..400 {
        let nonce = format!("{i:0>200}");
        let recorded = db
            .write_plain(move |s| s.merchant_nonce_record(shop, &nonce, i))
            .unwrap();
        assert!(recorded);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::metadata(&file).unwrap().len() < size_before + 64 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rows never reached the database file"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

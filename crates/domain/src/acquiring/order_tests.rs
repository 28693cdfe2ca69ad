//! Orders, fees, refunds and the notification outbox at their edges, on SQLite with a manual
//! clock: every money-moving test ends with the ledger's conservation check and the merchant's
//! balance to the fen.

use super::merchants::{self, MerchantId, MerchantKind, Onboarding};
use super::notifications;
use super::orders::{
    self, NewOrder, NewRefund, OrderError, OrderKind, OrderPolicy, Orders, commission_minor,
    fee_minor, refund_shares,
};
use super::recovery;
use crate::wallet::chart::{
    BANK_SETTLEMENT, FEE_INCOME, commission_account_id, institution_accounts, merchant_account_id,
    wallet_account, wallet_account_id,
};
use crate::wallet::funding::IdempotencyKey;
use crate::wallet::limits::LimitPolicy;
use crate::wallet::people::People;
use proptest::prelude::*;
use std::sync::Arc;
use zhifu_ledger::{AccountId, NewTransfer, TransferId, TransferOp};
use zhifu_store::{Engine, EngineConfig, ManualClock, OrderRow, RefundRow, StoreConfig};

const START_MS: i64 = 1_800_000_000_000;

struct World {
    _directory: tempfile::TempDir,
    config: StoreConfig,
    clock: Arc<ManualClock>,
    engine: Engine,
    people: People,
    orders: Orders,
}

impl World {
    fn new() -> World {
        let directory = tempfile::tempdir().unwrap();
        let config = StoreConfig::Sqlite {
            path: directory.path().join("ledger.sqlite"),
        };
        let clock = Arc::new(ManualClock::new(START_MS * 1_000_000));
        let engine = Engine::start(&config, clock.clone(), EngineConfig::default()).unwrap();
        engine.open_accounts(institution_accounts()).unwrap();
        let people = People::open(&config, &[9; 32], 3_600_000).unwrap();
        World {
            _directory: directory,
            config,
            clock,
            engine,
            people,
            orders: Orders::new(&[9; 32], OrderPolicy::default()),
        }
    }

    fn merchant(&self, name: &str, provider: Option<MerchantId>) -> MerchantId {
        let kind = MerchantKind::Merchant;
        let onboarding = Onboarding {
            name: name.into(),
            kind,
            discount_rate_bps: 60,
            notify_url: Some("http://127.0.0.1:9/notify".into()),
        };
        merchants::onboard(&self.people, &onboarding, provider, START_MS)
            .unwrap()
            .id
    }

    fn provider(&self) -> MerchantId {
        let onboarding = Onboarding {
            name: "Provider".into(),
            kind: MerchantKind::ServiceProvider,
            discount_rate_bps: 0,
            notify_url: None,
        };
        merchants::onboard(&self.people, &onboarding, None, START_MS)
            .unwrap()
            .id
    }

    fn payer(&self, phone: &str, balance_minor: u64) -> i64 {
        let phone = crate::wallet::identity::Phone::parse(phone).unwrap();
        let user = self
            .people
            .sign_up(&phone, "correct horse", 0)
            .unwrap()
            .user_id;
        self.engine
            .open_accounts(vec![wallet_account(user)])
            .unwrap();
        let funding = NewTransfer {
            id: TransferId::new(u128::from(user as u64) << 64).unwrap(),
            op: TransferOp::Posted {
                debit_account_id: AccountId::new(BANK_SETTLEMENT).unwrap(),
                credit_account_id: wallet_account_id(user),
                amount_minor: balance_minor,
            },
            code: 1,
            reference: None,
            linked: false,
        };
        self.engine.create_transfers(vec![funding]).unwrap();
        user
    }

    fn balance(&self, account: AccountId) -> i128 {
        let mut reader = self.config.open().unwrap();
        zhifu_store::balance(reader.as_mut(), account)
            .unwrap()
            .map_or(0, |a| a.balances.posted_net_minor())
    }

    fn conserved(&self) {
        let mut reader = self.config.open().unwrap();
        let mut all = Vec::new();
        reader.scan_accounts(&mut |a| all.push(a)).unwrap();
        zhifu_ledger::check_conservation(all.iter()).unwrap();
    }

    fn native(&self, merchant: MerchantId, out_trade_no: &str, amount_minor: u64) -> OrderRow {
        let order = NewOrder {
            out_trade_no: out_trade_no.into(),
            kind: OrderKind::Native,
            amount_minor,
            description: "Noodles".into(),
        };
        self.orders
            .create(&self.people, merchant, &order, START_MS)
            .unwrap()
    }

    fn pay(
        &self,
        payer: i64,
        order: &OrderRow,
        key: &str,
        now_ms: i64,
    ) -> Result<OrderRow, OrderError> {
        let code = orders::MerchantCode::Order { order_id: order.id };
        self.orders.pay_code_scanned(
            &self.people,
            &self.engine,
            &LimitPolicy::default(),
            payer,
            &code,
            None,
            &IdempotencyKey::parse(key).unwrap(),
            now_ms,
        )
    }

    /// A recovery pass, on a ledger connection of its own as the reconciler's.
    fn recovery_pass(
        &self,
        expiring: std::ops::Range<i64>,
        orders_max: usize,
        refunds_created_ms_max: i64,
        now_ms: i64,
    ) -> recovery::Pass {
        let mut ledger = self.config.open().unwrap();
        recovery::pass(
            &self.orders,
            &self.people,
            &self.engine,
            ledger.as_mut(),
            expiring,
            orders_max,
            refunds_created_ms_max,
            now_ms,
        )
        .unwrap()
    }

    fn refund(
        &self,
        merchant: MerchantId,
        order: &OrderRow,
        no: &str,
        amount_minor: u64,
    ) -> Result<RefundRow, OrderError> {
        let refund = NewRefund {
            out_refund_no: no.into(),
            amount_minor,
            reason: None,
        };
        self.orders.refund(
            &self.people,
            &self.engine,
            merchant,
            order.id,
            &refund,
            START_MS + 60_000,
        )
    }
}

#[test]
fn fees_round_half_up_to_the_fen_and_commission_rounds_down() {
    // 0.6 % of 0.83 yuan is 0.498 fen; of 0.84 yuan 0.504 fen; of 0.75 yuan exactly 0.45.
    assert_eq!(fee_minor(83, 60), 0);
    assert_eq!(fee_minor(84, 60), 1);
    assert_eq!(fee_minor(250, 60), 2); // 1.5 fen: half up
    assert_eq!(fee_minor(12_345, 60), 74); // 74.07
    assert_eq!(fee_minor(u64::MAX / 2, 10_000), u64::MAX / 2);
    assert_eq!(commission_minor(74, 2_000), 14); // 14.8 down
    assert_eq!(commission_minor(4, 2_000), 0);
}

proptest! {
    /// However a payment is refunded in parts, the parts give back exactly its fee and its
    /// commission, each part at most what is left, and none negative.
    #[test]
    fn refunds_in_parts_give_back_exactly_the_fee_and_commission(
        amount_minor in 1u64..10_000_000,
        rate_bps in 0u32..=10_000,
        cuts in proptest::collection::vec(1u64..1_000_000, 0..49),
    ) {
        let fee = fee_minor(amount_minor, rate_bps);
        let commission = commission_minor(fee, 2_000);
        let mut order = OrderRow {
            id: 1, merchant_id: 1, out_trade_no: "o".into(), kind: "NATIVE".into(),
            amount_minor, description: "d".into(), request_digest: String::new(),
            state: "SUCCESS".into(), payer_id: Some(1), pin_confirmed: true, fee_minor: fee,
            commission_minor: commission, refunded_minor: 0, refund_count: 0, created_ms: 0,
            expires_ms: 1, paid_ms: Some(0), closed_ms: None,
        };
        // Parts: the cuts, clipped to what is left, then the rest.
        let mut parts: Vec<u64> = Vec::new();
        let mut left = amount_minor;
        for cut in cuts {
            if left <= 1 { break; }
            let part = cut.min(left - 1);
            parts.push(part);
            left -= part;
        }
        parts.push(left);
        let mut refunds: Vec<RefundRow> = Vec::new();
        for part in parts {
            let (fee_back, commission_back) = refund_shares(&order, &refunds, part);
            let fee_left = fee - refunds.iter().map(|r| r.fee_minor).sum::<u64>();
            prop_assert!(fee_back <= fee_left);
            refunds.push(RefundRow {
                id: refunds.len() as i64 + 1, order_id: 1, merchant_id: 1,
                out_refund_no: String::new(), amount_minor: part, fee_minor: fee_back,
                commission_minor: commission_back, reason: None, state: "SUCCESS".into(),
                created_ms: 0,
                finished_ms: None,
            });
            order.refunded_minor += part;
        }
        prop_assert_eq!(refunds.iter().map(|r| r.fee_minor).sum::<u64>(), fee);
        prop_assert_eq!(refunds.iter().map(|r| r.commission_minor).sum::<u64>(), commission);
    }
}

#[test]
fn a_native_order_is_paid_once_with_its_fee_and_the_providers_commission() {
    let world = World::new();
    let provider = world.provider();
    let shop = world.merchant("Noodle bar", Some(provider));
    let payer = world.payer("13800000001", 100_000);
    let order = world.native(shop, "order-1", 12_345);
    assert_eq!(order.state, "NOTPAY");

    // The same request is the same order; another payload under the number is refused.
    assert_eq!(world.native(shop, "order-1", 12_345).id, order.id);
    let other = NewOrder {
        out_trade_no: "order-1".into(),
        kind: OrderKind::Native,
        amount_minor: 12_346,
        description: "Noodles".into(),
    };
    let reused = world.orders.create(&world.people, shop, &other, START_MS);
    assert!(matches!(reused, Err(OrderError::OutTradeNoReused)));

    // The code names the order; a made-up reference does not.
    let merchant = merchants::merchant(&world.people, shop).unwrap();
    let code = world.orders.code_for(&merchant, &order);
    assert!(matches!(
        world.orders.read_code(&code).unwrap(),
        orders::MerchantCode::Order { order_id } if order_id == order.id
    ));
    assert_eq!(
        world
            .orders
            .order_of_reference(&format!("{}.000000000000", order.id)),
        None
    );

    let paid = world.pay(payer, &order, "pay-1", START_MS + 1_000).unwrap();
    assert_eq!(
        (paid.state.as_str(), paid.fee_minor, paid.commission_minor),
        ("SUCCESS", 74, 14)
    );
    // A retry is the same payment; another payer is refused; nothing moves twice.
    assert_eq!(
        world
            .pay(payer, &order, "pay-1", START_MS + 2_000)
            .unwrap()
            .paid_ms,
        paid.paid_ms
    );
    let late = world.payer("13800000002", 100_000);
    assert!(matches!(
        world.pay(late, &order, "pay-2", START_MS + 2_000),
        Err(OrderError::OrderPaid)
    ));
    assert_eq!(world.balance(wallet_account_id(payer)), 100_000 - 12_345);
    assert_eq!(world.balance(merchant_account_id(shop.get())), 12_345 - 74);
    assert_eq!(world.balance(commission_account_id(provider.get())), 14);
    assert_eq!(world.balance(AccountId::new(FEE_INCOME).unwrap()), 74 - 14);
    world.conserved();

    // One event in the outbox, due at once.
    let due = notifications::due(&world.people, START_MS + 1_000, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].notification.event_type, "TRANSACTION.SUCCESS");
}

#[test]
fn refunds_stop_at_the_paid_amount_and_fifty_and_give_the_fee_back() {
    let world = World::new();
    let shop = world.merchant("Noodle bar", None);
    let payer = world.payer("13800000001", 100_000);
    let order = world.native(shop, "order-1", 10_000);
    world.pay(payer, &order, "pay-1", START_MS).unwrap();
    // Unpaid orders cannot be refunded.
    let unpaid = world.native(shop, "order-2", 500);
    assert!(matches!(
        world.refund(shop, &unpaid, "r-x", 1),
        Err(OrderError::OrderNotPaid)
    ));

    let first = world.refund(shop, &order, "r-1", 3_333).unwrap();
    assert_eq!((first.amount_minor, first.fee_minor), (3_333, 20));
    // Same number, same refund; same number, other amount: refused.
    assert_eq!(
        world.refund(shop, &order, "r-1", 3_333).unwrap().id,
        first.id
    );
    assert!(matches!(
        world.refund(shop, &order, "r-1", 3_334),
        Err(OrderError::OutRefundNoReused)
    ));
    assert!(matches!(
        world.refund(shop, &order, "r-2", 6_668),
        Err(OrderError::RefundExceedsPaid { left_minor: 6_667 })
    ));
    // 47 refunds of 1 fen, then the 49th and 50th; the 51st is refused.
    for index in 0..48 {
        world
            .refund(shop, &order, &format!("small-{index}"), 1)
            .unwrap();
    }
    let last = world.refund(shop, &order, "r-50", 6_667 - 48).unwrap();
    assert_eq!(last.state, "SUCCESS");
    assert!(matches!(
        world.refund(shop, &order, "r-51", 1),
        Err(OrderError::RefundsTooMany)
    ));
    let refunds = world
        .orders
        .refunds_of_order(&world.people, order.id)
        .unwrap();
    assert_eq!(refunds.len(), 50);
    assert_eq!(refunds.iter().map(|r| r.fee_minor).sum::<u64>(), 60);
    assert_eq!(world.balance(wallet_account_id(payer)), 100_000);
    assert_eq!(world.balance(merchant_account_id(shop.get())), 0);
    assert_eq!(world.balance(AccountId::new(FEE_INCOME).unwrap()), 0);
    world.conserved();
}

/// The process stops between a payment's chain and its row: the order says `NOTPAY` over
/// money the merchant holds. The recovery pass records the payment from the ledger, with its
/// payer, fee and commission, once; an order nobody paid stays unpaid.
#[test]
fn a_payment_cut_short_by_a_crash_is_recorded_from_the_ledger_once() {
    let world = World::new();
    let provider = world.provider();
    let shop = world.merchant("Noodle bar", Some(provider));
    let payer = world.payer("13800000001", 100_000);
    let order = world.native(shop, "order-1", 12_345);
    let unpaid = world.native(shop, "order-2", 500);
    world.pay(payer, &order, "pay-1", START_MS + 1_000).unwrap();
    // The row as it was before the payment wrote it.
    let before = order.clone();
    assert!(
        world
            .people
            .db()
            .write_plain(move |s| s.order_update(&before, "SUCCESS"))
            .unwrap()
    );
    let pass = |now_ms: i64| {
        let lookback = START_MS - recovery::STARTUP_LOOKBACK_MS..i64::MAX;
        world.recovery_pass(lookback, recovery::PASS_ORDERS_MAX, now_ms, now_ms)
    };
    // A pass that stops at its limit says where to resume.
    let capped = world.recovery_pass(START_MS..i64::MAX, 0, START_MS, START_MS + 5_000);
    assert_eq!(capped.orders_resume_ms, Some(order.expires_ms));
    assert!(!capped.orders_done());
    let first = pass(START_MS + 5_000);
    assert_eq!((first.orders_looked_at, first.payments_recorded), (2, 1));
    assert!(first.orders_done());
    let recovered = world.orders.order(&world.people, order.id).unwrap();
    assert_eq!(
        (
            recovered.state.as_str(),
            recovered.payer_id,
            recovered.fee_minor,
            recovered.commission_minor,
            recovered.pin_confirmed
        ),
        ("SUCCESS", Some(payer), 74, 14, true)
    );
    assert!(recovered.paid_ms.is_some_and(|ms| ms <= START_MS + 5_000));
    let still_unpaid = world.orders.order(&world.people, unpaid.id).unwrap();
    assert_eq!(still_unpaid.state, "NOTPAY");
    // Nothing moved twice; another pass finds nothing; the order cannot be paid again.
    assert_eq!(pass(START_MS + 6_000).payments_recorded, 0);
    let late = world.payer("13800000002", 100_000);
    assert!(matches!(
        world.pay(late, &order, "pay-2", START_MS + 7_000),
        Err(OrderError::OrderPaid)
    ));
    assert_eq!(world.balance(wallet_account_id(payer)), 100_000 - 12_345);
    assert_eq!(world.balance(merchant_account_id(shop.get())), 12_345 - 74);
    assert_eq!(world.balance(commission_account_id(provider.get())), 14);
    // The recorded payment is refundable like any other.
    world.refund(shop, &order, "r-1", 12_345).unwrap();
    assert_eq!(world.balance(wallet_account_id(payer)), 100_000);
    world.conserved();
}

#[test]
fn an_order_whose_payment_could_not_be_recorded_is_paid_by_nobody_else() {
    let world = World::new();
    let shop = world.merchant("Noodle bar", None);
    let first = world.payer("13800000001", 100_000);
    let second = world.payer("13800000002", 100_000);
    let order = world.native(shop, "order-1", 12_345);
    // The wallet store refuses to mark the order paid (a failing disk, say) after the ledger
    // moved the money, and the process goes on.
    let wallet = rusqlite::Connection::open(world._directory.path().join("wallet.sqlite")).unwrap();
    wallet
        .execute_batch(
            "CREATE TRIGGER refuse_paid BEFORE UPDATE ON merchant_orders \
             WHEN NEW.state = 'SUCCESS' BEGIN SELECT RAISE(ABORT, 'disk trouble'); END;",
        )
        .unwrap();
    assert!(world.pay(first, &order, "pay-1", START_MS + 1_000).is_err());
    assert_eq!(world.balance(wallet_account_id(first)), 100_000 - 12_345);
    let stored = world.orders.order(&world.people, order.id).unwrap();
    assert_eq!(stored.state, "NOTPAY", "the money moved, the row did not");
    for (payer, key) in [(second, "pay-2"), (first, "pay-3"), (first, "pay-1")] {
        assert!(
            matches!(
                world.pay(payer, &order, key, START_MS + 2_000),
                Err(OrderError::PaymentUnrecorded)
            ),
            "nobody pays it again meanwhile: {key}"
        );
    }
    let pass = |now_ms: i64| {
        world.recovery_pass(
            START_MS..i64::MAX,
            recovery::PASS_ORDERS_MAX,
            now_ms,
            now_ms,
        )
    };
    assert_eq!(pass(START_MS + 3_000).payments_recorded, 0, "still failing");
    assert!(matches!(
        world.pay(second, &order, "pay-4", START_MS + 3_000),
        Err(OrderError::PaymentUnrecorded)
    ));
    wallet.execute_batch("DROP TRIGGER refuse_paid").unwrap();
    assert_eq!(pass(START_MS + 4_000).payments_recorded, 1);
    let recorded = world.orders.order(&world.people, order.id).unwrap();
    assert_eq!(
        (recorded.state.as_str(), recorded.payer_id),
        ("SUCCESS", Some(first))
    );
    assert!(matches!(
        world.pay(second, &order, "pay-5", START_MS + 5_000),
        Err(OrderError::OrderPaid)
    ));
    assert_eq!(pass(START_MS + 6_000).payments_recorded, 0, "once");
    assert_eq!(world.balance(wallet_account_id(first)), 100_000 - 12_345);
    assert_eq!(world.balance(wallet_account_id(second)), 100_000);
    assert_eq!(world.balance(merchant_account_id(shop.get())), 12_345 - 74);
    world.conserved();
}

/// A counter for the draws a test does not care about (a pay code's digits).
struct Counting(u64);

impl crate::Random for Counting {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 += 1;
        self.0 % bound
    }

    fn fill(&mut self, bytes: &mut [u8]) {
        bytes.fill(self.0 as u8);
    }
}

/// A pay-code payment whose row was never written, and the merchant, not knowing the
/// outcome, reverses the order: the reversal asks the ledger first, so the payer gets the
/// money back and the order ends `REVOKED` with the payment and its refund on record.
#[test]
fn reversing_an_order_whose_payment_row_was_lost_refunds_the_payment() {
    use crate::wallet::pay_codes::{PayCodePolicy, PayCodes};
    let world = World::new();
    let shop = world.merchant("Noodle bar", None);
    let payer = world.payer("13800000001", 100_000);
    let codes = PayCodes::new(&[9; 32], PayCodePolicy::default());
    let code = codes
        .issue(&world.people, payer, &mut Counting(0), START_MS)
        .unwrap()
        .code;
    let new_order = NewOrder {
        out_trade_no: "P1".into(),
        kind: OrderKind::PayCode,
        amount_minor: 2_500,
        description: "Coffee".into(),
    };
    let paid = world
        .orders
        .pay_code_order(
            &world.people,
            &world.engine,
            &LimitPolicy::default(),
            &codes,
            shop,
            &new_order,
            &code,
            START_MS + 1_000,
        )
        .unwrap();
    assert_eq!(paid.state, "SUCCESS");
    // The row as it was before the payment wrote it.
    let mut before = paid.clone();
    before.state = "NOTPAY".into();
    before.fee_minor = 0;
    before.paid_ms = None;
    assert!(
        world
            .people
            .db()
            .write_plain(move |s| s.order_update(&before, "SUCCESS"))
            .unwrap()
    );
    let mut ledger = world.config.open().unwrap();
    let reversed = world
        .orders
        .reverse(
            &world.people,
            &world.engine,
            ledger.as_mut(),
            shop,
            "P1",
            START_MS + 2_000,
        )
        .unwrap();
    assert_eq!(
        (reversed.state.as_str(), reversed.refunded_minor),
        ("REVOKED", 2_500)
    );
    assert_eq!(world.balance(wallet_account_id(payer)), 100_000);
    assert_eq!(world.balance(merchant_account_id(shop.get())), 0);
    world.conserved();
}

/// The process stops after a refund's row and before its chain: the refund is `PROCESSING`.
/// New refunds count it; the recovery pass or the merchant's retry finishes it, moving the
/// money once; one the ledger refuses is forgotten, its number free again.
#[test]
fn a_refund_cut_short_is_finished_once_or_forgotten_when_the_ledger_refuses_it() {
    let world = World::new();
    let shop = world.merchant("Noodle bar", None);
    let payer = world.payer("13800000001", 100_000);
    let order = world.native(shop, "order-1", 10_000);
    world.pay(payer, &order, "pay-1", START_MS).unwrap();
    let processing = |no: &str, amount_minor: u64, fee_minor: u64| {
        let row = RefundRow {
            id: 0,
            order_id: order.id,
            merchant_id: shop.get(),
            out_refund_no: no.into(),
            amount_minor,
            fee_minor,
            commission_minor: 0,
            reason: None,
            state: "PROCESSING".into(),
            created_ms: START_MS + 10_000,
            finished_ms: None,
        };
        world
            .people
            .db()
            .write_plain(move |s| s.refund_insert(&row))
            .unwrap()
    };
    processing("r-1", 4_000, 24);
    // What is left counts the refund in flight.
    assert!(matches!(
        world.refund(shop, &order, "r-2", 6_001),
        Err(OrderError::RefundExceedsPaid { left_minor: 6_000 })
    ));
    let pass = world.recovery_pass(
        0..0,
        recovery::PASS_ORDERS_MAX,
        START_MS + 10_000,
        START_MS + 20_000,
    );
    assert_eq!(pass.refunds_finished, 1);
    let after_one = (
        world.balance(wallet_account_id(payer)),
        world.balance(merchant_account_id(shop.get())),
    );
    assert_eq!(after_one, (94_000, 10_000 - 60 - 4_000 + 24));
    let refunded = world.orders.order(&world.people, order.id).unwrap();
    assert_eq!(
        (
            refunded.state.as_str(),
            refunded.refunded_minor,
            refunded.refund_count
        ),
        ("REFUND", 4_000, 1)
    );
    // It succeeded when the pass finished it, not when it was asked for: that is the day
    // its bill counts it in.
    let finished = world
        .people
        .db()
        .read(|s| s.refund_by_out_refund_no(shop.get(), "r-1"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (finished.created_ms, finished.success_ms()),
        (START_MS + 10_000, Some(START_MS + 20_000))
    );
    let day = |from_ms: i64, to_ms: i64| {
        world
            .orders
            .refunds_between(&world.people, shop, (from_ms, to_ms), 0, 10)
            .unwrap()
            .len()
    };
    assert_eq!(
        (
            day(START_MS, START_MS + 20_000),
            day(START_MS + 20_000, START_MS + 20_001)
        ),
        (0, 1)
    );
    // The merchant's retry is answered with the finished refund; nothing moves again.
    assert_eq!(
        world.refund(shop, &order, "r-1", 4_000).unwrap().state,
        "SUCCESS"
    );
    assert_eq!(
        (
            world.balance(wallet_account_id(payer)),
            world.balance(merchant_account_id(shop.get()))
        ),
        after_one
    );

    // The merchant's account is emptied (a payout, say); a refund in flight now cannot be
    // paid: its retry is refused and the refund is gone.
    let payout = NewTransfer {
        id: TransferId::new(77).unwrap(),
        op: TransferOp::Posted {
            debit_account_id: merchant_account_id(shop.get()),
            credit_account_id: AccountId::new(BANK_SETTLEMENT).unwrap(),
            amount_minor: 5_000,
        },
        code: 13,
        reference: None,
        linked: false,
    };
    world.engine.create_transfers(vec![payout]).unwrap();
    processing("r-3", 6_000, 36);
    assert!(matches!(
        world.refund(shop, &order, "r-3", 6_000),
        Err(OrderError::MerchantBalanceShort)
    ));
    let gone = world
        .people
        .db()
        .read(|s| s.refund_by_out_refund_no(shop.get(), "r-3"))
        .unwrap();
    assert_eq!(gone, None);
    assert_eq!(world.balance(wallet_account_id(payer)), 94_000);
    world.conserved();
}

#[test]
fn expired_and_closed_orders_cannot_be_paid_and_paid_ones_cannot_be_closed() {
    let world = World::new();
    let shop = world.merchant("Noodle bar", None);
    let payer = world.payer("13800000001", 100_000);
    let order = world.native(shop, "order-1", 100);
    let expiry = order.expires_ms;
    assert_eq!(expiry - START_MS, 2 * 3_600_000);
    assert!(matches!(
        world.pay(payer, &order, "k1", expiry),
        Err(OrderError::OrderClosed)
    ));
    assert_eq!(orders::shown_state(&order, expiry), "CLOSED");
    let paid = world.pay(payer, &order, "k2", expiry - 1).unwrap();
    assert_eq!(paid.state, "SUCCESS");
    assert!(matches!(
        world.orders.close(&world.people, shop, "order-1", expiry),
        Err(OrderError::OrderPaid)
    ));
    let other = world.native(shop, "order-2", 100);
    world
        .orders
        .close(&world.people, shop, "order-2", START_MS)
        .unwrap();
    assert!(matches!(
        world.pay(payer, &other, "k3", START_MS),
        Err(OrderError::OrderClosed)
    ));
    // Not enough balance: nothing moves, the order stays payable.
    let big = world.native(shop, "order-3", 99_999);
    let poor = world.payer("13800000002", 10);
    assert!(matches!(
        world.pay(poor, &big, "k4", START_MS),
        Err(OrderError::NotEnoughBalance)
    ));
    assert_eq!(world.balance(wallet_account_id(poor)), 10);
    world.conserved();
}

#[test]
fn a_notification_that_fails_three_times_follows_the_schedule_and_stops_when_acknowledged() {
    let world = World::new();
    let shop = world.merchant("Noodle bar", None);
    let payer = world.payer("13800000001", 100_000);
    let order = world.native(shop, "order-1", 100);
    world.pay(payer, &order, "k", START_MS).unwrap();
    let mut now_ms = START_MS;
    let mut event_ids = Vec::new();
    // The endpoint fails the first three deliveries and takes the fourth.
    for (attempt, expected_wait_ms) in [(1, 0), (2, 15_000), (3, 15_000), (4, 30_000)] {
        // Not due a millisecond early.
        if expected_wait_ms > 0 {
            assert!(
                notifications::due(&world.people, now_ms + expected_wait_ms - 1, 10)
                    .unwrap()
                    .is_empty()
            );
        }
        now_ms += expected_wait_ms;
        let due = notifications::due(&world.people, now_ms, 10).unwrap();
        assert_eq!(due.len(), 1, "attempt {attempt}");
        event_ids.push(due[0].notification.event_id.clone());
        let acknowledged = attempt == 4;
        let next = notifications::record_attempt(
            &world.people,
            &due[0].notification,
            if acknowledged { "200" } else { "500" },
            acknowledged,
            now_ms,
        )
        .unwrap();
        assert_eq!(next.is_none(), acknowledged);
    }
    assert!(
        event_ids.iter().all(|id| *id == event_ids[0]),
        "one event id throughout"
    );
    assert!(
        notifications::due(&world.people, now_ms + 86_400_000, 10)
            .unwrap()
            .is_empty()
    );
    let log = notifications::log(&world.people, shop, i64::MAX, 10).unwrap();
    let outcomes: Vec<&str> = log[0].1.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["500", "500", "500", "200"]);
    assert!(log[0].0.delivered_ms.is_some());
    // A resend makes it due again; delivering it again is the merchant's dedupe's business.
    assert!(notifications::resend(&world.people, shop, log[0].0.id, now_ms).unwrap());
    assert_eq!(
        notifications::due(&world.people, now_ms, 10).unwrap().len(),
        1
    );
    let stranger = world.merchant("Other", None);
    assert!(!notifications::resend(&world.people, stranger, log[0].0.id, now_ms).unwrap());
}

#[test]
fn settlement_pays_what_was_settled_by_the_cut_off_once_even_when_the_bank_is_lost() {
    use super::settlement;
    use crate::bank::{BankMode, Holder, SimulatedBank};
    use crate::wallet::identity::{CardNumber, IdNumber, Phone, make};
    let world = World::new();
    let bank = SimulatedBank::new(&[3; 32]);
    let shop = world.merchant("Noodle bar", None);
    let payer = world.payer("13800000001", 100_000);
    let id = IdNumber::parse(&make::id_number("11010519491231002")).unwrap();
    let phone = Phone::parse("13900000009").unwrap();
    let holder = Holder {
        name: "王五",
        id_number: &id,
        phone: &phone,
    };
    let card_number = CardNumber::parse(&make::card_number("622202555566667777")).unwrap();
    let card = settlement::set_card(&world.people, &bank, shop, &card_number, &holder).unwrap();
    assert!(
        !format!("{card:?}").contains(&card.token),
        "Debug hides the token"
    );
    let card_start = bank.balance_minor(&card.token).unwrap();

    // Day D-1: one payment of 123.45 (fee 0.74). Day D, after the cut-off: another of 1.00.
    let order = world.native(shop, "o-1", 12_345);
    world.pay(payer, &order, "k1", START_MS).unwrap();
    let cutoff_ms = crate::time::shanghai_day_start_ms(START_MS) + 86_400_000;
    world
        .clock
        .advance_ms((cutoff_ms - START_MS + 1_000) as u64);
    let late = NewOrder {
        out_trade_no: "o-2".into(),
        kind: OrderKind::Native,
        amount_minor: 100,
        description: "Tea".into(),
    };
    let late = world
        .orders
        .create(&world.people, shop, &late, cutoff_ms)
        .unwrap();
    world.pay(payer, &late, "k2", cutoff_ms + 1_000).unwrap();
    let mut ledger = world.config.open().unwrap();

    // The bank takes the payout but its answer is lost: PROCESSING, money held.
    bank.set_mode(BankMode::TimeoutAfterWork);
    let report = settlement::run(
        &world.people,
        &world.engine,
        ledger.as_mut(),
        &bank,
        cutoff_ms,
        cutoff_ms + 2_000,
    )
    .unwrap();
    assert_eq!(report.settlements.len(), 1);
    assert_eq!(report.settlements[0].state, "PROCESSING");
    assert_eq!(report.settlements[0].amount_minor, 12_345 - 74);
    // The next run asks the bank: paid, once.
    bank.set_mode(BankMode::Normal);
    let report = settlement::run(
        &world.people,
        &world.engine,
        ledger.as_mut(),
        &bank,
        cutoff_ms,
        cutoff_ms + 3_000,
    )
    .unwrap();
    assert_eq!(report.settlements[0].state, "SUCCESS");
    assert_eq!(
        bank.balance_minor(&card.token),
        Some(card_start + 12_345 - 74)
    );
    // Again: nothing more.
    settlement::run(
        &world.people,
        &world.engine,
        ledger.as_mut(),
        &bank,
        cutoff_ms,
        cutoff_ms + 4_000,
    )
    .unwrap();
    assert_eq!(
        bank.balance_minor(&card.token),
        Some(card_start + 12_345 - 74)
    );
    // Today's 1.00 (net 0.99... fee of 1.00 at 0.6 % is 1 fen) waits for tomorrow's run.
    assert_eq!(world.balance(merchant_account_id(shop.get())), 100 - 1);
    let tomorrow = cutoff_ms + 86_400_000;
    world.clock.advance_ms(86_400_000);
    let report = settlement::run(
        &world.people,
        &world.engine,
        ledger.as_mut(),
        &bank,
        tomorrow,
        tomorrow + 1,
    )
    .unwrap();
    assert_eq!(report.settlements[0].amount_minor, 99);
    assert_eq!(world.balance(merchant_account_id(shop.get())), 0);
    let history = settlement::of_merchant(&world.people, shop, 10).unwrap();
    assert_eq!(history.len(), 2);
    world.conserved();
}

//! The wallet's rules at their edges, and the red packet split as a property.

use super::fees::WithdrawalPolicy;
use super::identity::{CardNumber, IdNumber, IdentityError, Phone, make};
use super::limits::{BalanceUsage, LimitError, LimitPolicy, RealNameClass};
use super::pin::{LockoutPolicy, Pin, PinAttempts, PinError, PinHasher};
use super::red_packet::{RedPacketError, RedPacketKind, RedPacketPolicy};
use crate::Random;
use proptest::prelude::*;

/// A seeded generator (SplitMix64) for reproducible draws.
struct Seeded(u64);

impl Random for Seeded {
    fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % bound
    }

    fn fill(&mut self, bytes: &mut [u8]) {
        for byte in bytes {
            *byte = self.below(256) as u8;
        }
    }
}

#[test]
fn id_numbers_follow_gb_11643() {
    // The standard's own example, with the check character X, in either case.
    let id = IdNumber::parse("11010519491231002X").unwrap();
    assert_eq!(id.birth_date(), (1949, 12, 31));
    assert_eq!(IdNumber::parse("11010519491231002x").unwrap(), id);
    assert_eq!(
        IdNumber::parse("110105194912310021"),
        Err(IdentityError::IdNumberCheckDigit)
    );
    let leap_day = make::id_number("11010520000229123");
    assert!(IdNumber::parse(&leap_day).is_ok());
    for (text, error) in [
        (
            make::id_number("11010519000229123"),
            IdentityError::IdNumberBirthDate,
        ),
        (
            make::id_number("11010519491331123"),
            IdentityError::IdNumberBirthDate,
        ),
        (
            make::id_number("11010519490431123"),
            IdentityError::IdNumberBirthDate,
        ),
        ("1101051949123100".to_owned(), IdentityError::IdNumberFormat),
        (
            "01010519491231002X".to_owned(),
            IdentityError::IdNumberFormat,
        ),
        (
            "11010519491231002Y".to_owned(),
            IdentityError::IdNumberFormat,
        ),
        (
            "１１010519491231002X".to_owned(),
            IdentityError::IdNumberFormat,
        ),
    ] {
        assert_eq!(IdNumber::parse(&text), Err(error), "{text}");
    }
}

#[test]
fn card_numbers_pass_luhn_and_show_only_their_last_four() {
    let card = CardNumber::parse("4111 1111 1111 1111").unwrap();
    assert_eq!(card.last_four(), "1111");
    assert_eq!(
        CardNumber::parse("4111111111111112"),
        Err(IdentityError::CardNumberChecksum)
    );
    assert_eq!(
        CardNumber::parse("41111"),
        Err(IdentityError::CardNumberFormat)
    );
    let unionpay = make::card_number("622202123456789012");
    assert_eq!(unionpay.len(), 19);
    assert!(CardNumber::parse(&unionpay).is_ok());
}

#[test]
fn phones_are_mainland_mobiles() {
    let phone = Phone::parse("+86 138 1234 5678").unwrap();
    assert_eq!(phone.reveal(), "13812345678");
    assert_eq!(phone.masked(), "138****5678");
    for text in [
        "12812345678",
        "1381234567",
        "138123456789",
        "+1 138 1234 5678",
        "1381234567a",
    ] {
        assert_eq!(
            Phone::parse(text),
            Err(IdentityError::PhoneInvalid),
            "{text}"
        );
    }
}

#[test]
fn debug_output_never_shows_a_whole_number() {
    let id = IdNumber::parse("11010519491231002X").unwrap();
    let card = CardNumber::parse(&make::card_number("622202123456789012")).unwrap();
    let phone = Phone::parse("13812345678").unwrap();
    let pin = Pin::parse("802514").unwrap();
    let shown = format!(
        "{id:?} {card:?} {phone:?} {pin:?} {}",
        PinHasher::new(&[7; 32]).hash(&pin, b"s").len()
    );
    for secret in [
        id.reveal(),
        card.reveal(),
        phone.reveal(),
        "802514",
        "1949123100",
    ] {
        assert!(!shown.contains(secret), "{shown} shows {secret}");
    }
}

#[test]
fn trivial_pins_and_the_password_are_refused() {
    for trivial in [
        "111111", "123456", "654321", "012345", "121212", "123123", "909090",
    ] {
        assert_eq!(
            Pin::parse_new(trivial, "pw"),
            Err(PinError::Trivial),
            "{trivial}"
        );
    }
    for malformed in ["12345", "1234567", "12345a", "１２３４５６", ""] {
        assert_eq!(
            Pin::parse_new(malformed, "pw"),
            Err(PinError::Format),
            "{malformed}"
        );
    }
    assert_eq!(
        Pin::parse_new("802514", "802514"),
        Err(PinError::EqualsPassword)
    );
    assert!(Pin::parse_new("802514", "correct horse").is_ok());
}

#[test]
fn pin_hash_checks_the_pin_the_salt_and_the_key() {
    let hasher = PinHasher::new(&[1; 32]);
    let pin = Pin::parse("802514").unwrap();
    let hash = hasher.hash(&pin, b"salt-of-user-1");
    assert!(hasher.matches(&pin, b"salt-of-user-1", &hash));
    assert!(!hasher.matches(&Pin::parse("802515").unwrap(), b"salt-of-user-1", &hash));
    assert!(!hasher.matches(&pin, b"salt-of-user-2", &hash));
    assert!(!PinHasher::new(&[2; 32]).matches(&pin, b"salt-of-user-1", &hash));
    assert!(!hasher.matches(&pin, b"salt-of-user-1", &hash[..31]));
}

#[test]
fn lockout_escalates_and_resets_on_success() {
    const MINUTE: i64 = 60_000;
    let policy = LockoutPolicy::default();
    let expected_minutes = [0, 0, 0, 0, 5, 10, 30, 60, 24 * 60, 48 * 60, 72 * 60];
    let mut attempts = PinAttempts::default();
    let mut now_ms = 1_000_000;
    for (failure, minutes) in expected_minutes.iter().enumerate() {
        assert_eq!(
            attempts.check_unlocked(now_ms),
            Ok(()),
            "before failure {}",
            failure + 1
        );
        attempts = attempts.after_failure(now_ms, &policy);
        assert_eq!(attempts.failures, failure as u32 + 1);
        match minutes {
            0 => assert_eq!(attempts.locked_until_ms, None),
            _ => {
                let until_ms = now_ms + minutes * MINUTE;
                assert_eq!(attempts.locked_until_ms, Some(until_ms));
                assert_eq!(
                    attempts.check_unlocked(until_ms - 1),
                    Err(PinError::Locked { until_ms })
                );
                now_ms = until_ms;
            }
        }
    }
    assert_eq!(attempts.after_success(), PinAttempts::default());
}

#[test]
fn class_limits_hold_at_their_edges() {
    let policy = LimitPolicy::default();
    let used = BalanceUsage {
        since_opening_minor: 90_000,
        this_year_minor: 90_000,
        today_minor: 0,
    };
    // Class I: 1,000.00 yuan in all, so 100.00 more is exactly the limit and 100.01 is over.
    assert_eq!(
        policy.check_balance_payment(RealNameClass::ClassI, 1, used, 10_000),
        Ok(())
    );
    assert_eq!(
        policy.check_balance_payment(RealNameClass::ClassI, 1, used, 10_001),
        Err(LimitError::ClassICumulative { left_minor: 10_000 })
    );
    // Daily caps by factors: 1,000 yuan with one factor, 5,000 with two.
    let fresh = BalanceUsage::default();
    assert_eq!(
        policy.check_balance_payment(RealNameClass::ClassII, 1, fresh, 100_001),
        Err(LimitError::Daily {
            left_minor: 100_000
        })
    );
    assert_eq!(
        policy.check_balance_payment(RealNameClass::ClassII, 2, fresh, 500_000),
        Ok(())
    );
    let late_in_year = BalanceUsage {
        since_opening_minor: 0,
        this_year_minor: 9_999_999,
        today_minor: 0,
    };
    assert_eq!(
        policy.check_balance_payment(RealNameClass::ClassII, 2, late_in_year, 2),
        Err(LimitError::Yearly { left_minor: 1 })
    );
    assert_eq!(
        policy.check_balance_payment(RealNameClass::ClassIII, 2, late_in_year, 2),
        Ok(())
    );
    assert!(!RealNameClass::Unverified.can_receive());
    assert!(RealNameClass::ClassI.can_receive());
}

#[test]
fn withdrawal_fee_uses_the_free_quota_first() {
    let policy = WithdrawalPolicy::default();
    // Inside the quota: free.
    let quote = policy.quote(50_000, 0);
    assert_eq!(
        (quote.fee_minor, quote.free_quota_left_after_minor),
        (0, 50_000)
    );
    // Uses the last 100 yuan of the quota; 400 yuan charged at 0.1 % = 0.40 yuan.
    let quote = policy.quote(50_000, 90_000);
    assert_eq!(
        (
            quote.free_minor,
            quote.charged_minor,
            quote.fee_minor,
            quote.debit_minor
        ),
        (10_000, 40_000, 40, 50_040)
    );
    assert_eq!(quote.free_quota_left_after_minor, 0);
    // Small amounts pay the minimum of 0.10 yuan; half a fen rounds up.
    assert_eq!(policy.quote(1, 100_000).fee_minor, 10);
    assert_eq!(policy.quote(12_350, 100_000).fee_minor, 12);
    assert_eq!(policy.quote(12_550, 100_000).fee_minor, 13);
    // No overflow near the top of the range.
    assert_eq!(policy.quote(u64::MAX, 100_000).debit_minor, u64::MAX);
}

#[test]
fn red_packets_refuse_what_cannot_be_split() {
    let policy = RedPacketPolicy::default();
    let mut random = Seeded(1);
    for (kind, shares, error) in [
        (
            RedPacketKind::Lucky { total_minor: 100 },
            0,
            "RED_PACKET_SHARES",
        ),
        (
            RedPacketKind::Lucky { total_minor: 100 },
            101,
            "RED_PACKET_SHARES",
        ),
        (
            RedPacketKind::Lucky {
                total_minor: 20_001,
            },
            10,
            "RED_PACKET_TOO_LARGE",
        ),
        (
            RedPacketKind::Lucky { total_minor: 9 },
            10,
            "RED_PACKET_SHARE_TOO_SMALL",
        ),
        (
            RedPacketKind::Normal { share_minor: 0 },
            10,
            "RED_PACKET_SHARE_TOO_SMALL",
        ),
        (
            RedPacketKind::Normal {
                share_minor: u64::MAX,
            },
            2,
            "RED_PACKET_TOO_LARGE",
        ),
    ] {
        let refused: RedPacketError = policy.split(kind, shares, &mut random).unwrap_err();
        assert_eq!(refused.code(), error, "{kind:?} x{shares}");
    }
    assert_eq!(
        policy.split(RedPacketKind::Normal { share_minor: 888 }, 3, &mut random),
        Ok(vec![888; 3])
    );
    assert_eq!(
        policy.split(RedPacketKind::Lucky { total_minor: 5 }, 5, &mut random),
        Ok(vec![1; 5])
    );
}

proptest! {
    #[test]
    fn lucky_split_keeps_every_fen(total_minor in 1u64..=20_000, shares in 1u32..=100, seed: u64) {
        prop_assume!(total_minor >= u64::from(shares));
        let split = RedPacketPolicy::default()
            .split(RedPacketKind::Lucky { total_minor }, shares, &mut Seeded(seed))
            .unwrap();
        prop_assert_eq!(split.len(), shares as usize);
        prop_assert_eq!(split.iter().sum::<u64>(), total_minor);
        prop_assert!(split.iter().all(|&share| share >= 1));
        // Every draw but the last stays within twice the mean of what was left.
        let mut left = total_minor;
        for (index, &share) in split.iter().enumerate().take(split.len() - 1) {
            let shares_left = u64::from(shares) - index as u64;
            prop_assert!(share <= (2 * left / shares_left).max(1), "draw {} of {}", index, shares);
            left -= share;
        }
    }

    #[test]
    fn parsers_refuse_without_panicking(text in "\\PC{0,24}") {
        let _ = IdNumber::parse(&text);
        let _ = CardNumber::parse(&text);
        let _ = Phone::parse(&text);
        let _ = Pin::parse_new(&text, "password");
    }
}

mod people {
    use super::Seeded;
    use crate::wallet::identity::Phone;
    use crate::wallet::people::{People, PeopleError};
    use crate::wallet::pin::PinError;
    use zhifu_store::StoreConfig;

    const HOUR_MS: i64 = 3_600_000;

    fn people(directory: &tempfile::TempDir) -> People {
        let config = StoreConfig::Sqlite {
            path: directory.path().join("ledger.sqlite"),
        };
        People::open(&config, &[9; 32], HOUR_MS).unwrap()
    }

    #[test]
    fn sign_up_log_in_use_and_end_a_session() {
        let directory = tempfile::tempdir().unwrap();
        let people = people(&directory);
        let phone = Phone::parse("13812345678").unwrap();
        let person = people.sign_up(&phone, "correct horse", 1_000).unwrap();
        assert_eq!(person.phone_masked, "138****5678");
        assert!(matches!(
            people.sign_up(&phone, "another password", 2_000),
            Err(PeopleError::PhoneTaken)
        ));
        let other = Phone::parse("13900000000").unwrap();
        assert!(matches!(
            people.sign_up(&other, "short", 2_000),
            Err(PeopleError::PasswordTooShort)
        ));
        assert!(matches!(
            people.sign_up(&other, &"x".repeat(129), 2_000),
            Err(PeopleError::PasswordTooLong)
        ));

        let mut random = Seeded(5);
        // A wrong password and an unknown phone get the same answer.
        for (phone, password) in [(&phone, "wrong horse"), (&other, "correct horse")] {
            let refused = people
                .log_in(phone, password, 3_000, &mut random)
                .unwrap_err();
            assert_eq!(refused.code(), "CREDENTIALS_WRONG");
        }
        let session = people
            .log_in(&phone, "correct horse", 3_000, &mut random)
            .unwrap();
        assert!(!format!("{session:?}").contains(&session.token));
        assert_eq!(session.expires_ms, 3_000 + HOUR_MS);
        assert_eq!(
            people.session_person(&session.token, 4_000).unwrap(),
            person
        );

        // A restart keeps sessions: they are stored, not in memory.
        drop(people);
        let people = self::people(&directory);
        assert_eq!(
            people.session_person(&session.token, 4_000).unwrap(),
            person
        );
        for token in [
            "",
            "zz",
            &"g".repeat(64),
            &session.token.to_uppercase()[..63],
        ] {
            assert!(matches!(
                people.session_person(token, 4_000),
                Err(PeopleError::SessionInvalid)
            ));
        }
        assert!(matches!(
            people.session_person(&session.token, session.expires_ms),
            Err(PeopleError::SessionInvalid)
        ));
        people.log_out(&session.token).unwrap();
        assert!(matches!(
            people.log_out(&session.token),
            Err(PeopleError::SessionInvalid)
        ));
        // The payment PIN: needs the login password, refuses trivial ones, locks out.
        let id = person.user_id;
        assert!(matches!(
            people.check_pin(id, "802514", 5_000),
            Err(PeopleError::PinNotSet)
        ));
        assert!(matches!(
            people.set_pin(id, "wrong horse", "802514", &mut random),
            Err(PeopleError::PasswordWrong)
        ));
        assert_eq!(
            people
                .set_pin(id, "correct horse", "123456", &mut random)
                .unwrap_err()
                .code(),
            "PIN_TRIVIAL"
        );
        people
            .set_pin(id, "correct horse", "802514", &mut random)
            .unwrap();
        people.check_pin(id, "802514", 5_000).unwrap();
        let now_ms = 5_000;
        for failure in 1..=4 {
            let refused = people.check_pin(id, "000001", now_ms).unwrap_err();
            assert!(
                matches!(refused, PeopleError::Pin(PinError::Wrong { failures }) if failures == failure)
            );
        }
        assert!(
            people.check_pin(id, "not a pin", now_ms).is_err(),
            "a malformed PIN is a failure"
        );
        // Five in a row: locked for five minutes, even for the right PIN, even after a restart.
        drop(people);
        let people = self::people(&directory);
        assert!(matches!(
            people.check_pin(id, "802514", now_ms + 60_000),
            Err(PeopleError::Pin(PinError::Locked { until_ms })) if until_ms == now_ms + 300_000
        ));
        people.check_pin(id, "802514", now_ms + 300_000).unwrap();
        // Success reset the count: one more failure does not lock.
        assert!(matches!(
            people.check_pin(id, "000001", now_ms + 300_001),
            Err(PeopleError::Pin(PinError::Wrong { failures: 1 }))
        ));

        assert!(matches!(
            people.session_person(&session.token, 4_000),
            Err(PeopleError::SessionInvalid)
        ));
    }
}

mod quota {
    use crate::wallet::fees::WithdrawalPolicy;
    use crate::wallet::identity::{IdNumber, Phone};
    use crate::wallet::people::People;
    use zhifu_store::StoreConfig;

    #[test]
    fn two_accounts_of_one_person_share_the_free_quota() {
        let directory = tempfile::tempdir().unwrap();
        let config = StoreConfig::Sqlite {
            path: directory.path().join("ledger.sqlite"),
        };
        let people = People::open(&config, &[9; 32], 1_000).unwrap();
        let id = IdNumber::parse("11010519491231002X").unwrap();
        let mut users = Vec::new();
        for phone in ["13812345678", "13912345678"] {
            let phone = Phone::parse(phone).unwrap();
            let person = people.sign_up(&phone, "correct horse", 0).unwrap();
            people
                .verify_identity(person.user_id, "张三", &id, 0)
                .unwrap();
            users.push(person.user_id);
        }
        let policy = WithdrawalPolicy::default();
        let first = people
            .quote_withdrawal(users[0], "w1", 60_000, &policy)
            .unwrap();
        assert_eq!((first.free_minor, first.fee_minor), (60_000, 0));
        // The other account: 400.00 free left, 200.00 charged at 0.1 % = 0.20 yuan.
        let second = people
            .quote_withdrawal(users[1], "w1", 60_000, &policy)
            .unwrap();
        assert_eq!(
            (second.free_minor, second.charged_minor, second.fee_minor),
            (40_000, 20_000, 20)
        );
        assert_eq!(second.free_quota_left_after_minor, 0);
        // A retry gets the same quote; a failed withdrawal gives its share back.
        assert_eq!(
            people
                .quote_withdrawal(users[1], "w1", 60_000, &policy)
                .unwrap(),
            second
        );
        people.release_withdrawal_quota(users[0], "w1").unwrap();
        let third = people
            .quote_withdrawal(users[0], "w2", 60_000, &policy)
            .unwrap();
        assert_eq!(third.free_minor, 60_000);
    }
}

mod funding {
    use crate::bank::{Bank, BankMode, Holder, SIMULATED_CARD_BALANCE_MINOR, SimulatedBank};
    use crate::wallet::chart::{institution_accounts, wallet_account, wallet_account_id};
    use crate::wallet::funding::{FundingError, IdempotencyKey, TOP_UP_MAX_MINOR, top_up};
    use crate::wallet::identity::{CardNumber, IdNumber, Phone, make};
    use std::sync::Arc;
    use zhifu_store::{CardRow, Engine, EngineConfig, StoreConfig, SystemClock};

    const USER: i64 = 7;

    fn wallet_balance(config: &StoreConfig) -> i128 {
        let mut reader = config.open().unwrap();
        zhifu_store::balance(reader.as_mut(), wallet_account_id(USER))
            .unwrap()
            .unwrap()
            .balances
            .posted_net_minor()
    }

    #[test]
    fn top_ups_move_money_once_whatever_the_bank_does() {
        let directory = tempfile::tempdir().unwrap();
        let config = StoreConfig::Sqlite {
            path: directory.path().join("ledger.sqlite"),
        };
        let engine =
            Engine::start(&config, Arc::new(SystemClock), EngineConfig::default()).unwrap();
        let mut accounts = institution_accounts();
        accounts.push(wallet_account(USER));
        engine.open_accounts(accounts).unwrap();
        let bank = SimulatedBank::new(&[3; 32]);
        let card_number = CardNumber::parse(&make::card_number("622202123456789012")).unwrap();
        let id = IdNumber::parse("11010519491231002X").unwrap();
        let phone = Phone::parse("13812345678").unwrap();
        let holder = Holder {
            name: "张三",
            id_number: &id,
            phone: &phone,
        };
        let bound = bank.bind_card(&card_number, &holder).unwrap();
        let card = CardRow {
            user_id: USER,
            token: bound.token.clone(),
            bank: bound.bank,
            last_four: bound.last_four,
            bound_ms: 0,
        };
        let key = |k: &str| IdempotencyKey::parse(k).unwrap();
        let card_balance = || bank.balance_minor(&card.token).unwrap();
        let moved =
            |wallet: i128| SIMULATED_CARD_BALANCE_MINOR as i128 - card_balance() as i128 == wallet;

        // Normal, then the same request again: one transfer, one debit.
        let first = top_up(&bank, &engine, USER, &card, 10_000, &key("k1")).unwrap();
        let again = top_up(&bank, &engine, USER, &card, 10_000, &key("k1")).unwrap();
        assert_eq!(first, again);
        assert_eq!(wallet_balance(&config), 10_000);
        assert!(moved(10_000));
        // The same key for another amount is refused and moves nothing.
        let reused = top_up(&bank, &engine, USER, &card, 20_000, &key("k1")).unwrap_err();
        assert_eq!(reused.code(), "IDEMPOTENCY_KEY_REUSED");

        // The bank declines: nothing moves.
        bank.set_mode(BankMode::Fail);
        assert_eq!(
            top_up(&bank, &engine, USER, &card, 500, &key("k2"))
                .unwrap_err()
                .code(),
            "BANK_DECLINED"
        );
        assert_eq!(wallet_balance(&config), 10_000);

        // The bank does the work but the answer is lost: settled by asking, posted once.
        bank.set_mode(BankMode::TimeoutAfterWork);
        top_up(&bank, &engine, USER, &card, 700, &key("k3")).unwrap();
        top_up(&bank, &engine, USER, &card, 700, &key("k3")).unwrap();
        assert_eq!(wallet_balance(&config), 10_700);
        assert!(moved(10_700));

        // The request never arrived: "processing"; the retry with the same key completes it.
        bank.set_mode(BankMode::TimeoutBeforeWork);
        assert!(matches!(
            top_up(&bank, &engine, USER, &card, 300, &key("k4")),
            Err(FundingError::Processing)
        ));
        assert_eq!(wallet_balance(&config), 10_700);
        bank.set_mode(BankMode::Normal);
        top_up(&bank, &engine, USER, &card, 300, &key("k4")).unwrap();
        assert_eq!(wallet_balance(&config), 11_000);
        assert!(moved(11_000));

        // Amounts out of range never reach the bank.
        for amount in [0, TOP_UP_MAX_MINOR + 1] {
            let refused = top_up(&bank, &engine, USER, &card, amount, &key("k5")).unwrap_err();
            assert_eq!(refused.code(), "AMOUNT_INVALID");
        }
        assert!(moved(11_000));
        // More than the card holds.
        let refused =
            top_up(&bank, &engine, USER, &card, TOP_UP_MAX_MINOR, &key("k6")).unwrap_err();
        assert_eq!(refused.code(), "BANK_INSUFFICIENT_FUNDS");
        assert_eq!(wallet_balance(&config), 11_000);
    }

    #[test]
    fn withdrawals_pay_out_once_and_charge_the_fee() {
        use crate::wallet::chart::FEE_INCOME;
        use crate::wallet::fees::WithdrawalPolicy;
        use crate::wallet::funding::{WITHDRAWAL_MAX_MINOR, withdraw};

        let directory = tempfile::tempdir().unwrap();
        let config = StoreConfig::Sqlite {
            path: directory.path().join("ledger.sqlite"),
        };
        let engine =
            Engine::start(&config, Arc::new(SystemClock), EngineConfig::default()).unwrap();
        let mut accounts = institution_accounts();
        accounts.push(wallet_account(USER));
        engine.open_accounts(accounts).unwrap();
        let bank = SimulatedBank::new(&[3; 32]);
        let card_number = CardNumber::parse(&make::card_number("622202123456789012")).unwrap();
        let id = IdNumber::parse("11010519491231002X").unwrap();
        let phone = Phone::parse("13812345678").unwrap();
        let holder = Holder {
            name: "张三",
            id_number: &id,
            phone: &phone,
        };
        let bound = bank.bind_card(&card_number, &holder).unwrap();
        let card = CardRow {
            user_id: USER,
            token: bound.token,
            bank: bound.bank,
            last_four: bound.last_four,
            bound_ms: 0,
        };
        let key = |k: &str| IdempotencyKey::parse(k).unwrap();
        top_up(&bank, &engine, USER, &card, 500_000, &key("in")).unwrap();
        let policy = WithdrawalPolicy::default();
        let fee_income = || {
            let mut reader = config.open().unwrap();
            let id = zhifu_ledger::AccountId::new(FEE_INCOME).unwrap();
            zhifu_store::balance(reader.as_mut(), id)
                .unwrap()
                .unwrap()
                .balances
                .posted_net_minor()
        };
        let card_minor = || bank.balance_minor(&card.token).unwrap() as i128;
        let card_start = card_minor();

        // 1,500.00 yuan with the whole free quota left: 500.00 charged, fee 0.50 yuan.
        let quote = policy.quote(150_000, 0);
        let done = withdraw(&bank, &engine, USER, &card, quote, &key("out-1")).unwrap();
        assert_eq!(done.quote.fee_minor, 50);
        let again = withdraw(&bank, &engine, USER, &card, quote, &key("out-1")).unwrap();
        assert_eq!(done, again);
        assert_eq!(wallet_balance(&config), 500_000 - 150_050);
        assert_eq!(fee_income(), 50);
        assert_eq!(card_minor() - card_start, 150_000);

        // Declined: the holds are voided, nothing moves.
        bank.set_mode(BankMode::Fail);
        let quote = policy.quote(10_000, 100_000);
        let refused = withdraw(&bank, &engine, USER, &card, quote, &key("out-2")).unwrap_err();
        assert_eq!(refused.code(), "BANK_DECLINED");
        assert_eq!(wallet_balance(&config), 349_950);

        // Paid but the answer was lost: asked, posted once.
        bank.set_mode(BankMode::TimeoutAfterWork);
        withdraw(&bank, &engine, USER, &card, quote, &key("out-3")).unwrap();
        withdraw(&bank, &engine, USER, &card, quote, &key("out-3")).unwrap();
        assert_eq!(wallet_balance(&config), 349_950 - 10_010);
        assert_eq!(card_minor() - card_start, 160_000);

        // Not arrived: held, not paid; the retry pays.
        bank.set_mode(BankMode::TimeoutBeforeWork);
        assert!(matches!(
            withdraw(&bank, &engine, USER, &card, quote, &key("out-4")),
            Err(FundingError::Processing)
        ));
        assert_eq!(wallet_balance(&config), 339_940, "held, not yet taken");
        bank.set_mode(BankMode::Normal);
        withdraw(&bank, &engine, USER, &card, quote, &key("out-4")).unwrap();
        assert_eq!(wallet_balance(&config), 339_940 - 10_010);
        assert_eq!(fee_income(), 50 + 10 + 10);

        // More than the balance, or out of range: refused before the bank.
        let too_much = policy.quote(400_000, 100_000);
        let refused = withdraw(&bank, &engine, USER, &card, too_much, &key("out-5")).unwrap_err();
        assert_eq!(refused.code(), "EXCEEDS_BALANCE");
        let huge = policy.quote(WITHDRAWAL_MAX_MINOR + 1, 100_000);
        assert_eq!(
            withdraw(&bank, &engine, USER, &card, huge, &key("out-6"))
                .unwrap_err()
                .code(),
            "AMOUNT_INVALID"
        );
        assert_eq!(card_minor() - card_start, 170_000);

        // Every fen accounted for.
        let mut reader = config.open().unwrap();
        let mut all = Vec::new();
        reader.scan_accounts(&mut |a| all.push(a)).unwrap();
        zhifu_ledger::check_conservation(all.iter()).unwrap();
    }
}

mod p2p {
    use crate::wallet::chart::{
        BANK_SETTLEMENT, institution_accounts, wallet_account, wallet_account_id,
    };
    use crate::wallet::funding::IdempotencyKey;
    use crate::wallet::identity::{IdNumber, Phone, make};
    use crate::wallet::limits::LimitPolicy;
    use crate::wallet::p2p::{
        HOLD_MS, P2pError, SendOrder, resolve, send, send_from_memory, shown_state,
    };
    use crate::wallet::people::People;
    use std::sync::Arc;
    use zhifu_ledger::{AccountId, NewTransfer, TransferId, TransferOp};
    use zhifu_store::{Engine, EngineConfig, ManualClock, StoreConfig};

    const START_MS: i64 = 1_800_000_000_000;

    struct World {
        _directory: tempfile::TempDir,
        config: StoreConfig,
        clock: Arc<ManualClock>,
        engine: Engine,
        people: People,
    }

    impl World {
        fn new() -> World {
            let directory = tempfile::tempdir().unwrap();
            let config = StoreConfig::Sqlite {
                path: directory.path().join("ledger.sqlite"),
            };
            World::on(config, directory)
        }

        /// A world on PostgreSQL in a fresh schema, when a server is reachable (CI runs the
        /// tests under pg_virtualenv); `None` otherwise.
        fn on_postgres() -> Option<World> {
            let url = zhifu_store::PostgresStore::url_from_env()?;
            let schema = format!(
                "wallet_test_{:016x}",
                std::process::id() as u64 ^ START_MS as u64
            );
            let config = StoreConfig::Postgres {
                url,
                schema: Some(format!(
                    "{schema}_{}",
                    std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos() % 1_000_000_007
                )),
            };
            Some(World::on(config, tempfile::tempdir().unwrap()))
        }

        fn on(config: StoreConfig, directory: tempfile::TempDir) -> World {
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
            }
        }

        fn now_ms(&self) -> i64 {
            zhifu_store::Clock::now_ns(self.clock.as_ref()) / 1_000_000
        }

        /// A person with `balance_minor` in the wallet, verified unless told otherwise.
        fn person(&mut self, phone: &str, id_17: &str, verified: bool, balance_minor: u64) -> i64 {
            let phone = Phone::parse(phone).unwrap();
            let user = self
                .people
                .sign_up(&phone, "correct horse", 0)
                .unwrap()
                .user_id;
            self.engine
                .open_accounts(vec![wallet_account(user)])
                .unwrap();
            if verified {
                let id = IdNumber::parse(&make::id_number(id_17)).unwrap();
                self.people.verify_identity(user, "张三", &id, 0).unwrap();
            }
            if balance_minor > 0 {
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
            }
            user
        }

        fn balances(&self, user: i64) -> (i128, i128) {
            let mut reader = self.config.open().unwrap();
            let account = zhifu_store::balance(reader.as_mut(), wallet_account_id(user))
                .unwrap()
                .unwrap();
            let posted = account.balances.posted_net_minor();
            (
                posted,
                account
                    .balances
                    .available_minor(zhifu_ledger::BalanceRule::NO_OVERDRAFT),
            )
        }

        fn resolve(
            &mut self,
            payee: i64,
            id: &str,
            accept: bool,
        ) -> Result<zhifu_store::P2pRow, P2pError> {
            let now_ms = self.now_ms();
            resolve(&self.people, &self.engine, payee, id, accept, now_ms)
        }

        fn send(
            &mut self,
            payer: i64,
            phone: &str,
            amount: u64,
            key: &str,
        ) -> Result<zhifu_store::P2pRow, P2pError> {
            let now_ms = self.now_ms();
            let (phone, key) = (
                Phone::parse(phone).unwrap(),
                IdempotencyKey::parse(key).unwrap(),
            );
            let order = SendOrder {
                payer_id: payer,
                payee_phone: &phone,
                amount_minor: amount,
                arrival: crate::wallet::p2p::Arrival::Now,
                key: &key,
                now_ms,
            };
            send(&self.people, &self.engine, &LimitPolicy::default(), order)
        }
    }

    /// A payment the edge runs on a task reads nothing but memory: where it would have to
    /// read, it declines before writing anything, and the blocking way answers. Both take the
    /// same person lock and count against the same limits.
    #[test]
    fn a_send_from_memory_declines_what_needs_a_read_and_keeps_the_limits() {
        let mut world = World::new();
        let alice = world.person("13812345678", "11010519491231001", true, 200_000);
        world.person("13912345678", "11010519800101002", true, 0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let from_memory = |world: &World, amount_minor: u64, key: &str| {
            let phone = Phone::parse("13912345678").unwrap();
            let key = IdempotencyKey::parse(key).unwrap();
            let order = SendOrder {
                payer_id: alice,
                payee_phone: &phone,
                amount_minor,
                arrival: crate::wallet::p2p::Arrival::Now,
                key: &key,
                now_ms: world.now_ms(),
            };
            let limits = LimitPolicy::default();
            runtime.block_on(send_from_memory(
                &world.people,
                &world.engine,
                &limits,
                order,
            ))
        };
        // Nothing in memory yet: declined, and nothing was written.
        assert_eq!(from_memory(&world, 50_000, "k1").unwrap(), None);
        assert_eq!(world.balances(alice), (200_000, 200_000));
        // The blocking way reads what it needs, and the next one goes from memory. Class I:
        // 1,000 yuan in all.
        world.send(alice, "13912345678", 10_000, "k0").unwrap();
        let first = from_memory(&world, 50_000, "k1").unwrap().unwrap();
        world.send(alice, "13912345678", 40_000, "k2").unwrap();
        // At the limit, one fen more: declined from memory (a refusal may answer a retry,
        // which takes a read), refused the blocking way.
        assert_eq!(from_memory(&world, 1, "k3").unwrap(), None);
        assert_eq!(
            world
                .send(alice, "13912345678", 1, "k3")
                .unwrap_err()
                .code(),
            "LIMIT_CLASS_I_CUMULATIVE"
        );
        // A retry of what went from memory: declined there, answered the blocking way.
        assert_eq!(from_memory(&world, 50_000, "k1").unwrap(), None);
        assert_eq!(
            world.send(alice, "13912345678", 50_000, "k1").unwrap(),
            first
        );
        assert_eq!(
            world
                .send(alice, "13912345678", 50_001, "k1")
                .unwrap_err()
                .code(),
            "IDEMPOTENCY_KEY_REUSED"
        );
        assert_eq!(world.balances(alice), (200_000, 100_000));
    }

    #[test]
    fn held_until_accepted_returned_or_expired() {
        let mut world = World::new();
        let alice = world.person("13812345678", "11010519491231001", true, 50_000);
        let bob = world.person("13912345678", "11010519800101002", true, 0);
        world.person("13712345678", "11010519800101003", false, 0);

        let sent = world.send(alice, "13912345678", 10_000, "t1").unwrap();
        assert_eq!(
            world.balances(alice),
            (50_000, 40_000),
            "held: posted stays, available drops"
        );
        assert_eq!(world.balances(bob), (0, 0), "not Bob's until he accepts");
        assert_eq!(
            world.send(alice, "13912345678", 10_000, "t1").unwrap(),
            sent,
            "a retry"
        );
        assert_eq!(
            world
                .send(alice, "13912345678", 10_001, "t1")
                .unwrap_err()
                .code(),
            "IDEMPOTENCY_KEY_REUSED"
        );
        world.resolve(bob, &sent.transfer_id, true).unwrap();
        assert_eq!(world.balances(bob), (10_000, 10_000));
        assert_eq!(world.balances(alice), (40_000, 40_000));
        assert!(matches!(
            world.resolve(bob, &sent.transfer_id, false),
            Err(P2pError::NotHeld)
        ));

        let returned = world.send(alice, "13912345678", 5_000, "t2").unwrap();
        assert!(
            matches!(
                world.resolve(alice, &returned.transfer_id, true),
                Err(P2pError::NotFound)
            ),
            "only the payee resolves"
        );
        world.resolve(bob, &returned.transfer_id, false).unwrap();
        assert_eq!(world.balances(alice), (40_000, 40_000));

        // Nobody acts for 24 h: the ledger returns it, also across a restart of the engine.
        let expiring = world.send(alice, "13912345678", 7_000, "t3").unwrap();
        drop(std::mem::replace(
            &mut world.engine,
            Engine::start(&world.config, world.clock.clone(), EngineConfig::default()).unwrap(),
        ));
        world.clock.advance_ms(HOLD_MS as u64 + 1);
        assert_eq!(shown_state(&expiring, world.now_ms()), "returned");
        assert!(matches!(
            world.resolve(bob, &expiring.transfer_id, true),
            Err(P2pError::NotHeld)
        ));
        assert_eq!(world.balances(alice), (40_000, 40_000));
        assert_eq!(world.balances(bob), (10_000, 10_000));

        // Refusals.
        for (phone, amount, code) in [
            ("13712345678", 100, "RECIPIENT_UNVERIFIED"),
            ("13612345678", 100, "PAYEE_NOT_FOUND"),
            ("13812345678", 100, "PAYEE_IS_PAYER"),
            ("13912345678", 0, "AMOUNT_INVALID"),
            ("13912345678", 90_001, "LIMIT_CLASS_I_CUMULATIVE"),
            ("13912345678", 40_001, "EXCEEDS_BALANCE"),
        ] {
            assert_eq!(
                world.send(alice, phone, amount, "t9").unwrap_err().code(),
                code,
                "{phone} {amount}"
            );
        }

        // Listings, through each wallet's statement: sent and received alike, newest first,
        // each transfer once (not again for its acceptance, return or expiry).
        let mut ledger = world.config.open().unwrap();
        let mut listed = |user: i64, limit: usize| -> Vec<String> {
            let ids = crate::wallet::p2p::transfer_ids_of(ledger.as_mut(), user, limit).unwrap();
            let rows = crate::wallet::p2p::rows_of(&world.people, &ids).unwrap();
            assert!(
                rows.iter().map(|row| &row.transfer_id).eq(&ids),
                "every row, in order"
            );
            ids
        };
        let newest_first = [
            expiring.transfer_id.clone(),
            returned.transfer_id.clone(),
            sent.transfer_id.clone(),
        ];
        assert_eq!(listed(bob, 50), newest_first, "received");
        assert_eq!(listed(alice, 50), newest_first, "sent");
        assert_eq!(listed(alice, 2), newest_first[..2]);
    }

    #[test]
    fn a_delayed_transfer_can_be_cancelled_until_it_arrives() {
        use crate::wallet::p2p::{Arrival, cancel};
        let mut world = World::new();
        let alice = world.person("13812345678", "11010519491231001", true, 50_000);
        let bob = world.person("13912345678", "11010519800101002", true, 0);
        let delayed = |world: &mut World, key: &str| {
            let now_ms = world.now_ms();
            let (phone, key) = (
                Phone::parse("13912345678").unwrap(),
                IdempotencyKey::parse(key).unwrap(),
            );
            let order = SendOrder {
                payer_id: alice,
                payee_phone: &phone,
                amount_minor: 10_000,
                arrival: Arrival::In2Hours,
                key: &key,
                now_ms,
            };
            send(&world.people, &world.engine, &LimitPolicy::default(), order).unwrap()
        };
        // Cancelled inside the window: the money is back, the payee never had it.
        let first = delayed(&mut world, "d1");
        assert_eq!(shown_state(&first, world.now_ms()), "scheduled");
        assert!(matches!(
            world.resolve(bob, &first.transfer_id, true),
            Err(P2pError::NotYetArrived)
        ));
        let now_ms = world.now_ms();
        let cancelled = cancel(
            &world.people,
            &world.engine,
            alice,
            &first.transfer_id,
            now_ms,
        )
        .unwrap();
        assert_eq!(cancelled.state, "cancelled");
        assert_eq!(world.balances(alice), (50_000, 50_000));

        // Not cancelled: it arrives after 2 h, then only the payee decides.
        let second = delayed(&mut world, "d2");
        world.clock.advance_ms(2 * 3_600_000);
        let now_ms = world.now_ms();
        assert!(matches!(
            cancel(
                &world.people,
                &world.engine,
                alice,
                &second.transfer_id,
                now_ms
            ),
            Err(P2pError::AlreadyArrived)
        ));
        world.resolve(bob, &second.transfer_id, true).unwrap();
        assert_eq!(world.balances(bob), (10_000, 10_000));
        assert_eq!(world.balances(alice), (40_000, 40_000));
    }

    #[test]
    fn class_i_limit_counts_what_was_kept() {
        let mut world = World::new();
        let alice = world.person("13812345678", "11010519491231001", true, 200_000);
        let bob = world.person("13912345678", "11010519800101002", true, 0);
        // 1,000.00 yuan in all for class I: exactly the limit passes, one fen more does not.
        world.send(alice, "13912345678", 60_000, "a").unwrap();
        let returned = world.send(alice, "13912345678", 40_000, "b").unwrap();
        assert_eq!(
            world.send(alice, "13912345678", 1, "c").unwrap_err().code(),
            "LIMIT_CLASS_I_CUMULATIVE"
        );
        // A returned transfer gives its part of the limit back.
        world.resolve(bob, &returned.transfer_id, false).unwrap();
        let kept = world.send(alice, "13912345678", 40_000, "d").unwrap();
        assert_eq!(
            world.send(alice, "13912345678", 1, "e").unwrap_err().code(),
            "LIMIT_CLASS_I_CUMULATIVE"
        );
        assert_eq!(
            world.send(alice, "13912345678", 40_000, "d").unwrap(),
            kept,
            "a retry at the limit is told what its first try did"
        );
        // Red packets count against the same limit.
        let now_ms = world.now_ms();
        let refused = crate::wallet::red_packets::send(
            &world.people,
            &world.engine,
            &crate::wallet::red_packet::RedPacketPolicy::default(),
            &LimitPolicy::default(),
            alice,
            crate::wallet::red_packet::RedPacketKind::Normal { share_minor: 1 },
            1,
            &IdempotencyKey::parse("packet").unwrap(),
            now_ms,
            &mut super::Seeded(1),
        )
        .unwrap_err();
        assert_eq!(refused.code(), "LIMIT_CLASS_I_CUMULATIVE");
        // Nobody accepted: a day later both holds went back, and so did their part of the
        // limit, although nothing was written meanwhile (spending is kept in memory).
        world.clock.advance_ms(HOLD_MS as u64 - 1);
        assert_eq!(
            world.send(alice, "13912345678", 1, "f").unwrap_err().code(),
            "LIMIT_CLASS_I_CUMULATIVE",
            "the holds expire at 24 h, not a millisecond before"
        );
        world.clock.advance_ms(1);
        world.send(alice, "13912345678", 100_000, "g").unwrap();
        assert_eq!(
            world.send(alice, "13912345678", 1, "h").unwrap_err().code(),
            "LIMIT_CLASS_I_CUMULATIVE"
        );
    }

    #[test]
    fn red_packets_have_exactly_their_winners_and_return_the_rest() {
        use crate::wallet::red_packet::{RedPacketKind, RedPacketPolicy};
        use crate::wallet::red_packets::{RedPacketServiceError, grab, send as send_packet};

        let mut world = World::new();
        let alice = world.person("13812345678", "11010519491231001", true, 50_000);
        let grabbers: Vec<i64> = (0..8)
            .map(|n| {
                world.person(
                    &format!("1390000000{n}"),
                    &format!("1101051980010100{n}"),
                    true,
                    0,
                )
            })
            .collect();
        let now_ms = world.now_ms();
        let key = IdempotencyKey::parse("packet-1").unwrap();
        let mut random = super::Seeded(11);
        let lucky = RedPacketKind::Lucky {
            total_minor: 10_000,
        };
        let packet = send_packet(
            &world.people,
            &world.engine,
            &RedPacketPolicy::default(),
            &LimitPolicy::default(),
            alice,
            lucky,
            5,
            &key,
            now_ms,
            &mut random,
        )
        .unwrap();
        assert_eq!(world.balances(alice), (50_000, 40_000), "every share held");
        let again = send_packet(
            &world.people,
            &world.engine,
            &RedPacketPolicy::default(),
            &LimitPolicy::default(),
            alice,
            lucky,
            5,
            &key,
            now_ms,
            &mut random,
        )
        .unwrap();
        assert_eq!(again, packet, "a retry sends nothing more");

        let mut won = Vec::new();
        for &grabber in &grabbers {
            match grab(
                &world.people,
                &world.engine,
                &packet.packet_id,
                grabber,
                now_ms,
            ) {
                Ok(got) => won.push((grabber, got.amount_minor)),
                Err(RedPacketServiceError::SoldOut) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won.len(), 5, "exactly as many winners as shares");
        assert_eq!(won.iter().map(|w| w.1).sum::<u64>(), 10_000);
        for (grabber, amount) in &won {
            assert_eq!(world.balances(*grabber).0, *amount as i128);
            let twice = grab(
                &world.people,
                &world.engine,
                &packet.packet_id,
                *grabber,
                now_ms,
            )
            .unwrap();
            assert_eq!((twice.amount_minor, twice.first_time), (*amount, false));
        }
        assert_eq!(world.balances(alice), (40_000, 40_000));

        // An unverified person cannot grab; an unclaimed share goes back after 24 h.
        let stranger = world.person("13700000000", "11010519700101001", false, 0);
        let key = IdempotencyKey::parse("packet-2").unwrap();
        let normal = RedPacketKind::Normal { share_minor: 1_000 };
        let second = send_packet(
            &world.people,
            &world.engine,
            &RedPacketPolicy::default(),
            &LimitPolicy::default(),
            alice,
            normal,
            3,
            &key,
            now_ms,
            &mut random,
        )
        .unwrap();
        assert_eq!(
            grab(
                &world.people,
                &world.engine,
                &second.packet_id,
                stranger,
                now_ms
            )
            .unwrap_err()
            .code(),
            "RECIPIENT_UNVERIFIED"
        );
        grab(
            &world.people,
            &world.engine,
            &second.packet_id,
            grabbers[0],
            now_ms,
        )
        .unwrap();
        assert_eq!(world.balances(alice), (39_000, 37_000));
        world
            .clock
            .advance_ms(super::super::red_packets::OPEN_MS as u64 + 1);
        let later = world.now_ms();
        assert_eq!(
            grab(
                &world.people,
                &world.engine,
                &second.packet_id,
                grabbers[1],
                later
            )
            .unwrap_err()
            .code(),
            "RED_PACKET_EXPIRED"
        );
        // The engine expires the held shares on its own (it wakes at least every 100 ms).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while world.balances(alice).1 != 39_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the shares never came back"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut reader = world.config.open().unwrap();
        let mut all = Vec::new();
        reader.scan_accounts(&mut |a| all.push(a)).unwrap();
        zhifu_ledger::check_conservation(all.iter()).unwrap();
    }

    /// `count` verified people with wallets and no money, written straight to the records
    /// (sign-up's Argon2id would take minutes for thousands).
    fn crowd(world: &World, count: i64) -> Vec<i64> {
        let mut people = Vec::with_capacity(count as usize);
        // Many people per write: one commit each would take a minute on PostgreSQL.
        for first in (0..count).step_by(1_000) {
            let last = (first + 1_000).min(count);
            let created = world
                .people
                .db()
                .write_plain(move |s| {
                    let mut created = Vec::new();
                    for n in first..last {
                        let user = zhifu_store::NewUser {
                            phone_lookup: n.to_be_bytes().to_vec(),
                            phone_masked: "139****0000".into(),
                            password_hash: "not a hash: nobody logs in".into(),
                            created_ms: 0,
                        };
                        let user_id = s.user_create(&user)?.expect("a new phone");
                        s.identity_save(&zhifu_store::IdentityRow {
                            user_id,
                            class: "I".into(),
                            name_masked: "*三".into(),
                            id_lookup: user_id.to_be_bytes().to_vec(),
                            id_masked: "1****************1".into(),
                            verified_ms: 0,
                        })?;
                        created.push(user_id);
                    }
                    Ok(created)
                })
                .unwrap();
            people.extend(created);
        }
        for chunk in people.chunks(4_096) {
            let accounts = chunk.iter().map(|&user| wallet_account(user)).collect();
            world.engine.open_accounts(accounts).unwrap();
        }
        people
    }

    /// SPEC §3 and the issue's acceptance: one lucky packet of 100 shares, 10,000 people grab
    /// at the same moment; exactly 100 win, once each, and the shares sum to the packet.
    fn ten_thousand_grab_a_lucky_packet_of_100(mut world: World) {
        use crate::wallet::red_packet::{RedPacketKind, RedPacketPolicy};
        use crate::wallet::red_packets::{RedPacketServiceError, grab, send as send_packet};
        use std::sync::Barrier;

        const GRABBERS: i64 = 10_000;
        const THREADS: usize = 32;
        const TOTAL_MINOR: u64 = 20_000;
        let sender = world.person("13712345678", "11010519491231001", true, 50_000);
        let grabbers = crowd(&world, GRABBERS);
        let now_ms = world.now_ms();
        let packet = send_packet(
            &world.people,
            &world.engine,
            &RedPacketPolicy::default(),
            &LimitPolicy::default(),
            sender,
            RedPacketKind::Lucky {
                total_minor: TOTAL_MINOR,
            },
            100,
            &IdempotencyKey::parse("the-big-one").unwrap(),
            now_ms,
            &mut super::Seeded(42),
        )
        .unwrap();
        let barrier = Barrier::new(THREADS);
        let outcomes: Vec<(i64, Result<u64, &'static str>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = grabbers
                .chunks(grabbers.len().div_ceil(THREADS))
                .map(|mine| {
                    let (world, barrier, packet_id) = (&world, &barrier, &packet.packet_id);
                    scope.spawn(move || {
                        barrier.wait();
                        mine.iter()
                            .map(|&user| {
                                let outcome =
                                    grab(&world.people, &world.engine, packet_id, user, now_ms);
                                let outcome = match outcome {
                                    Ok(won) => {
                                        assert!(won.first_time);
                                        Ok(won.amount_minor)
                                    }
                                    Err(RedPacketServiceError::SoldOut) => Err("sold out"),
                                    Err(other) => panic!("grab failed: {other}"),
                                };
                                (user, outcome)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let winners: Vec<(i64, u64)> = outcomes
            .iter()
            .filter_map(|(user, outcome)| outcome.ok().map(|amount| (*user, amount)))
            .collect();
        assert_eq!(winners.len(), 100, "exactly N winners");
        assert_eq!(outcomes.len() as i64, GRABBERS);
        let distinct: std::collections::HashSet<i64> = winners.iter().map(|w| w.0).collect();
        assert_eq!(distinct.len(), 100, "nobody wins twice");
        assert_eq!(
            winners.iter().map(|w| w.1).sum::<u64>(),
            TOTAL_MINOR,
            "the shares sum to the packet"
        );
        for &(user, amount) in &winners {
            assert_eq!(world.balances(user).0, i128::from(amount));
        }
        let shares = world
            .people
            .db()
            .read(|s| s.red_packet_shares(&packet.packet_id))
            .unwrap();
        assert!(shares.iter().all(|share| share.grabber_id.is_some()));
        assert_eq!(world.balances(sender), (50_000 - 20_000, 50_000 - 20_000));
        let mut reader = world.config.open().unwrap();
        let mut all = Vec::new();
        reader.scan_accounts(&mut |a| all.push(a)).unwrap();
        zhifu_ledger::check_conservation(all.iter()).unwrap();
    }

    #[test]
    fn ten_thousand_grab_a_lucky_packet_of_100_on_sqlite() {
        ten_thousand_grab_a_lucky_packet_of_100(World::new());
    }

    #[test]
    fn ten_thousand_grab_a_lucky_packet_of_100_on_postgres() {
        match World::on_postgres() {
            Some(world) => ten_thousand_grab_a_lucky_packet_of_100(world),
            None => eprintln!("SKIPPED: no PostgreSQL (run under pg_virtualenv)"),
        }
    }

    fn conservation(world: &World) {
        let mut reader = world.config.open().unwrap();
        let mut all = Vec::new();
        reader.scan_accounts(&mut |a| all.push(a)).unwrap();
        zhifu_ledger::check_conservation(all.iter()).unwrap();
    }

    #[test]
    fn pay_codes_are_spent_once_expire_and_refuse_guesses() {
        use crate::wallet::pay_codes::{
            PayCodeError, PayCodePolicy, PayCodes, RedeemError, offline_code,
        };
        let mut world = World::new();
        let alice = world.person("13800000101", "11010519491231001", true, 0);
        let codes = PayCodes::new(&[9; 32], PayCodePolicy::default());
        let mut random = super::Seeded(7);
        let now = world.now_ms();
        let refused = |result: Result<i64, RedeemError>| match result {
            Err(RedeemError::Code(e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        };

        // Online: 18 digits, the institution's prefix; whose it is, once.
        let issued = codes.issue(&world.people, alice, &mut random, now).unwrap();
        assert_eq!(issued.code.len(), 18);
        assert!(issued.code.starts_with("19"));
        assert!(
            !format!("{issued:?}").contains(&issued.code),
            "no live code in Debug"
        );
        assert_eq!(
            codes
                .redeem(&world.people, &issued.code, "shop", now + 1)
                .unwrap(),
            alice
        );
        let again = codes.redeem(&world.people, &issued.code, "shop", now + 2);
        assert_eq!(refused(again), PayCodeError::Spent);

        // Expired after the TTL, and spent by that failed use too.
        let late = codes.issue(&world.people, alice, &mut random, now).unwrap();
        let expired = codes.redeem(&world.people, &late.code, "shop", now + 60_000);
        assert_eq!(refused(expired), PayCodeError::Expired);
        let after = codes.redeem(&world.people, &late.code, "shop", now + 1);
        assert_eq!(refused(after), PayCodeError::Spent);

        // A new code spends the older one.
        let first = codes.issue(&world.people, alice, &mut random, now).unwrap();
        let second = codes.issue(&world.people, alice, &mut random, now).unwrap();
        assert_eq!(
            refused(codes.redeem(&world.people, &first.code, "shop", now)),
            PayCodeError::Spent
        );
        assert_eq!(
            codes
                .redeem(&world.people, &second.code, "shop", now)
                .unwrap(),
            alice
        );

        // Another institution's prefix, a malformed code.
        let other = format!("28{}", &second.code[2..]);
        assert_eq!(
            refused(codes.redeem(&world.people, &other, "shop", now)),
            PayCodeError::OtherInstitution
        );
        for malformed in ["19", "19123456789012345a", "1912345678901234567", ""] {
            assert_eq!(
                refused(codes.redeem(&world.people, malformed, "shop", now)),
                PayCodeError::Malformed
            );
        }

        // Guessing: ten wrong codes, then even a right one is refused for a while, for that
        // redeemer only.
        for guess in 0..10u64 {
            let code = format!("190{guess:015}");
            assert_eq!(
                refused(codes.redeem(&world.people, &code, "guesser", now)),
                PayCodeError::Unknown
            );
        }
        let right = codes.issue(&world.people, alice, &mut random, now).unwrap();
        assert_eq!(
            refused(codes.redeem(&world.people, &right.code, "guesser", now)),
            PayCodeError::RateLimited
        );
        assert_eq!(
            codes
                .redeem(&world.people, &right.code, "shop", now)
                .unwrap(),
            alice
        );
        let later = codes
            .issue(&world.people, alice, &mut random, now + 60_000)
            .unwrap();
        assert_eq!(
            codes
                .redeem(&world.people, &later.code, "guesser", now + 60_000)
                .unwrap(),
            alice
        );

        // Offline: a device derives the code from its secret and the time; the server agrees,
        // for this step and the one before, once per step.
        let device = codes
            .enrol_device(&world.people, alice, &mut random, now)
            .unwrap();
        assert!(
            !format!("{device:?}").contains("secret: ["),
            "no secret in Debug"
        );
        let step = now.div_euclid(device.step_ms);
        let shown = offline_code("19", device.device_no, &device.secret, step);
        assert_eq!(shown.len(), 18);
        assert_eq!(
            codes
                .redeem(&world.people, &shown, "shop", now + device.step_ms)
                .unwrap(),
            alice
        );
        assert_eq!(
            refused(codes.redeem(&world.people, &shown, "shop", now + 1)),
            PayCodeError::Spent
        );
        let old = offline_code("19", device.device_no, &device.secret, step - 2);
        assert_eq!(
            refused(codes.redeem(&world.people, &old, "shop", now)),
            PayCodeError::Expired
        );
        let forged = offline_code("19", device.device_no, &[1; 32], step);
        assert_eq!(
            refused(codes.redeem(&world.people, &forged, "shop", now)),
            PayCodeError::Unknown
        );
    }

    #[test]
    fn receive_codes_pay_at_once_within_the_static_cap() {
        use crate::wallet::receive_codes::{ReceiveCodeError, ReceiveCodePolicy, ReceiveCodes};
        let mut world = World::new();
        let alice = world.person("13800000201", "11010519491231001", true, 200_000);
        let bob = world.person("13800000202", "11010519491231002", true, 0);
        let unverified = world.person("13800000203", "11010519491231003", false, 0);
        let codes = ReceiveCodes::new(&[9; 32], ReceiveCodePolicy::default());
        let limits = LimitPolicy::default();
        let now = world.now_ms();
        let pay = |world: &World, code: &str, amount: Option<u64>, key: &str| {
            codes.pay(
                &world.people,
                &world.engine,
                &limits,
                alice,
                code,
                amount,
                &IdempotencyKey::parse(key).unwrap(),
                now,
            )
        };

        // Bob's code with a preset amount: a valid EMV payload, his masked name, no id number.
        let preset = codes.code_for(&world.people, bob, Some(30_000)).unwrap();
        let decoded = zhifu_codes::decode(&preset).unwrap();
        assert_eq!(decoded.merchant_name.as_str(), "*三");
        assert!(matches!(
            codes.code_for(&world.people, unverified, None),
            Err(ReceiveCodeError::P2p(P2pError::Limit(_)))
        ));
        let paid = pay(&world, &preset, None, "scan-1").unwrap();
        assert_eq!(
            (paid.payee_id, paid.amount_minor, paid.state.as_str()),
            (bob, 30_000, "accepted")
        );
        assert_eq!(
            pay(&world, &preset, None, "scan-1").unwrap(),
            paid,
            "a retry pays once"
        );
        assert_eq!(world.balances(bob).0, 30_000, "arrived at once");
        assert!(matches!(
            pay(&world, &preset, Some(100), "scan-2"),
            Err(ReceiveCodeError::AmountMismatch)
        ));

        // Bob's open code: the payer enters the amount. The static cap is 500.00 a day:
        // 300.00 paid, 200.00 more is the edge, 0.01 beyond it is refused.
        let open = codes.code_for(&world.people, bob, None).unwrap();
        assert!(matches!(
            pay(&world, &open, None, "scan-3"),
            Err(ReceiveCodeError::AmountMissing)
        ));
        pay(&world, &open, Some(20_000), "scan-4").unwrap();
        match pay(&world, &open, Some(1), "scan-5") {
            Err(ReceiveCodeError::StaticDailyCap { left_minor: 0 }) => {}
            other => panic!("expected the static cap, got {other:?}"),
        }
        assert_eq!(world.balances(bob).0, 50_000);
        let mut ledger = world.config.open().unwrap();
        let ids = crate::wallet::p2p::transfer_ids_of(ledger.as_mut(), bob, 50).unwrap();
        let listed = crate::wallet::p2p::rows_of(&world.people, &ids).unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|row| row.amount_minor)
                .collect::<Vec<_>>(),
            [20_000, 30_000],
            "both payments in Bob's transfers, newest first"
        );

        // Codes that are not a person's of this wallet: forged tag, another GUID, damage.
        let forged = open.replace(&format!("{bob}."), &format!("{unverified}."));
        let refused = pay(&world, &forged, Some(100), "scan-6").unwrap_err();
        assert!(
            matches!(
                refused,
                ReceiveCodeError::Unreadable { .. } | ReceiveCodeError::NotOurs
            ),
            "{refused:?}"
        );
        let other_bank = ReceiveCodes::new(
            &[9; 32],
            ReceiveCodePolicy {
                guid: "com.other".into(),
                ..Default::default()
            },
        );
        let theirs = other_bank.code_for(&world.people, bob, None).unwrap();
        assert!(matches!(
            pay(&world, &theirs, Some(100), "scan-7"),
            Err(ReceiveCodeError::NotOurs)
        ));
        let last = if open.ends_with('0') { '1' } else { '0' };
        let damaged = format!("{}{last}", &open[..open.len() - 1]);
        assert_eq!(
            pay(&world, &damaged, Some(100), "scan-8")
                .unwrap_err()
                .code(),
            "BAD_CRC"
        );
        assert_eq!(world.balances(bob).0, 50_000, "nothing moved");
        conservation(&world);
    }
}

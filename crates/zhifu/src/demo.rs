//! `zhifu serve --demo`: a small world to click through at once. Safe to run again: people
//! that exist are left as they are, and the money comes in under fixed idempotency keys.

use crate::serve::{AppState, OsRandom};
use zhifu_domain::bank::{BankMode, Holder};
use zhifu_domain::wallet::funding::{IdempotencyKey, top_up};
use zhifu_domain::wallet::identity::{CardNumber, IdNumber, Phone};

/// Every demo person's login password and payment PIN (the README lists them).
pub const PASSWORD: &str = "zhifu-demo";
pub const PIN: &str = "802514";

struct DemoPerson {
    phone: &'static str,
    name: &'static str,
    id_number: &'static str,
    card_number: Option<&'static str>,
    balance_minor: u64,
}

const PEOPLE: [DemoPerson; 3] = [
    // Class II: verified, a card, 1,000.00 yuan.
    DemoPerson {
        phone: "13800000001",
        name: "张伟",
        id_number: "11010519491231002X",
        card_number: Some("6222021234567890128"),
        balance_minor: 100_000,
    },
    // Class I: verified, no card, nothing yet (receives transfers and red packets).
    DemoPerson {
        phone: "13800000002",
        name: "李娜",
        id_number: "110105200002291235",
        card_number: None,
        balance_minor: 0,
    },
    // Unverified: can log in, cannot receive until verified.
    DemoPerson {
        phone: "13800000003",
        name: "",
        id_number: "",
        card_number: None,
        balance_minor: 0,
    },
];

pub fn seed(state: &AppState) -> anyhow::Result<()> {
    let now_ms = state.now_ms();
    let bank = state.bank();
    let mode = bank.mode();
    bank.set_mode(BankMode::Normal);
    for person in &PEOPLE {
        let phone = Phone::parse(person.phone)?;
        let people = state.people_blocking();
        let user_id = match people.user_id_by_phone(&phone)? {
            Some(user_id) => user_id,
            None => people.sign_up(&phone, PASSWORD, now_ms)?.user_id,
        };
        let opened = state
            .engine()
            .open_accounts(vec![zhifu_domain::wallet::chart::wallet_account(user_id)])?;
        anyhow::ensure!(opened.len() == 1, "one account opened");
        people.set_pin(user_id, PASSWORD, PIN, &mut OsRandom::new())?;
        if person.id_number.is_empty() {
            continue;
        }
        let id_number = IdNumber::parse(person.id_number)?;
        people.verify_identity(user_id, person.name, &id_number, now_ms)?;
        let Some(card_number) = person.card_number else {
            continue;
        };
        let card_number = CardNumber::parse(card_number)?;
        let holder = Holder {
            name: person.name,
            id_number: &id_number,
            phone: &phone,
        };
        let card = match people.bind_card(user_id, &card_number, &holder, bank.as_ref(), now_ms) {
            Ok(card) => card,
            Err(_) => people
                .cards(user_id)?
                .into_iter()
                .next()
                .ok_or_else(|| anyhow::anyhow!("no demo card"))?,
        };
        drop(people);
        let key = IdempotencyKey::parse("demo-seed").expect("a valid key");
        top_up(
            bank.as_ref(),
            state.engine(),
            user_id,
            &card,
            person.balance_minor,
            &key,
        )?;
    }
    bank.set_mode(mode);
    seed_merchant(state, now_ms)?;
    println!(
        "zhifu serve: demo people 13800000001 (class II, 1,000.00 yuan), 13800000002 (class I), \
         13800000003 (unverified); password {PASSWORD}, PIN {PIN}"
    );
    Ok(())
}

/// The demo shop's name; it is merchant 1 of a fresh data directory.
pub const MERCHANT_NAME: &str = "Demo noodle bar";

/// A merchant to try the console with: merchant 1, onboarded if missing.
fn seed_merchant(state: &AppState, now_ms: i64) -> anyhow::Result<()> {
    use zhifu_domain::acquiring::merchants::{self, MerchantId, MerchantKind, Onboarding};
    let people = state.people_blocking();
    let first = MerchantId::new(1).expect("1 is a valid id");
    if merchants::merchant(&people, first).is_ok() {
        return Ok(());
    }
    let onboarding = Onboarding {
        name: MERCHANT_NAME.into(),
        kind: MerchantKind::Merchant,
        discount_rate_bps: 60,
        notify_url: None,
    };
    merchants::onboard(&people, &onboarding, None, now_ms)?;
    Ok(())
}

/// The demo shop's console link, printed at start (it works for 5 minutes; the operator's
/// `POST /api/v1/operator/merchants/1/console-link` makes another).
pub fn print_console_link(state: &AppState, base_url: &str) {
    let first = zhifu_domain::acquiring::merchants::MerchantId::new(1).expect("1 is a valid id");
    let (path, _) = crate::web::console::link_for(state, first);
    println!(
        "zhifu serve: demo merchant console (link valid 5 minutes): {base_url}{}",
        &path[1..]
    );
}

//! Sign-up, log-in, sessions and log-out (SPEC §3, §9): a phone and a login password
//! (Argon2id), bearer session tokens with an expiry.
//!
//! What is stored protects itself: the phone as an HMAC under the server key (for lookups)
//! plus its masked form, the password as an Argon2id PHC string, the session token as its
//! SHA-256. Errors never say whether a phone is registered when a log-in fails.

use super::fees::{WithdrawalPolicy, WithdrawalQuote};
use super::hot::{Hot, SessionEntry, Spending};
use super::identity::{CardNumber, IdNumber, Phone};
use super::limits::{BalanceUsage, RealNameClass};
use super::pin::{LockoutPolicy, Pin, PinAttempts, PinError, PinHasher};
use crate::bank::{Bank, BankError, Holder};
use crate::time::{shanghai_day_start_ms, shanghai_year_start_ms};
use crate::{Random, derive_key};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use hmac::{KeyInit, Mac};
use sha2::Digest;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use zhifu_store::{CardRow, IdentityRow, NewUser, StoreConfig, StoreError, WalletDb};

/// Login passwords: long enough to resist guessing, short enough to bound hashing work.
pub const PASSWORD_LEN_MIN: usize = 8;
pub const PASSWORD_LEN_MAX: usize = 128;
/// Read connections to the wallet's records. SQLite's reads run in-process and are short, so a
/// few cover two cores; a PostgreSQL read waits on round trips, so more are open, or payments
/// queue for a connection rather than for the database.
fn wallet_readers_len(config: &StoreConfig) -> usize {
    match config {
        StoreConfig::Sqlite { .. } => 4,
        StoreConfig::Postgres { .. } => 16,
    }
}
/// Stripes of [`People::lock_person`]: enough that two busy people rarely share one.
const PERSON_LOCKS_LEN: usize = 1024;
/// Bytes of randomness in a session token.
const TOKEN_LEN: usize = 32;

#[derive(Debug)]
pub enum PeopleError {
    PhoneTaken,
    PasswordTooShort,
    PasswordTooLong,
    /// Wrong phone or wrong password: deliberately the same answer.
    CredentialsWrong,
    /// Unknown, malformed, logged out or expired.
    SessionInvalid,
    /// Setting a PIN needs the login password.
    PasswordWrong,
    /// A payment needs a PIN and none was set.
    PinNotSet,
    Pin(PinError),
    /// A name must be given, at most 64 characters.
    NameInvalid,
    /// The ID number (or, for a card, the phone) is not the one this account verified with.
    IdentityMismatch,
    /// Binding a card needs real-name verification first.
    IdentityRequired,
    CardAlreadyBound,
    CardNotFound,
    Bank(BankError),
    Store(StoreError),
}

impl PeopleError {
    pub fn code(&self) -> &'static str {
        match self {
            PeopleError::PhoneTaken => "PHONE_TAKEN",
            PeopleError::PasswordTooShort => "PASSWORD_TOO_SHORT",
            PeopleError::PasswordTooLong => "PASSWORD_TOO_LONG",
            PeopleError::CredentialsWrong => "CREDENTIALS_WRONG",
            PeopleError::SessionInvalid => "SESSION_INVALID",
            PeopleError::PasswordWrong => "PASSWORD_WRONG",
            PeopleError::PinNotSet => "PIN_NOT_SET",
            PeopleError::Pin(e) => e.code(),
            PeopleError::NameInvalid => "NAME_INVALID",
            PeopleError::IdentityMismatch => "IDENTITY_MISMATCH",
            PeopleError::IdentityRequired => "IDENTITY_REQUIRED",
            PeopleError::CardAlreadyBound => "CARD_ALREADY_BOUND",
            PeopleError::CardNotFound => "CARD_NOT_FOUND",
            PeopleError::Bank(e) => e.code(),
            PeopleError::Store(_) => "STORE_UNAVAILABLE",
        }
    }
}

impl fmt::Display for PeopleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeopleError::PhoneTaken => f.write_str("this phone number already has an account"),
            PeopleError::PasswordTooShort => {
                write!(
                    f,
                    "a login password has at least {PASSWORD_LEN_MIN} characters"
                )
            }
            PeopleError::PasswordTooLong => {
                write!(
                    f,
                    "a login password has at most {PASSWORD_LEN_MAX} characters"
                )
            }
            PeopleError::CredentialsWrong => f.write_str("wrong phone number or password"),
            PeopleError::SessionInvalid => {
                f.write_str("not logged in, or the session has expired; log in again")
            }
            PeopleError::PasswordWrong => f.write_str("the login password is wrong"),
            PeopleError::PinNotSet => f.write_str("set a payment PIN first"),
            PeopleError::Pin(e) => e.fmt(f),
            PeopleError::NameInvalid => {
                f.write_str("give your name as on your ID card, at most 64 characters")
            }
            PeopleError::IdentityMismatch => {
                f.write_str("this is not the ID number (or phone) this account was verified with")
            }
            PeopleError::IdentityRequired => {
                f.write_str("verify your real name (name and ID number) first")
            }
            PeopleError::CardAlreadyBound => {
                f.write_str("this card is already bound to your wallet")
            }
            PeopleError::CardNotFound => f.write_str("no such card is bound to your wallet"),
            PeopleError::Bank(e) => e.fmt(f),
            PeopleError::Store(e) => write!(f, "storage failed: {e}"),
        }
    }
}

impl std::error::Error for PeopleError {}

impl From<StoreError> for PeopleError {
    fn from(e: StoreError) -> PeopleError {
        PeopleError::Store(e)
    }
}

/// A logged-in person.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Person {
    pub user_id: i64,
    pub phone_masked: String,
}

/// Held while acting for one person: see [`People::lock_person`]. It knows whose it is, so
/// what may only be asked under it takes it instead of an id.
pub struct PersonLock<'a> {
    user_id: i64,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl PersonLock<'_> {
    pub fn user_id(&self) -> i64 {
        self.user_id
    }
}

/// A new session's bearer token (hex) and when it expires. `Debug` hides the token.
pub struct Session {
    pub token: String,
    pub expires_ms: i64,
    pub person: Person,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("token", &"<secret>")
            .field("expires_ms", &self.expires_ms)
            .field("person", &self.person)
            .finish()
    }
}

/// The people service. Cheap to clone: each request may hold its own, and all share one
/// [`WalletDb`] (its readers and its batching writer) and one set of person locks.
#[derive(Clone)]
pub struct People {
    db: Arc<WalletDb>,
    /// Striped locks for what reads a person's records and then writes on their behalf
    /// across stores (limits checked, then a ledger transfer, then a row): see
    /// [`People::lock_person`].
    person_locks: Arc<Vec<tokio::sync::Mutex<()>>>,
    /// Striped locks for merchant orders: see [`People::lock_order`].
    order_locks: Arc<Vec<Mutex<()>>>,
    /// What every payment reads, kept in memory (see [`super::hot`]).
    hot: Arc<Hot>,
    phone_key: Vec<u8>,
    id_key: Vec<u8>,
    pin_hasher: PinHasher,
    lockout: LockoutPolicy,
    session_ttl_ms: i64,
    /// Verified against when a phone is unknown, so that a wrong phone costs what a wrong
    /// password does and timing does not tell which phones are registered.
    decoy_hash: String,
}

impl People {
    /// `secret` is the server's secret of at least 32 bytes; each use gets its own key
    /// derived from it.
    pub fn new(db: Arc<WalletDb>, secret: &[u8], session_ttl_ms: i64) -> People {
        assert!(
            secret.len() >= 32,
            "the server secret has at least 256 bits"
        );
        assert!(session_ttl_ms > 0);
        let decoy_hash = hash_password("decoy password, never anyone's");
        People {
            db,
            person_locks: Arc::new(
                (0..PERSON_LOCKS_LEN)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
            ),
            order_locks: Arc::new((0..PERSON_LOCKS_LEN).map(|_| Mutex::new(())).collect()),
            hot: Arc::new(Hot::new()),
            phone_key: derive_key(secret, "phone lookup"),
            id_key: derive_key(secret, "id number lookup"),
            pin_hasher: PinHasher::new(&derive_key(secret, "payment pin")),
            lockout: LockoutPolicy::default(),
            session_ttl_ms,
            decoy_hash,
        }
    }

    /// Opens the wallet's records for `config` with a few read connections.
    pub fn open(
        config: &StoreConfig,
        secret: &[u8],
        session_ttl_ms: i64,
    ) -> Result<People, StoreError> {
        let db = WalletDb::open(config, wallet_readers_len(config))?;
        Ok(People::new(Arc::new(db), secret, session_ttl_ms))
    }

    /// Serialises everything done on behalf of one person that checks their records and
    /// then moves money (limits, then a ledger transfer, then the row that counts against
    /// the limits). Hold one such lock (or one [`People::lock_packet`]) at a time, never two,
    /// so that they cannot deadlock.
    pub fn lock_person(&self, user_id: i64) -> PersonLock<'_> {
        let index = (user_id.unsigned_abs() % PERSON_LOCKS_LEN as u64) as usize;
        PersonLock {
            user_id,
            _guard: self.person_locks[index].blocking_lock(),
        }
    }

    /// [`People::lock_person`] for a task: waits without holding a thread.
    pub async fn lock_person_async(&self, user_id: i64) -> PersonLock<'_> {
        let index = (user_id.unsigned_abs() % PERSON_LOCKS_LEN as u64) as usize;
        PersonLock {
            user_id,
            _guard: self.person_locks[index].lock().await,
        }
    }

    /// Serialises what is done to one merchant order (pay, close, refund). A separate set of
    /// stripes from the person locks: paying an order holds its order lock and then the payer's
    /// person lock, always in that order, so the two cannot deadlock.
    pub fn lock_order(&self, order_id: i64) -> MutexGuard<'_, ()> {
        let index = (order_id.unsigned_abs() % PERSON_LOCKS_LEN as u64) as usize;
        self.order_locks[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Serialises the grabs of one red packet, which pick the next free share.
    pub fn lock_packet(&self, packet_id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        // FNV-1a: stable and cheap; the ids are the server's own, not chosen by attackers.
        let hash = packet_id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
        self.person_locks[(hash % PERSON_LOCKS_LEN as u64) as usize].blocking_lock()
    }

    pub fn sign_up(
        &self,
        phone: &Phone,
        password: &str,
        now_ms: i64,
    ) -> Result<Person, PeopleError> {
        check_password_policy(password)?;
        let user = NewUser {
            phone_lookup: self.phone_lookup(phone),
            phone_masked: phone.masked(),
            password_hash: hash_password(password),
            created_ms: now_ms,
        };
        let phone_masked = user.phone_masked.clone();
        let user_id = self
            .db
            .write_plain(move |s| s.user_create(&user))?
            .ok_or(PeopleError::PhoneTaken)?;
        Ok(Person {
            user_id,
            phone_masked,
        })
    }

    pub fn log_in(
        &self,
        phone: &Phone,
        password: &str,
        now_ms: i64,
        random: &mut dyn Random,
    ) -> Result<Session, PeopleError> {
        if password.len() > PASSWORD_LEN_MAX {
            return Err(PeopleError::CredentialsWrong);
        }
        let lookup = self.phone_lookup(phone);
        let user = self.db.read(|s| s.user_by_phone(&lookup))?;
        let stored_hash = user
            .as_ref()
            .map_or(self.decoy_hash.as_str(), |u| u.password_hash.as_str());
        let password_ok = password_matches(password, stored_hash);
        let user = match user {
            Some(user) if password_ok => user,
            _ => return Err(PeopleError::CredentialsWrong),
        };
        let mut token_bytes = [0u8; TOKEN_LEN];
        random.fill(&mut token_bytes);
        let token = hex(&token_bytes);
        let expires_ms = now_ms.saturating_add(self.session_ttl_ms);
        let (hash, user_id) = (token_hash(&token), user.id);
        // Quiet: a new session cannot make anything cached wrong.
        self.db
            .write_plain_quiet(move |s| s.session_create(&hash, user_id, expires_ms))?;
        Ok(Session {
            token,
            expires_ms,
            person: Person {
                user_id: user.id,
                phone_masked: user.phone_masked,
            },
        })
    }

    /// Who holds this token, if the session is alive.
    pub fn session_person(&self, token: &str, now_ms: i64) -> Result<Person, PeopleError> {
        if !is_token_shaped(token) {
            return Err(PeopleError::SessionInvalid);
        }
        let entry = self.session_entry(token_hash(token))?;
        match now_ms < entry.expires_ms {
            true => Ok(entry.person),
            false => Err(PeopleError::SessionInvalid),
        }
    }

    /// The session under this token hash, expired or not: from memory, else read and kept.
    fn session_entry(&self, hash: Vec<u8>) -> Result<SessionEntry, PeopleError> {
        let generation = self.db.generation();
        if let Some(entry) = self.hot.sessions.get(&hash, generation) {
            return Ok(entry);
        }
        let found = self.db.read(|s| match s.session(&hash)? {
            Some(session) => Ok(s.user(session.user_id)?.map(|user| (session, user))),
            None => Ok(None),
        })?;
        let (session, user) = found.ok_or(PeopleError::SessionInvalid)?;
        let entry = SessionEntry {
            person: Person {
                user_id: user.id,
                phone_masked: user.phone_masked,
            },
            expires_ms: session.expires_ms,
        };
        self.hot.sessions.put(hash, generation, entry.clone());
        Ok(entry)
    }

    pub fn log_out(&self, token: &str) -> Result<(), PeopleError> {
        let hash = token_hash(token);
        let forgotten = hash.clone();
        if !is_token_shaped(token) || !self.db.write_plain(move |s| s.session_delete(&hash))? {
            return Err(PeopleError::SessionInvalid);
        }
        // The write moved the generation on already; this frees the entry at once.
        self.hot.sessions.forget(&forgotten);
        Ok(())
    }

    /// Sets or changes the payment PIN; the login password proves it is the person.
    pub fn set_pin(
        &self,
        user_id: i64,
        password: &str,
        pin_text: &str,
        random: &mut dyn Random,
    ) -> Result<(), PeopleError> {
        let user = self
            .db
            .read(|s| s.user(user_id))?
            .ok_or(PeopleError::SessionInvalid)?;
        if password.len() > 4 * PASSWORD_LEN_MAX || !password_matches(password, &user.password_hash)
        {
            return Err(PeopleError::PasswordWrong);
        }
        let pin = Pin::parse_new(pin_text, password).map_err(PeopleError::Pin)?;
        let mut salt = [0u8; 16];
        random.fill(&mut salt);
        let hash = self.pin_hasher.hash(&pin, &salt);
        self.db
            .write_plain(move |s| s.pin_set(user_id, &salt, &hash))?;
        Ok(())
    }

    /// Checks a PIN entered to pay. Every failure is stored before the answer, so the lockout
    /// survives restarts; failures are judged in the wallet's single writer against the row as
    /// it is then, so concurrent attempts cannot outrun the lockout. The common case, the right
    /// PIN with no failures to clear, only reads.
    pub fn check_pin(&self, user_id: i64, pin_text: &str, now_ms: i64) -> Result<(), PeopleError> {
        let pin = Pin::parse(pin_text).ok();
        let generation = self.db.generation();
        let row = match self.hot.pins.get(&user_id, generation) {
            Some(row) => row,
            None => {
                let row = self
                    .db
                    .read(|s| s.pin(user_id))?
                    .ok_or(PeopleError::PinNotSet)?;
                self.hot.pins.put(user_id, generation, row.clone());
                row
            }
        };
        let (before, after, right) =
            judge_pin(&row, pin.as_ref(), &self.pin_hasher, &self.lockout, now_ms);
        before.check_unlocked(now_ms).map_err(PeopleError::Pin)?;
        if right && after == before {
            return Ok(());
        }
        let (hasher, lockout) = (self.pin_hasher.clone(), self.lockout.clone());
        self.db.write_plain(move |s| {
            let Some(row) = s.pin(user_id)? else {
                return Ok(Err(PeopleError::PinNotSet));
            };
            let (before, after, right) = judge_pin(&row, pin.as_ref(), &hasher, &lockout, now_ms);
            if let Err(locked) = before.check_unlocked(now_ms) {
                return Ok(Err(PeopleError::Pin(locked)));
            }
            if after != before {
                s.pin_attempts_save(user_id, after.failures, after.locked_until_ms)?;
            }
            Ok(match right {
                true => Ok(()),
                false => Err(PeopleError::Pin(PinError::Wrong {
                    failures: after.failures,
                })),
            })
        })?
    }

    /// Real-name class I: a name and an ID number that passes its check (the external check,
    /// simulated). The real name cannot be changed afterwards, only confirmed.
    pub fn verify_identity(
        &self,
        user_id: i64,
        name: &str,
        id_number: &IdNumber,
        now_ms: i64,
    ) -> Result<IdentityRow, PeopleError> {
        let name_masked = mask_name(name)?;
        let id_lookup = self.id_lookup(id_number);
        let identity = IdentityRow {
            user_id,
            class: RealNameClass::ClassI.code().into(),
            name_masked,
            id_lookup,
            id_masked: id_number.masked(),
            verified_ms: now_ms,
        };
        // Checked and saved in one write, so that two verifications cannot both save.
        self.db.write_plain(move |s| {
            Ok(match s.identity(user_id)? {
                Some(known) if known.id_lookup == identity.id_lookup => Ok(known),
                Some(_) => Err(PeopleError::IdentityMismatch),
                None => {
                    s.identity_save(&identity)?;
                    Ok(identity)
                }
            })
        })?
    }

    /// The person's real-name class.
    pub fn class(&self, user_id: i64) -> Result<RealNameClass, PeopleError> {
        if let Some(class) = self.class_in_memory(user_id) {
            return Ok(class);
        }
        // Read before the records, so that a write in between leaves this entry untrusted.
        let generation = self.db.generation();
        let class = class_of(self.db.read(|s| s.identity(user_id))?.as_ref());
        self.hot.classes.put(user_id, generation, class);
        Ok(class)
    }

    /// Binds a card after the bank's four-element check; the first card raises the person to
    /// class II. The holder must be the verified person, on this account's phone.
    pub fn bind_card(
        &self,
        user_id: i64,
        card: &CardNumber,
        holder: &Holder<'_>,
        bank: &dyn Bank,
        now_ms: i64,
    ) -> Result<CardRow, PeopleError> {
        let (identity, user) = self
            .db
            .read(|s| Ok((s.identity(user_id)?, s.user(user_id)?)))?;
        let identity = identity.ok_or(PeopleError::IdentityRequired)?;
        let user = user.ok_or(PeopleError::SessionInvalid)?;
        if identity.id_lookup != self.id_lookup(holder.id_number)
            || user.phone_lookup != self.phone_lookup(holder.phone)
        {
            return Err(PeopleError::IdentityMismatch);
        }
        let bound = bank.bind_card(card, holder).map_err(PeopleError::Bank)?;
        let row = CardRow {
            user_id,
            token: bound.token,
            bank: bound.bank,
            last_four: bound.last_four,
            bound_ms: now_ms,
        };
        // The card and the class it brings, in one write.
        self.db.write_plain(move |s| {
            if !s.card_bind(&row)? {
                return Ok(Err(PeopleError::CardAlreadyBound));
            }
            if let Some(mut identity) = s.identity(user_id)?
                && class_from_code(&identity.class) < RealNameClass::ClassII
            {
                identity.class = RealNameClass::ClassII.code().into();
                s.identity_save(&identity)?;
            }
            Ok(Ok(row))
        })?
    }

    pub fn cards(&self, user_id: i64) -> Result<Vec<CardRow>, PeopleError> {
        Ok(self.db.read(|s| s.cards(user_id))?)
    }

    /// The person's bound card with this token.
    pub fn card(&self, user_id: i64, token: &str) -> Result<CardRow, PeopleError> {
        self.db
            .read(|s| s.cards(user_id))?
            .into_iter()
            .find(|card| card.token == token)
            .ok_or(PeopleError::CardNotFound)
    }

    pub fn unbind_card(&self, user_id: i64, token: &str, now_ms: i64) -> Result<(), PeopleError> {
        let token = token.to_owned();
        match self
            .db
            .write_plain(move |s| s.card_unbind(user_id, &token, now_ms))?
        {
            true => Ok(()),
            false => Err(PeopleError::CardNotFound),
        }
    }

    /// The cost of a withdrawal under `key`, taking this person's share of the free quota
    /// (shared by every account with the same ID number). A retry under the same key gets the
    /// same share back, so the quote never changes between attempts.
    pub fn quote_withdrawal(
        &self,
        user_id: i64,
        key: &str,
        amount_minor: u64,
        policy: &WithdrawalPolicy,
    ) -> Result<WithdrawalQuote, PeopleError> {
        let quota_key = format!("{user_id}:{key}");
        let policy = policy.clone();
        // Read, decided and recorded in one write, so that two withdrawals of one person's
        // accounts cannot both take the same part of the quota.
        self.db.write_plain(move |s| {
            let Some(identity) = s.identity(user_id)? else {
                return Ok(Err(PeopleError::IdentityRequired));
            };
            let free_minor = match s.quota_use(&quota_key)? {
                Some(free_minor) => free_minor,
                None => {
                    let used = s.quota_used(&identity.id_lookup)?;
                    let free_minor = policy.quote(amount_minor, used).free_minor;
                    s.quota_use_record(&quota_key, &identity.id_lookup, free_minor)?;
                    free_minor
                }
            };
            // The share fixed above decides the quote: used = lifetime - share, whatever
            // else happened to the quota since.
            let used_for_quote = policy.free_quota_lifetime_minor.saturating_sub(free_minor);
            let quote = policy.quote(amount_minor, used_for_quote);
            Ok(Ok(WithdrawalQuote {
                free_quota_left_after_minor: policy
                    .free_quota_lifetime_minor
                    .saturating_sub(s.quota_used(&identity.id_lookup)?),
                ..quote
            }))
        })?
    }

    /// What a withdrawal would cost now, reserving nothing: shown before the person confirms.
    pub fn preview_withdrawal(
        &self,
        user_id: i64,
        amount_minor: u64,
        policy: &WithdrawalPolicy,
    ) -> Result<WithdrawalQuote, PeopleError> {
        let used = self.db.read(|s| match s.identity(user_id)? {
            Some(identity) => s.quota_used(&identity.id_lookup).map(Some),
            None => Ok(None),
        })?;
        Ok(policy.quote(amount_minor, used.ok_or(PeopleError::IdentityRequired)?))
    }

    /// Gives back a failed withdrawal's share of the free quota.
    pub fn release_withdrawal_quota(&self, user_id: i64, key: &str) -> Result<(), PeopleError> {
        let quota_key = format!("{user_id}:{key}");
        Ok(self
            .db
            .write_plain(move |s| s.quota_use_release(&quota_key))?)
    }

    /// The person's verified identity, if any (masked fields only leave this crate).
    pub fn identity(&self, user_id: i64) -> Result<Option<IdentityRow>, PeopleError> {
        Ok(self.db.read(|s| s.identity(user_id))?)
    }

    /// Records a withdrawal about to ask the bank (once per key).
    pub fn withdrawal_open(&self, row: zhifu_store::WithdrawalRow) -> Result<(), PeopleError> {
        self.db.write_plain(move |s| s.withdrawal_open(&row))?;
        Ok(())
    }

    /// Closes an open withdrawal as `paid` or `declined`.
    pub fn withdrawal_close(&self, key: &str, state: &'static str) -> Result<(), PeopleError> {
        let key = key.to_owned();
        Ok(self
            .db
            .write_plain(move |s| s.withdrawal_close(&key, state))?)
    }

    /// Open withdrawals started no later than `started_ms_max`, oldest first.
    pub fn withdrawals_open(
        &self,
        started_ms_max: i64,
        limit: usize,
    ) -> Result<Vec<zhifu_store::WithdrawalRow>, PeopleError> {
        Ok(self
            .db
            .read(|s| s.withdrawals_open(started_ms_max, limit))?)
    }

    fn id_lookup(&self, id_number: &IdNumber) -> Vec<u8> {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.id_key)
            .expect("HMAC takes keys of any length");
        mac.update(id_number.reveal().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Whose wallet this phone opens, if anyone's.
    pub fn user_id_by_phone(&self, phone: &Phone) -> Result<Option<i64>, PeopleError> {
        let lookup = self.phone_lookup(phone);
        let generation = self.db.generation();
        if let Some(user_id) = self.hot.users_by_phone.get(&lookup, generation) {
            return Ok(Some(user_id));
        }
        let user_id = self
            .db
            .read(|s| s.user_by_phone(&lookup))?
            .map(|user| user.id);
        // Only who is there: a phone signed up later must not be answered "nobody".
        if let Some(user_id) = user_id {
            self.hot.users_by_phone.put(lookup, generation, user_id);
        }
        Ok(user_id)
    }

    /// The payer as the limits see them: the real-name class, and what they have paid from the
    /// balance (transfers, red packets and merchant payments that were not given back) since
    /// opening, this year and today, China Standard Time. Asked under the payer's lock, which
    /// every write that adds to what they spent holds too; answered from memory while nothing
    /// else was written and no counted hold has expired.
    pub fn payer_standing(
        &self,
        payer: &PersonLock<'_>,
        now_ms: i64,
    ) -> Result<(RealNameClass, BalanceUsage), PeopleError> {
        let user_id = payer.user_id;
        let class = self.class(user_id)?;
        if let Some(usage) = self.spending_in_memory(user_id, now_ms) {
            return Ok((class, usage));
        }
        let windows_ms = spending_windows_ms(now_ms);
        // Read before the records, so that a write in between leaves this entry untrusted.
        let generation = self.db.generation();
        let spent = self
            .db
            .read(|s| s.balance_spent(user_id, windows_ms, now_ms))?;
        let [since_opening_minor, this_year_minor, today_minor] = spent.sums_minor;
        let usage = BalanceUsage {
            since_opening_minor,
            this_year_minor,
            today_minor,
        };
        let spending = Spending {
            windows_ms,
            read_ms: now_ms,
            valid_until_ms: spent.first_expiry_ms.unwrap_or(i64::MAX),
            usage,
        };
        self.hot.spending.put(user_id, generation, spending);
        Ok((class, usage))
    }

    /// The person a session token names, if that live session is in memory; `None` for
    /// everything else, which [`People::session_person`] answers.
    pub fn session_person_cached(&self, token: &str, now_ms: i64) -> Option<Person> {
        if !is_token_shaped(token) {
            return None;
        }
        let entry = self
            .hot
            .sessions
            .get(&token_hash(token), self.db.generation())?;
        (now_ms < entry.expires_ms).then_some(entry.person)
    }

    /// Whether this PIN is the payer's, with no failed attempts to clear and no lockout, as
    /// far as memory knows; `false` also when it does not know. Then [`People::check_pin`]
    /// would answer `Ok` without writing, so a payment that runs where a thread must not block
    /// ([`super::p2p::send_from_memory`]) may skip it. Any other goes the blocking way, which
    /// records a failure and fills the cache.
    pub fn pin_right_in_memory(&self, payer_id: i64, pin_text: &str, now_ms: i64) -> bool {
        let Some(pin_row) = self.hot.pins.get(&payer_id, self.db.generation()) else {
            return false;
        };
        let pin = Pin::parse(pin_text).ok();
        let (before, after, right) = judge_pin(
            &pin_row,
            pin.as_ref(),
            &self.pin_hasher,
            &self.lockout,
            now_ms,
        );
        right && after == before && before.check_unlocked(now_ms).is_ok()
    }

    /// [`People::user_id_by_phone`] from memory only: `None` when it would have to read.
    pub fn user_id_by_phone_in_memory(&self, phone: &Phone) -> Option<i64> {
        let lookup = self.phone_lookup(phone);
        self.hot.users_by_phone.get(&lookup, self.db.generation())
    }

    /// [`People::class`] from memory only: `None` when it would have to read.
    pub fn class_in_memory(&self, user_id: i64) -> Option<RealNameClass> {
        self.hot.classes.get(&user_id, self.db.generation())
    }

    /// [`People::payer_standing`] from memory only: `None` when it would have to read.
    pub fn payer_standing_in_memory(
        &self,
        payer: &PersonLock<'_>,
        now_ms: i64,
    ) -> Option<(RealNameClass, BalanceUsage)> {
        let class = self.class_in_memory(payer.user_id)?;
        Some((class, self.spending_in_memory(payer.user_id, now_ms)?))
    }

    /// What the payer spent, as the limits sum it at `now_ms`, if memory holds it.
    fn spending_in_memory(&self, user_id: i64, now_ms: i64) -> Option<BalanceUsage> {
        let spending = self.hot.spending.get(&user_id, self.db.generation())?;
        spending
            .holds_at(spending_windows_ms(now_ms), now_ms)
            .then_some(spending.usage)
    }

    /// Counts a payment the payer just made, written with
    /// [`WalletDb::write_quiet`](zhifu_store::WalletDb::write_quiet), in what
    /// [`People::payer_standing`] remembers; `expiry_ms` for a hold that goes back by itself.
    pub fn note_spent(&self, payer: &PersonLock<'_>, amount_minor: u64, expiry_ms: Option<i64>) {
        self.hot.spending.update(&payer.user_id, |spending| {
            spending.add(amount_minor, expiry_ms)
        });
    }

    /// How a person may be named to others: the masked phone.
    pub fn phone_masked(&self, user_id: i64) -> Result<Option<String>, PeopleError> {
        Ok(self
            .db
            .read(|s| s.user(user_id))?
            .map(|user| user.phone_masked))
    }

    /// The records, for services of this crate that keep their own (transfers).
    pub(crate) fn db(&self) -> &WalletDb {
        &self.db
    }

    fn phone_lookup(&self, phone: &Phone) -> Vec<u8> {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.phone_key)
            .expect("HMAC takes keys of any length");
        mac.update(phone.reveal().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// `*三` for 张三: what may be shown of a real name.
fn mask_name(name: &str) -> Result<String, PeopleError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > 64 || name.chars().any(char::is_control) {
        return Err(PeopleError::NameInvalid);
    }
    let last = name.chars().last().expect("not empty");
    Ok(match chars {
        1 => "*".into(),
        _ => format!("{}{last}", "*".repeat((chars - 1).min(3))),
    })
}

/// The attempts before this one, after it, and whether the PIN was right.
fn judge_pin(
    row: &zhifu_store::PinRow,
    pin: Option<&Pin>,
    hasher: &PinHasher,
    lockout: &LockoutPolicy,
    now_ms: i64,
) -> (PinAttempts, PinAttempts, bool) {
    let before = PinAttempts {
        failures: row.failures,
        locked_until_ms: row.locked_until_ms,
    };
    let right = pin.is_some_and(|pin| hasher.matches(pin, &row.salt, &row.hash));
    let after = match right {
        true => before.after_success(),
        false => before.after_failure(now_ms, lockout),
    };
    (before, after, right)
}

fn class_from_code(code: &str) -> RealNameClass {
    match code {
        "I" => RealNameClass::ClassI,
        "II" => RealNameClass::ClassII,
        "III" => RealNameClass::ClassIII,
        _ => RealNameClass::Unverified,
    }
}

fn check_password_policy(password: &str) -> Result<(), PeopleError> {
    let chars = password.chars().count();
    if chars < PASSWORD_LEN_MIN {
        return Err(PeopleError::PasswordTooShort);
    }
    if chars > PASSWORD_LEN_MAX || password.len() > 4 * PASSWORD_LEN_MAX {
        return Err(PeopleError::PasswordTooLong);
    }
    Ok(())
}

fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("Argon2id with default parameters hashes any password up to our bound")
        .to_string()
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

fn token_hash(token: &str) -> Vec<u8> {
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

fn is_token_shaped(token: &str) -> bool {
    token.len() == 2 * TOKEN_LEN && token.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn class_of(identity: Option<&zhifu_store::IdentityRow>) -> RealNameClass {
    identity.map_or(RealNameClass::Unverified, |identity| {
        class_from_code(&identity.class)
    })
}

/// The windows the limits sum spending over at `now_ms`: since opening, this calendar year
/// and today, China Standard Time.
fn spending_windows_ms(now_ms: i64) -> [i64; 3] {
    [
        i64::MIN,
        shanghai_year_start_ms(now_ms),
        shanghai_day_start_ms(now_ms),
    ]
}

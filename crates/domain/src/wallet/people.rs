//! Sign-up, log-in, sessions and log-out (SPEC §3, §9): a phone and a login password
//! (Argon2id), bearer session tokens with an expiry.
//!
//! What is stored protects itself: the phone as an HMAC under the server key (for lookups)
//! plus its masked form, the password as an Argon2id PHC string, the session token as its
//! SHA-256. Errors never say whether a phone is registered when a log-in fails.

use super::identity::Phone;
use super::pin::{LockoutPolicy, Pin, PinAttempts, PinError, PinHasher};
use crate::Random;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use hmac::{KeyInit, Mac};
use sha2::Digest;
use std::fmt;
use zhifu_store::{NewUser, StoreError, WalletStore};

/// Login passwords: long enough to resist guessing, short enough to bound hashing work.
pub const PASSWORD_LEN_MIN: usize = 8;
pub const PASSWORD_LEN_MAX: usize = 128;
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

pub struct People {
    store: Box<dyn WalletStore>,
    phone_key: Vec<u8>,
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
    pub fn new(store: Box<dyn WalletStore>, secret: &[u8], session_ttl_ms: i64) -> People {
        assert!(
            secret.len() >= 32,
            "the server secret has at least 256 bits"
        );
        assert!(session_ttl_ms > 0);
        let decoy_hash = hash_password("decoy password, never anyone's");
        People {
            store,
            phone_key: derive_key(secret, "phone lookup"),
            pin_hasher: PinHasher::new(&derive_key(secret, "payment pin")),
            lockout: LockoutPolicy::default(),
            session_ttl_ms,
            decoy_hash,
        }
    }

    pub fn sign_up(
        &mut self,
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
        let user_id = self
            .store
            .user_create(&user)?
            .ok_or(PeopleError::PhoneTaken)?;
        Ok(Person {
            user_id,
            phone_masked: user.phone_masked,
        })
    }

    pub fn log_in(
        &mut self,
        phone: &Phone,
        password: &str,
        now_ms: i64,
        random: &mut dyn Random,
    ) -> Result<Session, PeopleError> {
        if password.len() > PASSWORD_LEN_MAX {
            return Err(PeopleError::CredentialsWrong);
        }
        let user = self.store.user_by_phone(&self.phone_lookup(phone))?;
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
        self.store
            .session_create(&token_hash(&token), user.id, expires_ms)?;
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
    pub fn session_person(&mut self, token: &str, now_ms: i64) -> Result<Person, PeopleError> {
        if !is_token_shaped(token) {
            return Err(PeopleError::SessionInvalid);
        }
        let session = self
            .store
            .session(&token_hash(token))?
            .filter(|s| now_ms < s.expires_ms)
            .ok_or(PeopleError::SessionInvalid)?;
        let user = self
            .store
            .user(session.user_id)?
            .ok_or(PeopleError::SessionInvalid)?;
        Ok(Person {
            user_id: user.id,
            phone_masked: user.phone_masked,
        })
    }

    pub fn log_out(&mut self, token: &str) -> Result<(), PeopleError> {
        if !is_token_shaped(token) || !self.store.session_delete(&token_hash(token))? {
            return Err(PeopleError::SessionInvalid);
        }
        Ok(())
    }

    /// Sets or changes the payment PIN; the login password proves it is the person.
    pub fn set_pin(
        &mut self,
        user_id: i64,
        password: &str,
        pin_text: &str,
        random: &mut dyn Random,
    ) -> Result<(), PeopleError> {
        let user = self
            .store
            .user(user_id)?
            .ok_or(PeopleError::SessionInvalid)?;
        if password.len() > 4 * PASSWORD_LEN_MAX || !password_matches(password, &user.password_hash)
        {
            return Err(PeopleError::PasswordWrong);
        }
        let pin = Pin::parse_new(pin_text, password).map_err(PeopleError::Pin)?;
        let mut salt = [0u8; 16];
        random.fill(&mut salt);
        let hash = self.pin_hasher.hash(&pin, &salt);
        self.store.pin_set(user_id, &salt, &hash)?;
        Ok(())
    }

    /// Checks a PIN entered to pay. Every failure is stored before the answer, so the lockout
    /// survives restarts and cannot be outrun by concurrent attempts (they are serialised here).
    pub fn check_pin(
        &mut self,
        user_id: i64,
        pin_text: &str,
        now_ms: i64,
    ) -> Result<(), PeopleError> {
        let row = self.store.pin(user_id)?.ok_or(PeopleError::PinNotSet)?;
        let attempts = PinAttempts {
            failures: row.failures,
            locked_until_ms: row.locked_until_ms,
        };
        attempts.check_unlocked(now_ms).map_err(PeopleError::Pin)?;
        let right = Pin::parse(pin_text)
            .map(|pin| self.pin_hasher.matches(&pin, &row.salt, &row.hash))
            .unwrap_or(false);
        let after = if right {
            attempts.after_success()
        } else {
            attempts.after_failure(now_ms, &self.lockout)
        };
        if after != attempts {
            self.store
                .pin_attempts_save(user_id, after.failures, after.locked_until_ms)?;
        }
        if right {
            Ok(())
        } else {
            Err(PeopleError::Pin(PinError::Wrong {
                failures: after.failures,
            }))
        }
    }

    fn phone_lookup(&self, phone: &Phone) -> Vec<u8> {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.phone_key)
            .expect("HMAC takes keys of any length");
        mac.update(phone.reveal().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// A key of its own for each use of the server secret.
fn derive_key(secret: &[u8], label: &str) -> Vec<u8> {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"zhifu key v1\0");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().to_vec()
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

//! Access to the merchant console (the web pages under `/console`) without passwords: the
//! merchant's signed API (or the operator) asks for a short-lived **link**; opening it gives a
//! **session**. Both are tokens `{kind}.{merchant}.{expiry}.{tag}`, the tag an HMAC of the rest
//! under a key derived from the server's secret, so they are checked without storage and
//! survive restarts. A session cannot be revoked before it expires (12 hours); rotating the
//! server's secret ends them all.

use super::merchants::MerchantId;
use crate::derive_key;
use hmac::{KeyInit, Mac};

/// How long a console link may be opened.
pub const LINK_TTL_MS: i64 = 5 * 60_000;
/// How long a console session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3_600_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TokenKind {
    Link,
    Session,
}

impl TokenKind {
    fn code(self) -> &'static str {
        match self {
            TokenKind::Link => "link",
            TokenKind::Session => "session",
        }
    }
}

/// Makes and checks console tokens. Cheap to clone.
#[derive(Clone)]
pub struct ConsoleTokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for ConsoleTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsoleTokens(<key hidden>)")
    }
}

impl ConsoleTokens {
    pub fn new(secret: &[u8]) -> ConsoleTokens {
        ConsoleTokens {
            key: derive_key(secret, "merchant console"),
        }
    }

    pub fn issue(&self, kind: TokenKind, merchant_id: MerchantId, expires_ms: i64) -> String {
        let body = format!("{}.{}.{expires_ms}", kind.code(), merchant_id.get());
        format!("{body}.{}", self.tag(&body))
    }

    /// The merchant a token of `kind` names, if its tag is right and it has not expired.
    pub fn check(&self, kind: TokenKind, token: &str, now_ms: i64) -> Option<MerchantId> {
        if token.len() > 128 {
            return None;
        }
        let (body, tag) = token.rsplit_once('.')?;
        let mut parts = body.split('.');
        let (Some(code), Some(merchant), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let expires_ms: i64 = expires.parse().ok()?;
        let merchant_id = MerchantId::parse(merchant)?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let tag = hex_decode(tag)?;
        // Constant time: a wrong tag tells nothing about the right one.
        mac.verify_slice(&tag).ok()?;
        (code == kind.code() && now_ms < expires_ms).then_some(merchant_id)
    }

    fn mac(&self) -> hmac::Hmac<sha2::Sha256> {
        hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length")
    }

    fn tag(&self, body: &str) -> String {
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_merchant_until_they_expire_and_cannot_be_forged() {
        let tokens = ConsoleTokens::new(&[7; 32]);
        let shop = MerchantId::new(42).unwrap();
        let link = tokens.issue(TokenKind::Link, shop, 1_000);
        assert_eq!(tokens.check(TokenKind::Link, &link, 999), Some(shop));
        assert_eq!(tokens.check(TokenKind::Link, &link, 1_000), None);
        // A link is not a session, and another server's token is nothing.
        assert_eq!(tokens.check(TokenKind::Session, &link, 0), None);
        assert_eq!(
            ConsoleTokens::new(&[8; 32]).check(TokenKind::Link, &link, 0),
            None
        );
        // Changing the merchant or the expiry breaks the tag.
        let forged = link.replacen(".42.", ".43.", 1);
        assert_eq!(tokens.check(TokenKind::Link, &forged, 0), None);
        let longer = link.replacen(".1000.", ".9999999.", 1);
        assert_eq!(tokens.check(TokenKind::Link, &longer, 0), None);
        for junk in ["", "link", "link.42.1000", "link.42.1000.zz", "a.b.c.d.e"] {
            assert_eq!(tokens.check(TokenKind::Link, junk, 0), None, "{junk}");
        }
    }
}

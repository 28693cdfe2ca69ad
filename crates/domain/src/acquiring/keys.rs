//! The keys of the signed merchant API: the two algorithms, key serials, and merchants' public
//! keys parsed from PEM and checked (RSA of 2048 to 4096 bits, Ed25519 of 32 bytes).
//!
//! Nothing here prints a key: `Debug` shows the algorithm and the size, never the material,
//! public or not, so that no log has to be judged for what it may contain.

use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::pkcs8::LineEnding;
use rsa::traits::PublicKeyParts;
use sha2::Digest;
use std::fmt;

/// The smallest and largest RSA moduli accepted: below 2048 bits is too weak (NIST SP 800-131A);
/// above 4096 costs verification time for no gain a merchant needs.
pub const RSA_BITS_MIN: u32 = 2048;
pub const RSA_BITS_MAX: u32 = 4096;
/// A PEM text longer than this is no key of the sizes above (an RSA-4096 SPKI PEM is ~800).
pub const PUBLIC_KEY_PEM_LEN_MAX: usize = 4096;
/// Key serials: 1 to 64 of `A–Z a–z 0–9 . _ -`, so that a serial needs no escaping in the
/// `Authorization` header nor in a URL path.
pub const SERIAL_LEN_MAX: usize = 64;

/// How a merchant's requests (and the platform's responses) are signed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum KeyAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017), as WeChat Pay v3 signs.
    RsaSha256,
    /// Ed25519 (RFC 8032) over the message itself.
    Ed25519,
}

impl KeyAlgorithm {
    /// As keys are registered and stored: `RSA-SHA256` or `Ed25519`.
    pub fn code(self) -> &'static str {
        match self {
            KeyAlgorithm::RsaSha256 => "RSA-SHA256",
            KeyAlgorithm::Ed25519 => "Ed25519",
        }
    }

    pub fn parse(code: &str) -> Option<KeyAlgorithm> {
        match code {
            "RSA-SHA256" => Some(KeyAlgorithm::RsaSha256),
            "Ed25519" => Some(KeyAlgorithm::Ed25519),
            _ => None,
        }
    }

    /// The scheme word of the `Authorization` header and of `Zhifu-Signature-Type`.
    pub fn scheme(self) -> &'static str {
        match self {
            KeyAlgorithm::RsaSha256 => "ZHIFU-RSA-SHA256",
            KeyAlgorithm::Ed25519 => "ZHIFU-ED25519",
        }
    }

    pub fn from_scheme(scheme: &str) -> Option<KeyAlgorithm> {
        [KeyAlgorithm::RsaSha256, KeyAlgorithm::Ed25519]
            .into_iter()
            .find(|algorithm| algorithm.scheme() == scheme)
    }
}

/// A key's serial number, unique per merchant and never reused.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct KeySerial(String);

impl KeySerial {
    pub fn parse(text: &str) -> Option<KeySerial> {
        let valid = (1..=SERIAL_LEN_MAX).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        valid.then(|| KeySerial(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeySerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an uploaded public key was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyProblem {
    /// Not a `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo) PEM of the named algorithm.
    NotSpkiPem,
    /// An RSA modulus outside 2048–4096 bits.
    RsaSize { bits: u32 },
    /// An Ed25519 point of small order: anything verifies under it.
    WeakEd25519,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::NotSpkiPem => f.write_str(
                "public_key is not a PEM \"PUBLIC KEY\" (SubjectPublicKeyInfo) of the named algorithm",
            ),
            KeyProblem::RsaSize { bits } => write!(
                f,
                "an RSA key of {bits} bits; {RSA_BITS_MIN} to {RSA_BITS_MAX} bits are accepted"
            ),
            KeyProblem::WeakEd25519 => f.write_str("a weak Ed25519 key (a point of small order)"),
        }
    }
}

/// A merchant's public key, parsed and checked.
#[derive(Clone)]
pub enum MerchantPublicKey {
    Rsa(Box<rsa::PublicKey>),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl MerchantPublicKey {
    /// Parses a SubjectPublicKeyInfo PEM and checks that it is a key of `algorithm` that
    /// zhifu accepts.
    pub fn parse(algorithm: KeyAlgorithm, pem: &str) -> Result<MerchantPublicKey, KeyProblem> {
        if pem.len() > PUBLIC_KEY_PEM_LEN_MAX {
            return Err(KeyProblem::NotSpkiPem);
        }
        // Surrounding blank lines are how PEM files usually end; the armour itself is strict.
        let pem = pem.trim();
        match algorithm {
            KeyAlgorithm::RsaSha256 => {
                let key =
                    rsa::PublicKey::from_public_key_pem(pem).map_err(|_| KeyProblem::NotSpkiPem)?;
                let bits = key.n().as_ref().bit_width_vartime();
                if !(RSA_BITS_MIN..=RSA_BITS_MAX).contains(&bits) {
                    return Err(KeyProblem::RsaSize { bits });
                }
                Ok(MerchantPublicKey::Rsa(Box::new(key)))
            }
            KeyAlgorithm::Ed25519 => {
                let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                    .map_err(|_| KeyProblem::NotSpkiPem)?;
                if key.is_weak() {
                    return Err(KeyProblem::WeakEd25519);
                }
                Ok(MerchantPublicKey::Ed25519(key))
            }
        }
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            MerchantPublicKey::Rsa(_) => KeyAlgorithm::RsaSha256,
            MerchantPublicKey::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    /// True when `signature` is this key's over exactly `message`. Ed25519 is verified
    /// strictly (RFC 8032 §5.1.7 with the canonical-encoding checks), so that no second,
    /// malleated signature of the same request verifies.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            MerchantPublicKey::Rsa(key) => key
                .pkcs1v15_verify::<rsa::sha2::Sha256>(message, signature)
                .is_ok(),
            MerchantPublicKey::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify_strict(message, &signature).is_ok()),
        }
    }

    /// The canonical PEM (LF line endings), as stored.
    pub fn to_pem(&self) -> String {
        let encoded = match self {
            MerchantPublicKey::Rsa(key) => key.to_public_key_pem(LineEnding::LF),
            MerchantPublicKey::Ed25519(key) => key.to_public_key_pem(LineEnding::LF),
        };
        encoded.expect("a parsed key encodes")
    }

    /// The DER SubjectPublicKeyInfo, for fingerprints.
    pub fn to_der(&self) -> Vec<u8> {
        let encoded = match self {
            MerchantPublicKey::Rsa(key) => key.to_public_key_der(),
            MerchantPublicKey::Ed25519(key) => key.to_public_key_der(),
        };
        encoded.expect("a parsed key encodes").into_vec()
    }

    /// Uppercase hex of the first 20 bytes of SHA-256 over the DER SubjectPublicKeyInfo: what
    /// the platform names its own keys by.
    pub fn fingerprint(&self) -> String {
        sha2::Sha256::digest(self.to_der())[..20]
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect()
    }
}

impl fmt::Debug for MerchantPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MerchantPublicKey::Rsa(key) => write!(f, "RSA public key ({} bits)", key.size() * 8),
            MerchantPublicKey::Ed25519(_) => f.write_str("Ed25519 public key"),
        }
    }
}

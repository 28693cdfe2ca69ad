//! The platform's own signing keys: one Ed25519 and one RSA-2048 key, each named by a serial
//! (the fingerprint of its public key), with which every response of the merchant API is
//! signed over `TIMESTAMP\nNONCE\nBODY\n`. Merchants fetch the public halves by serial.
//!
//! The keys are kept by the edge as PKCS#8 PEM (`zhifu serve` writes them beside its secret on
//! first start); this module parses, generates and uses them. `Debug` shows serials only.

use super::keys::{KeyAlgorithm, MerchantPublicKey};
use super::signature::response_message;
use base64ct::{Base64, Encoding};
use ed25519_dalek::Signer;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::pkcs8::LineEnding;
use std::fmt;

/// The size of the platform's RSA key: what WeChat Pay's platform keys use, and what every
/// RSA library verifies quickly.
pub const PLATFORM_RSA_BITS: usize = 2048;

/// A PKCS#8 PEM private key, wiped from memory when dropped.
pub type PrivateKeyPem = rsa::pkcs8::der::zeroize::Zeroizing<String>;

#[derive(Debug)]
pub enum PlatformKeyError {
    /// Not a PKCS#8 PEM private key of the algorithm, or an RSA key of another size.
    Unreadable(KeyAlgorithm),
    /// The operating system gave no randomness.
    Randomness,
}

impl fmt::Display for PlatformKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformKeyError::Unreadable(algorithm) => write!(
                f,
                "not a PKCS#8 PEM private key of {} ({PLATFORM_RSA_BITS} bits for RSA)",
                algorithm.code()
            ),
            PlatformKeyError::Randomness => f.write_str("no randomness from the system"),
        }
    }
}

impl std::error::Error for PlatformKeyError {}

enum PrivateKey {
    Rsa(Box<rsa::PrivateKey>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

/// One platform key pair.
pub struct PlatformKey {
    serial: String,
    private: PrivateKey,
    public: MerchantPublicKey,
}

impl PlatformKey {
    pub fn from_pkcs8_pem(
        algorithm: KeyAlgorithm,
        pem: &str,
    ) -> Result<PlatformKey, PlatformKeyError> {
        let unreadable = || PlatformKeyError::Unreadable(algorithm);
        let (private, public) = match algorithm {
            KeyAlgorithm::RsaSha256 => {
                let key = rsa::PrivateKey::from_pkcs8_pem(pem).map_err(|_| unreadable())?;
                let public = MerchantPublicKey::Rsa(Box::new(key.to_public_key()));
                if rsa::traits::PublicKeyParts::size(key.as_public_key()) * 8 != PLATFORM_RSA_BITS {
                    return Err(unreadable());
                }
                (PrivateKey::Rsa(Box::new(key)), public)
            }
            KeyAlgorithm::Ed25519 => {
                let key =
                    ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|_| unreadable())?;
                let public = MerchantPublicKey::Ed25519(key.verifying_key());
                (PrivateKey::Ed25519(Box::new(key)), public)
            }
        };
        Ok(PlatformKey {
            serial: public.fingerprint(),
            private,
            public,
        })
    }

    /// A new key of `algorithm`, from the operating system's randomness, as PKCS#8 PEM.
    pub fn generate_pkcs8_pem(algorithm: KeyAlgorithm) -> Result<PrivateKeyPem, PlatformKeyError> {
        let pem = match algorithm {
            KeyAlgorithm::RsaSha256 => {
                rsa::PrivateKey::new(&mut getrandom::SysRng, PLATFORM_RSA_BITS)
                    .map_err(|_| PlatformKeyError::Randomness)?
                    .to_pkcs8_pem(LineEnding::LF)
            }
            KeyAlgorithm::Ed25519 => {
                let mut seed = rsa::pkcs8::der::zeroize::Zeroizing::new([0u8; 32]);
                getrandom::fill(seed.as_mut()).map_err(|_| PlatformKeyError::Randomness)?;
                ed25519_dalek::SigningKey::from_bytes(&seed).to_pkcs8_pem(LineEnding::LF)
            }
        };
        Ok(pem.expect("a generated key encodes"))
    }

    pub fn serial(&self) -> &str {
        &self.serial
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.public.algorithm()
    }

    /// The public half as SubjectPublicKeyInfo PEM.
    pub fn public_key_pem(&self) -> String {
        self.public.to_pem()
    }

    pub fn public_key(&self) -> &MerchantPublicKey {
        &self.public
    }

    /// A signature over `message` in standard padded base64. The platform signs responses with
    /// it; `zhifu bench pay` also holds such a key as its merchant's, to sign requests.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        Base64::encode_string(&self.sign(message))
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.private {
            PrivateKey::Rsa(key) => key
                .pkcs1v15_sign::<rsa::sha2::Sha256>(message)
                .expect("a 2048-bit key signs a SHA-256 digest"),
            PrivateKey::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
        }
    }
}

impl fmt::Debug for PlatformKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformKey")
            .field("serial", &self.serial)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// The headers of a signed response. `Debug` leaves the signature out.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseSignature {
    /// `Zhifu-Timestamp`: unix seconds.
    pub timestamp: String,
    /// `Zhifu-Nonce`.
    pub nonce: String,
    /// `Zhifu-Serial`: which platform key signed.
    pub serial: String,
    /// `Zhifu-Signature`: standard padded base64.
    pub signature: String,
    /// `Zhifu-Signature-Type`: `ZHIFU-ED25519` or `ZHIFU-RSA-SHA256`.
    pub signature_type: &'static str,
}

impl fmt::Debug for ResponseSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseSignature")
            .field("timestamp", &self.timestamp)
            .field("serial", &self.serial)
            .field("signature_type", &self.signature_type)
            .finish_non_exhaustive()
    }
}

/// The platform's keys, one per algorithm.
#[derive(Debug)]
pub struct PlatformKeys {
    ed25519: PlatformKey,
    rsa: PlatformKey,
}

impl PlatformKeys {
    pub fn new(ed25519: PlatformKey, rsa: PlatformKey) -> PlatformKeys {
        assert_eq!(ed25519.algorithm(), KeyAlgorithm::Ed25519);
        assert_eq!(rsa.algorithm(), KeyAlgorithm::RsaSha256);
        PlatformKeys { ed25519, rsa }
    }

    pub fn key(&self, algorithm: KeyAlgorithm) -> &PlatformKey {
        match algorithm {
            KeyAlgorithm::Ed25519 => &self.ed25519,
            KeyAlgorithm::RsaSha256 => &self.rsa,
        }
    }

    /// Every key, Ed25519 first.
    pub fn all(&self) -> [&PlatformKey; 2] {
        [&self.ed25519, &self.rsa]
    }

    /// Signs a response body with the key of `algorithm`. `timestamp_s` is the server's clock;
    /// `nonce` is fresh randomness of the caller's.
    pub fn sign_response(
        &self,
        algorithm: KeyAlgorithm,
        timestamp_s: i64,
        nonce: &str,
        body: &[u8],
    ) -> ResponseSignature {
        let key = self.key(algorithm);
        let timestamp = timestamp_s.to_string();
        let signature = key.sign(&response_message(&timestamp, nonce, body));
        ResponseSignature {
            timestamp,
            nonce: nonce.to_owned(),
            serial: key.serial.clone(),
            signature: Base64::encode_string(&signature),
            signature_type: algorithm.scheme(),
        }
    }
}

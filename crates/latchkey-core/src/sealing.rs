//! Encryption at rest for TOTP secrets: AES-256-GCM under a key that lives outside the database.
//!
//! A sealed value is `[version 1][key id, 8 bytes][nonce, 12 bytes][ciphertext + tag]`. The key
//! id lets a keyring hold old keys beside the current one so keys can rotate. The associated
//! data binds a ciphertext to its row (an authenticator id), so ciphertexts cannot be swapped
//! between rows. Other purposes (recovery-code hashes, form tokens) get subkeys derived from
//! the key (`SealingKey::derive`), never the key itself. This module never logs and never
//! returns a key or a plaintext in an error.

use aes_gcm::{
    Aes256Gcm,
    aead::{Aead, KeyInit, Nonce, Payload},
};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::{SecretBytes, entropy};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// Key length in bytes (AES-256).
pub const KEY_LEN: usize = 32;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SealingError {
    #[error(
        "the secret key must be base64 of exactly 32 bytes (`openssl rand -base64 32` makes one)"
    )]
    BadKey,
    #[error("a sealed value is malformed")]
    Malformed,
    #[error("a sealed value was made with a key that is not configured (key id {0})")]
    UnknownKey(String),
    #[error("a sealed value failed authentication (wrong key or tampered data)")]
    Inauthentic,
    #[error(transparent)]
    Entropy(#[from] entropy::EntropyError),
}

/// A 256-bit sealing key with its id.
#[derive(Clone)]
pub struct SealingKey {
    key: SecretBytes,
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealingKey(id {})", self.id_hex())
    }
}

impl SealingKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealingError> {
        if bytes.len() != KEY_LEN {
            return Err(SealingError::BadKey);
        }
        let digest = Sha256::new()
            .chain_update(b"latchkey key id v1\0")
            .chain_update(bytes)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Ok(Self {
            key: SecretBytes::new(bytes.to_vec()),
            id,
        })
    }

    /// Parse standard base64 (what `openssl rand -base64 32` prints), surrounding white space
    /// ignored.
    pub fn from_base64(text: &str) -> Result<Self, SealingError> {
        let bytes = data_encoding::BASE64
            .decode(text.trim().as_bytes())
            .map_err(|_| SealingError::BadKey)?;
        let bytes = SecretBytes::new(bytes);
        Self::from_bytes(bytes.expose())
    }

    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Result<Self, SealingError> {
        let bytes = SecretBytes::new(entropy::random_bytes::<KEY_LEN>()?.to_vec());
        Self::from_bytes(bytes.expose())
    }

    /// The key as base64, for writing the key file once. Never log it.
    pub fn to_base64(&self) -> crate::SecretString {
        crate::SecretString::new(data_encoding::BASE64.encode(self.key.expose()))
    }

    /// The key id in hex: also the fingerprint the database records, so a node started with
    /// another key refuses to run. It reveals nothing about the key (a domain-separated hash).
    pub fn id_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.id)
    }

    fn cipher(&self) -> Result<Aes256Gcm, SealingError> {
        Aes256Gcm::new_from_slice(self.key.expose()).map_err(|_| SealingError::BadKey)
    }
}

/// The current key, used to seal, and older keys still accepted to open.
#[derive(Debug, Clone)]
pub struct Keyring {
    primary: SealingKey,
    previous: Vec<SealingKey>,
}

impl Keyring {
    pub fn new(primary: SealingKey) -> Self {
        Self {
            primary,
            previous: Vec::new(),
        }
    }

    #[must_use]
    pub fn with_previous(mut self, key: SealingKey) -> Self {
        self.previous.push(key);
        self
    }

    pub fn primary(&self) -> &SealingKey {
        &self.primary
    }

    /// Seal `plaintext`, bound to `aad` (the row it belongs to).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealingError> {
        let nonce_bytes = entropy::random_bytes::<NONCE_LEN>()?;
        let nonce = Nonce::<Aes256Gcm>::from(nonce_bytes);
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        out.push(VERSION);
        out.extend_from_slice(&self.primary.id);
        out.extend_from_slice(&nonce_bytes);
        // The header is authenticated too, so no field of it can be changed unnoticed.
        let bound = bind(&out[..=KEY_ID_LEN], aad);
        let ciphertext = self
            .primary
            .cipher()?
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &bound,
                },
            )
            .map_err(|_| SealingError::Inauthentic)?;
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Open a sealed value made by any key of the ring, checking it is bound to `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, SealingError> {
        if sealed.len() < HEADER_LEN + 16 || sealed.first() != Some(&VERSION) {
            return Err(SealingError::Malformed);
        }
        let (id, rest) = sealed[1..].split_at(KEY_ID_LEN);
        let (nonce_bytes, ciphertext) = rest.split_at(NONCE_LEN);
        let key = std::iter::once(&self.primary)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| SealingError::UnknownKey(data_encoding::HEXLOWER.encode(id)))?;
        let mut nonce_arr = [0u8; NONCE_LEN];
        nonce_arr.copy_from_slice(nonce_bytes);
        let nonce = Nonce::<Aes256Gcm>::from(nonce_arr);
        key.cipher()?
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &bind(&sealed[..=KEY_ID_LEN], aad),
                },
            )
            .map(SecretBytes::new)
            .map_err(|_| SealingError::Inauthentic)
    }
}

/// The associated data actually authenticated: version and key id, then the caller's.
fn bind(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut bound = Vec::with_capacity(header.len() + aad.len());
    bound.extend_from_slice(header);
    bound.extend_from_slice(aad);
    bound
}

impl SealingKey {
    /// A subkey for another purpose (e.g. keying recovery-code hashes), derived with
    /// HMAC-SHA256 under a label, so the sealing key itself is never used twice.
    pub fn derive(&self, label: &str) -> SecretBytes {
        SecretBytes::new(crate::token::hmac_sha256(self.key.expose(), &[label.as_bytes()]).to_vec())
    }
}

impl Keyring {
    /// Every key of the ring, the current one first.
    pub fn keys(&self) -> impl Iterator<Item = &SealingKey> {
        std::iter::once(&self.primary).chain(&self.previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::new(SealingKey::generate().unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn round_trip_and_binding() {
        let r = ring();
        let sealed = r.seal(b"top secret", b"row-1").unwrap_or_default();
        assert_eq!(
            r.open(&sealed, b"row-1").map(|s| s.expose().to_vec()),
            Ok(b"top secret".to_vec())
        );
        assert_eq!(
            r.open(&sealed, b"row-2").err(),
            Some(SealingError::Inauthentic)
        );
        assert!(!sealed.windows(10).any(|w| w == b"top secret"));
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let r = ring();
        let mut sealed = r.seal(b"top secret", b"row").unwrap_or_default();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(
            r.open(&sealed, b"row").err(),
            Some(SealingError::Inauthentic)
        );
        assert_eq!(r.open(b"", b"row").err(), Some(SealingError::Malformed));
        assert_eq!(
            r.open(&[1u8; 30], b"row").err(),
            Some(SealingError::Malformed)
        );
    }

    #[test]
    fn other_key_is_detected_and_rotation_works() {
        let old = ring();
        let sealed = old.seal(b"secret", b"row").unwrap_or_default();
        let new = ring();
        assert!(matches!(
            new.open(&sealed, b"row"),
            Err(SealingError::UnknownKey(_))
        ));
        let rotated = new.with_previous(old.primary().clone());
        assert!(rotated.open(&sealed, b"row").is_ok());
    }

    #[test]
    fn base64_keys() {
        let k = SealingKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let again = SealingKey::from_base64(&format!("  {}\n", k.to_base64().expose()));
        assert_eq!(again.map(|k2| k2.id_hex()), Ok(k.id_hex()));
        assert_eq!(
            SealingKey::from_base64("c2hvcnQ=").err(),
            Some(SealingError::BadKey)
        );
        assert_eq!(
            SealingKey::from_base64("not base64!").err(),
            Some(SealingError::BadKey)
        );
        assert!(!format!("{k:?}").contains(k.to_base64().expose()));
    }
}

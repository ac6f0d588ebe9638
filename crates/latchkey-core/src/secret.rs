//! Wrappers for secret material: they print as `[redacted]` and are zeroed when dropped.
//!
//! Every password, TOTP secret and token travels in one of these. They must never gain a
//! `Display`, `Serialize` or a `Debug` that shows the content.

use std::fmt;
use zeroize::Zeroizing;

/// A secret string (a password, a token as typed or handed out).
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The clear text. Call sites are the few places that must see it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

/// Read from a request body (a password, a code): the clear text goes straight into the
/// redacting, zeroizing wrapper.
impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

/// Secret bytes (a TOTP key, an encryption key).
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(value: Vec<u8>) -> Self {
        Self(Zeroizing::new(value))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(value: Vec<u8>) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted; {}])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_content() {
        let s = SecretString::new("hunter2-correct-horse".to_owned());
        let b = SecretBytes::new(b"\x01\x02supersecret".to_vec());
        let shown = format!("{s:?} {b:?} {:?}", Some(&s));
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("supersecret"));
        assert!(shown.contains("redacted"));
    }
}

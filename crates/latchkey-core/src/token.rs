//! Opaque bearer secrets: session tokens, login-transaction tokens, setup-link tokens, API
//! tokens, recovery codes, and the pages' CSRF form tokens.
//!
//! A token is 256 bits from the OS CSPRNG, base64url without padding (43 characters), so it
//! fits a URL, a cookie and a header. The database stores only its SHA-256 ([`TokenHash`]): a
//! dump does not yield a usable token. A hash of a 256-bit random value needs no salt or
//! stretching. A recovery code has 50 bits, so it is stored as an HMAC under a key kept out of
//! the database. Never log a token; log its record id.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::{SecretString, entropy};

/// A freshly minted or presented token, in clear.
#[derive(Clone, Debug)]
pub struct Token(SecretString);

/// The stored form of a token: lowercase hex of its SHA-256.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Harmless, but short: enough to correlate, not worth printing whole.
        write!(f, "TokenHash({}…)", self.0.get(..8).unwrap_or_default())
    }
}

impl TokenHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wrap a hash read back from storage.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// Whether two hashes are equal, in time independent of where they differ (a client
    /// secret's check: SPEC §9).
    pub fn matches(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

/// Longest token text accepted as input: anything longer is refused before hashing.
pub const MAX_TOKEN_INPUT: usize = 256;

impl Token {
    /// 256 random bits, base64url.
    pub fn generate() -> Result<Self, entropy::EntropyError> {
        let bytes = zeroize::Zeroizing::new(entropy::random_bytes::<32>()?);
        Ok(Self(SecretString::new(
            data_encoding::BASE64URL_NOPAD.encode(&*bytes),
        )))
    }

    /// A token presented by a client. `None` when it cannot be one of ours (empty, too long,
    /// characters outside base64url), so lookups of garbage never reach the database.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let ok = !text.is_empty()
            && text.len() <= MAX_TOKEN_INPUT
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(SecretString::new(text.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    pub fn hash(&self) -> TokenHash {
        hash_text(self.0.expose())
    }
}

fn hash_text(text: &str) -> TokenHash {
    TokenHash(data_encoding::HEXLOWER.encode(&Sha256::digest(text.as_bytes())))
}

/// Whether a PKCE `code_verifier` (RFC 7636 §4.1: 43 to 128 unreserved characters) is the one
/// whose S256 transform is `challenge` (§4.6), compared in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use subtle::ConstantTimeEq;
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let transformed = data_encoding::BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()));
    well_formed && bool::from(transformed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// The alphabet of recovery codes: lowercase Crockford base32 (no i, l, o, u).
const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A recovery code: two groups of five Crockford characters (50 bits), e.g. `7kq2m-9xpd4`.
#[derive(Clone, Debug)]
pub struct RecoveryCode(SecretString);

impl RecoveryCode {
    pub fn generate() -> Result<Self, entropy::EntropyError> {
        let bytes = zeroize::Zeroizing::new(entropy::random_bytes::<10>()?);
        let mut s = String::with_capacity(11);
        for (i, b) in bytes.iter().enumerate() {
            if i == 5 {
                s.push('-');
            }
            s.push(char::from(CROCKFORD[usize::from(b & 0x1f)]));
        }
        Ok(Self(SecretString::new(s)))
    }

    /// Parse user input: any case, with or without the dash, spaces ignored; Crockford's
    /// look-alikes are read as what they look like (`i`/`l` as `1`, `o` as `0`).
    pub fn parse(input: &str) -> Option<Self> {
        if input.len() > 64 {
            return None;
        }
        let mut chars = String::with_capacity(10);
        for c in input.chars() {
            let c = match c.to_ascii_lowercase() {
                ' ' | '-' => continue,
                'i' | 'l' => '1',
                'o' => '0',
                c if c.is_ascii() && CROCKFORD.contains(&(c as u8)) => c,
                _ => return None,
            };
            chars.push(c);
        }
        if chars.len() != 10 {
            return None;
        }
        chars.insert(5, '-');
        Some(Self(SecretString::new(chars)))
    }

    /// The canonical form `xxxxx-xxxxx`, to show once.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The stored form: HMAC-SHA256 under a server-side key (`pepper`, derived from the
    /// sealing key, never in the database) over the owner's id and the code. A stolen database
    /// alone does not let anyone test the 2^50 candidates offline; equal codes of two users
    /// differ.
    pub fn hash(&self, user_id: &str, pepper: &[u8]) -> TokenHash {
        let mac = hmac_sha256(
            pepper,
            &[
                b"latchkey recovery v2\0",
                user_id.as_bytes(),
                b"\0",
                self.0.expose().as_bytes(),
            ],
        );
        TokenHash(data_encoding::HEXLOWER.encode(&mac))
    }
}

/// HMAC-SHA256 of the concatenated `parts` under `key` (any length).
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, KeyInit, Mac};
    // HMAC takes keys of any length: `new_from_slice` cannot fail (RFC 2104 §2).
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| {
        <Hmac<Sha256> as KeyInit>::new(&hmac::digest::Key::<Hmac<Sha256>>::default())
    });
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The CSRF token a form carries for the browser whose CSRF cookie holds `cookie`: an HMAC of
/// the cookie under the server's CSRF key (the signed double-submit pattern), so a token can
/// be neither guessed nor taken from another browser.
pub fn csrf_token(key: &[u8], cookie: &str) -> String {
    data_encoding::BASE64URL_NOPAD
        .encode(&hmac_sha256(key, &[b"latchkey-csrf\0", cookie.as_bytes()]))
}

/// Whether `presented` is the CSRF token for `cookie`, compared in constant time.
pub fn csrf_matches(key: &[u8], cookie: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = csrf_token(key, cookie);
    expected.len() == presented.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// A device cookie's value (OWASP's "device cookies"): `{user_id}.{issued_at}.{mac}`, where
/// the MAC (128 bits of HMAC-SHA256 under the server's device key) binds the environment, the
/// user and the time. It proves that this browser completed a login for that user; it grants
/// nothing by itself.
pub fn device_token(key: &[u8], env: &str, user_id: &str, issued_at: i64) -> String {
    let issued = issued_at.to_string();
    let mac = device_mac(key, env, user_id, &issued);
    format!("{user_id}.{issued}.{mac}")
}

/// The user a device cookie was issued to, when it is ours for `env`, unaltered, and not older
/// than `max_age` seconds at `now`. The MAC is compared in constant time.
pub fn device_user<'a>(
    key: &[u8],
    env: &str,
    token: &'a str,
    now: i64,
    max_age: i64,
) -> Option<&'a str> {
    use subtle::ConstantTimeEq;
    if token.len() > 200 {
        return None;
    }
    let mut parts = token.rsplitn(3, '.');
    let (mac, issued, user_id) = (parts.next()?, parts.next()?, parts.next()?);
    let at: i64 = issued.parse().ok()?;
    if user_id.is_empty() || at > now.saturating_add(60) || now.saturating_sub(at) > max_age {
        return None;
    }
    let expected = device_mac(key, env, user_id, issued);
    let same = expected.len() == mac.len() && bool::from(expected.as_bytes().ct_eq(mac.as_bytes()));
    same.then_some(user_id)
}

fn device_mac(key: &[u8], env: &str, user_id: &str, issued: &str) -> String {
    let mac = hmac_sha256(
        key,
        &[
            b"latchkey-device\0",
            env.as_bytes(),
            b"\0",
            user_id.as_bytes(),
            b"\0",
            issued.as_bytes(),
        ],
    );
    data_encoding::BASE64URL_NOPAD.encode(&mac[..16])
}

#[cfg(test)]
mod tests {
    #[test]
    fn pkce_s256_is_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_matches("short", challenge));
        assert!(!pkce_matches(&format!("{verifier}!"), challenge));
    }

    use super::*;

    #[test]
    fn device_tokens_name_their_user_only_unaltered_in_their_environment_and_time() {
        let key = b"device key";
        let t = device_token(key, "prod", "0190-user", 1_000);
        assert_eq!(device_user(key, "prod", &t, 1_000, 90), Some("0190-user"));
        assert_eq!(device_user(key, "prod", &t, 1_090, 90), Some("0190-user"));
        assert_eq!(device_user(key, "prod", &t, 1_091, 90), None, "too old");
        assert_eq!(
            device_user(key, "staging", &t, 1_000, 90),
            None,
            "another environment"
        );
        assert_eq!(device_user(b"other key", "prod", &t, 1_000, 90), None);
        let other = t.replacen("0190-user", "0190-evil", 1);
        assert_eq!(
            device_user(key, "prod", &other, 1_000, 90),
            None,
            "another user"
        );
        let later = t.replacen(".1000.", ".1050.", 1);
        assert_eq!(
            device_user(key, "prod", &later, 1_060, 90),
            None,
            "another time"
        );
        for junk in ["", "a.b", "..", "x.1000.", &"a".repeat(300)] {
            assert_eq!(device_user(key, "prod", junk, 1_000, 90), None, "{junk:?}");
        }
    }

    #[test]
    fn csrf_tokens_bind_to_their_cookie_and_key() {
        let t = csrf_token(b"key one", "cookie-a");
        assert!(csrf_matches(b"key one", "cookie-a", &t));
        assert!(!csrf_matches(b"key one", "cookie-b", &t));
        assert!(!csrf_matches(b"key two", "cookie-a", &t));
        assert!(!csrf_matches(b"key one", "cookie-a", ""));
        assert!(!csrf_matches(b"key one", "cookie-a", &t[..t.len() - 1]));
    }

    #[test]
    fn tokens_are_256_bits_and_url_safe() {
        let t = Token::generate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.expose().len(), 43);
        assert!(Token::parse(t.expose()).is_some());
        assert_eq!(
            t.hash(),
            Token::parse(t.expose()).map_or_else(|| panic!("own token refused"), |p| p.hash())
        );
        assert_eq!(t.hash().as_str().len(), 64);
        assert!(!format!("{t:?}").contains(t.expose()));
    }

    #[test]
    fn garbage_tokens_are_not_tokens() {
        let long = "a".repeat(MAX_TOKEN_INPUT + 1);
        for bad in [
            "",
            "  ",
            "a b",
            "abc/def",
            "abc=",
            "é",
            long.as_str(),
            "a\0b",
        ] {
            assert!(Token::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn recovery_codes_have_the_documented_shape() {
        for _ in 0..100 {
            let c = RecoveryCode::generate().unwrap_or_else(|e| panic!("{e}"));
            let s = c.expose();
            assert_eq!(s.len(), 11);
            assert_eq!(s.as_bytes()[5], b'-');
            assert!(
                s.bytes()
                    .filter(|b| *b != b'-')
                    .all(|b| CROCKFORD.contains(&b))
            );
        }
    }

    #[test]
    fn recovery_code_input_is_forgiving_but_exact() {
        let canonical = RecoveryCode::parse("7kq2m-9xpd4").map(|c| c.hash("u1", b"pepper"));
        for same in ["7KQ2M-9XPD4", "7kq2m9xpd4", " 7kq2m 9xpd4 "] {
            assert_eq!(
                RecoveryCode::parse(same).map(|c| c.hash("u1", b"pepper")),
                canonical,
                "{same}"
            );
        }
        assert_eq!(
            RecoveryCode::parse("lo000-00000").map(|c| c.expose().to_owned()),
            Some("10000-00000".into())
        );
        for bad in [
            "",
            "7kq2m-9xpd",
            "7kq2m-9xpd44",
            "7kq2m-9xpdu",
            "7kq2m_9xpd4",
            "７kq2m-9xpd4",
        ] {
            assert!(RecoveryCode::parse(bad).is_none(), "{bad}");
        }
        assert_ne!(
            canonical,
            RecoveryCode::parse("7kq2m-9xpd4").map(|c| c.hash("u2", b"pepper"))
        );
        assert_ne!(
            canonical,
            RecoveryCode::parse("7kq2m-9xpd4").map(|c| c.hash("u1", b"another pepper"))
        );
    }
}

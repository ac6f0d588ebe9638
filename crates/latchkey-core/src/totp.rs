//! HOTP (RFC 4226) and TOTP (RFC 6238): code generation, code parsing, verification, the
//! `otpauth://` Key URI and its QR code (SVG).
//!
//! Verification is a pure function of (secret, parameters, code, now, last accepted step,
//! window). It returns the matched step so the caller can record it with a conditional update;
//! it never reads the clock and never takes the time from a client. Codes are compared in
//! constant time and every step of the window is computed, matched or not.

use std::fmt::{self, Write as _};

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::{SecretBytes, entropy};

/// Bytes of a freshly generated TOTP secret: 160 bits (RFC 4226 §4 recommends 160).
pub const SECRET_LEN: usize = 20;
/// The widest window an environment may configure, in steps either side of now.
pub const MAX_WINDOW: u8 = 10;
/// Input longer than this is refused before any other look at it.
const MAX_CODE_INPUT: usize = 64;

/// The HMAC hash function of an authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

/// Number of digits of a code: 6 (default) or 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Digits {
    #[default]
    Six,
    Eight,
}

impl Digits {
    pub fn count(self) -> usize {
        match self {
            Self::Six => 6,
            Self::Eight => 8,
        }
    }

    fn modulus(self) -> u32 {
        match self {
            Self::Six => 1_000_000,
            Self::Eight => 100_000_000,
        }
    }

    pub fn from_count(n: u32) -> Option<Self> {
        match n {
            6 => Some(Self::Six),
            8 => Some(Self::Eight),
            _ => None,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParamsError {
    #[error("the period must be between 1 and 300 seconds")]
    Period,
    #[error("digits must be 6 or 8")]
    Digits,
    #[error("algorithm must be SHA1, SHA256 or SHA512")]
    Algorithm,
}

/// An authenticator's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TotpParams {
    algorithm: Algorithm,
    digits: Digits,
    period: u32,
}

impl Default for TotpParams {
    /// SHA1, 6 digits, 30 s: the only combination every authenticator app understands.
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Sha1,
            digits: Digits::Six,
            period: 30,
        }
    }
}

impl TotpParams {
    pub fn new(algorithm: Algorithm, digits: Digits, period: u32) -> Result<Self, ParamsError> {
        if !(1..=300).contains(&period) {
            return Err(ParamsError::Period);
        }
        Ok(Self {
            algorithm,
            digits,
            period,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn digits(&self) -> Digits {
        self.digits
    }

    pub fn period(&self) -> u32 {
        self.period
    }

    /// The time step that contains `unix_time` (RFC 6238 §4.2, T0 = 0). Times before the epoch
    /// belong to step 0: the client never supplies the time, so this only guards a broken clock.
    pub fn step_at(&self, unix_time: i64) -> u64 {
        u64::try_from(unix_time).unwrap_or(0) / u64::from(self.period)
    }
}

/// A TOTP secret. 160 random bits when Latchkey makes it.
#[derive(Clone, Debug)]
pub struct TotpSecret(SecretBytes);

impl TotpSecret {
    /// A fresh 160-bit secret from the OS CSPRNG.
    pub fn generate() -> Result<Self, entropy::EntropyError> {
        let bytes = entropy::random_bytes::<SECRET_LEN>()?;
        Ok(Self(SecretBytes::new(bytes.to_vec())))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(SecretBytes::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    /// Base32 without padding, as authenticator apps take it (RFC 4648 §6 alphabet).
    pub fn to_base32(&self) -> crate::SecretString {
        crate::SecretString::new(data_encoding::BASE32_NOPAD.encode(self.0.expose()))
    }
}

/// A code as the user typed it, parsed: exactly `digits` ASCII digits once spaces are removed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TotpCode {
    value: u32,
    digits: Digits,
}

impl fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpCode([redacted])")
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodeError {
    #[error("the code must be {0} digits")]
    Format(usize),
}

impl TotpCode {
    /// Parse user input (SECURITY T6): ASCII spaces are stripped; anything but exactly
    /// `digits` ASCII digits is refused (other Unicode digits, signs, wrong lengths, empty).
    pub fn parse(input: &str, digits: Digits) -> Result<Self, CodeError> {
        let err = CodeError::Format(digits.count());
        if input.len() > MAX_CODE_INPUT {
            return Err(err);
        }
        let mut value: u32 = 0;
        let mut count = 0usize;
        for b in input.bytes() {
            match b {
                b' ' => {}
                b'0'..=b'9' => {
                    count += 1;
                    if count > digits.count() {
                        return Err(err);
                    }
                    value = value * 10 + u32::from(b - b'0');
                }
                _ => return Err(err),
            }
        }
        if count != digits.count() {
            return Err(err);
        }
        Ok(Self { value, digits })
    }

    pub fn digits(&self) -> Digits {
        self.digits
    }
}

/// A keyed HMAC ready to be cloned for each counter, so the key schedule runs once.
#[derive(Clone)]
enum KeyedMac {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha512(Hmac<sha2::Sha512>),
}

impl KeyedMac {
    fn new(algorithm: Algorithm, key: &[u8]) -> Self {
        // HMAC accepts keys of any length (RFC 2104 §2), so `new_from_slice` cannot fail; the
        // fallback keeps this path free of panics all the same.
        fn keyed<D>(key: &[u8]) -> Hmac<D>
        where
            D: hmac::EagerHash,
            Hmac<D>: KeyInit,
        {
            <Hmac<D> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| {
                <Hmac<D> as KeyInit>::new(&hmac::digest::Key::<Hmac<D>>::default())
            })
        }
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(keyed(key)),
            Algorithm::Sha256 => Self::Sha256(keyed(key)),
            Algorithm::Sha512 => Self::Sha512(keyed(key)),
        }
    }

    /// HOTP value for `counter`, reduced to `digits` (RFC 4226 §5.3, dynamic truncation).
    fn hotp(&self, counter: u64, digits: Digits) -> u32 {
        let msg = counter.to_be_bytes();
        let raw = match self {
            Self::Sha1(m) => {
                let mut m = m.clone();
                m.update(&msg);
                truncate(&m.finalize().into_bytes())
            }
            Self::Sha256(m) => {
                let mut m = m.clone();
                m.update(&msg);
                truncate(&m.finalize().into_bytes())
            }
            Self::Sha512(m) => {
                let mut m = m.clone();
                m.update(&msg);
                truncate(&m.finalize().into_bytes())
            }
        };
        raw % digits.modulus()
    }
}

/// RFC 4226 §5.3 dynamic truncation of an HMAC result to a 31-bit number.
fn truncate(mac: &[u8]) -> u32 {
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let mut word = [0u8; 4];
    if let Some(slice) = mac.get(offset..offset + 4) {
        word.copy_from_slice(slice);
    }
    u32::from_be_bytes(word) & 0x7fff_ffff
}

/// The HOTP code for `counter`, as a number (format with leading zeros to `digits`).
pub fn hotp(key: &[u8], algorithm: Algorithm, counter: u64, digits: Digits) -> u32 {
    KeyedMac::new(algorithm, key).hotp(counter, digits)
}

/// The TOTP code at `unix_time`, zero-padded to the configured number of digits. For tests,
/// benchmarks and the enrolment screen's preview; verification uses [`verify`].
pub fn code_at(secret: &TotpSecret, params: &TotpParams, unix_time: i64) -> String {
    let value = hotp(
        secret.expose(),
        params.algorithm,
        params.step_at(unix_time),
        params.digits,
    );
    format!("{value:0width$}", width = params.digits.count())
}

/// Verify `code` at `now` (SECURITY T3, T4).
///
/// Accepts a step in `now ± window` that is strictly later than `last_step` (the last step
/// accepted for this authenticator) and returns the matched step — the latest one, if the code
/// happens to match several. The caller must record it with a conditional update so that a
/// concurrent request cannot accept the same or an earlier step.
///
/// Every step of the window is computed and compared in constant time, whether or not an
/// earlier one matched. A code whose digit count differs from `params` never matches.
pub fn verify(
    secret: &TotpSecret,
    params: &TotpParams,
    code: &TotpCode,
    now: i64,
    last_step: Option<u64>,
    window: u8,
) -> Option<u64> {
    let window = u64::from(window.min(MAX_WINDOW));
    let current = params.step_at(now);
    let first = current.saturating_sub(window);
    let last = current.saturating_add(window);
    let mac = KeyedMac::new(params.algorithm, secret.expose());
    let same_digits = subtle::Choice::from(u8::from(code.digits == params.digits));
    let mut matched: Option<u64> = None;
    for step in first..=last {
        let candidate = mac.hotp(step, params.digits);
        let equal = candidate.ct_eq(&code.value) & same_digits;
        let fresh = last_step.is_none_or(|l| step > l);
        if bool::from(equal) && fresh {
            matched = Some(step);
        }
    }
    matched
}

/// Build the `otpauth://` Key URI (Google Authenticator's Key URI Format; SECURITY E2):
/// `otpauth://totp/{Issuer}:{account}?secret=…&issuer={Issuer}&algorithm=…&digits=…&period=…`.
/// The issuer in the label and the `issuer` parameter are the same, both percent-encoded.
pub fn otpauth_uri(
    secret: &TotpSecret,
    params: &TotpParams,
    issuer: &str,
    account: &str,
) -> crate::SecretString {
    let issuer = percent_encode(issuer);
    let account = percent_encode(account);
    crate::SecretString::new(format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm={}&digits={}&period={}",
        secret.to_base32().expose(),
        params.algorithm.as_str(),
        params.digits.count(),
        params.period,
    ))
}

/// The Key URI as an inline SVG QR code (no XML declaration; presentation attributes only, so
/// it is allowed by a strict Content-Security-Policy). `None` if the URI is too long for a QR
/// code, which a URI we build never is.
pub fn qr_svg(uri: &crate::SecretString) -> Option<String> {
    let code =
        qrcode::QrCode::with_error_correction_level(uri.expose().as_bytes(), qrcode::EcLevel::M)
            .ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    let start = svg.find("<svg")?;
    Some(svg[start..].to_owned())
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    fn code(s: &str) -> TotpCode {
        match TotpCode::parse(s, Digits::Six) {
            Ok(c) => c,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parse_accepts_digits_with_spaces() {
        assert!(TotpCode::parse("123 456", Digits::Six).is_ok());
        assert!(TotpCode::parse(" 012345 ", Digits::Six).is_ok());
        assert!(TotpCode::parse("1234 5678", Digits::Eight).is_ok());
    }

    #[test]
    fn parse_refuses_everything_else() {
        let long = "1".repeat(1 << 20);
        for bad in [
            "",
            "     ",
            "12345",
            "1234567",
            "123456789",
            "-12345",
            "+123456",
            "12345a",
            "١٢٣٤٥٦",
            "１２３４５６",
            "123\u{0}456",
            "123\t456",
            "12.3456",
            "0x1234",
            long.as_str(),
        ] {
            assert!(
                TotpCode::parse(bad, Digits::Six).is_err(),
                "{bad:?} was accepted"
            );
        }
        assert!(TotpCode::parse("123456", Digits::Eight).is_err());
    }

    #[test]
    fn leading_zeros_are_kept() {
        // RFC 6238: SHA1 at t=1111111109 is 07081804 (8 digits); 6 digits: 081804.
        let p = TotpParams::new(Algorithm::Sha1, Digits::Eight, 30);
        let p = p.unwrap_or_default();
        assert_eq!(code_at(&rfc_secret(), &p, 1_111_111_109), "07081804");
        assert_eq!(
            code_at(&rfc_secret(), &TotpParams::default(), 1_111_111_109),
            "081804"
        );
    }

    #[test]
    fn window_accepts_neighbours_only() {
        let s = rfc_secret();
        let p = TotpParams::default();
        let now = 1_000_000_000_i64;
        let t = p.step_at(now);
        for (offset, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let at = now + offset * 30;
            let c = code(&code_at(&s, &p, at));
            let got = verify(&s, &p, &c, now, None, 1);
            let step = t.checked_add_signed(offset);
            assert_eq!(got.is_some(), ok, "offset {offset}");
            if ok {
                assert_eq!(got, step);
            }
        }
        // Window 0: only the current step.
        let prev = code(&code_at(&s, &p, now - 30));
        assert_eq!(verify(&s, &p, &prev, now, None, 0), None);
        let cur = code(&code_at(&s, &p, now));
        assert_eq!(verify(&s, &p, &cur, now, None, 0), Some(t));
    }

    #[test]
    fn steps_at_or_before_the_last_accepted_are_refused() {
        let s = rfc_secret();
        let p = TotpParams::default();
        let now = 1_000_000_000_i64;
        let t = p.step_at(now);
        let cur = code(&code_at(&s, &p, now));
        assert_eq!(verify(&s, &p, &cur, now, Some(t), 1), None);
        assert_eq!(verify(&s, &p, &cur, now, Some(t - 1), 1), Some(t));
        // A T+1 code used early burns T and T-1.
        let prev = code(&code_at(&s, &p, now - 30));
        assert_eq!(verify(&s, &p, &prev, now, Some(t + 1), 1), None);
        assert_eq!(verify(&s, &p, &cur, now, Some(t + 1), 1), None);
    }

    #[test]
    fn early_times_neither_underflow_nor_panic() {
        let s = rfc_secret();
        let p = TotpParams::default();
        for now in [-5_i64, 0, 1, 29] {
            let c = code(&code_at(&s, &p, now));
            assert_eq!(verify(&s, &p, &c, now, None, 1), Some(0));
            assert_eq!(verify(&s, &p, &c, now, None, MAX_WINDOW), Some(0));
        }
        assert!(
            verify(
                &s,
                &p,
                &code("000000"),
                i64::MAX,
                Some(u64::MAX),
                MAX_WINDOW
            )
            .is_none()
        );
    }

    #[test]
    fn otpauth_uri_follows_the_key_uri_format() {
        let uri = otpauth_uri(
            &rfc_secret(),
            &TotpParams::default(),
            "Acme Prod",
            "a+b@example.com",
        );
        assert_eq!(
            uri.expose(),
            "otpauth://totp/Acme%20Prod:a%2Bb%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Acme%20Prod&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn generated_secrets_are_160_bits_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let s = TotpSecret::generate().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.expose().len(), 20);
            let b32 = s.to_base32();
            assert_eq!(b32.expose().len(), 32);
            assert!(!b32.expose().contains('='));
            assert!(seen.insert(b32.expose().to_owned()));
        }
    }

    #[test]
    fn debug_of_secret_and_code_is_redacted() {
        let shown = format!("{:?} {:?}", rfc_secret(), code("123456"));
        assert!(!shown.contains("123456"));
        assert!(!shown.contains("1234567890"));
    }
}

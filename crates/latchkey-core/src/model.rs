//! Validated types for everything that enters from outside (parse, don't validate), and the
//! entities of SPEC §1. The domain never handles a raw `String` email or slug.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

use crate::HumanDuration;

/// Why a value was refused, in words fit for the person who typed it.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
#[error("{0}")]
pub struct InvalidInput(pub String);

fn invalid(msg: impl Into<String>) -> InvalidInput {
    InvalidInput(msg.into())
}

/// An environment's slug: `[a-z0-9][a-z0-9-]{0,62}`. Immutable once created.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EnvSlug(String);

/// The slug of the operators' environment, created on first start.
pub const SYSTEM: &str = "system";

impl EnvSlug {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let bytes = s.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 63
            && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
            && bytes
                .iter()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid(format!(
                "`{}` is not a valid environment slug: use 1 to 63 lowercase letters, digits and \
                 dashes, starting with a letter or digit (like `prod` or `eu-staging`)",
                s.chars().take(70).collect::<String>().escape_debug()
            )))
        }
    }

    pub fn system() -> Self {
        Self(SYSTEM.to_owned())
    }

    pub fn is_system(&self) -> bool {
        self.0 == SYSTEM
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for EnvSlug {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// An email address, stored as given (trimmed, NFC) and compared by its normalised form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// A new address: [`Email::from_stored`]'s checks, and no invisible formatting character
    /// (see [`is_hidden_format`]) and no character whose compatibility form differs (full-width
    /// letters, ligatures, circled digits…): `ＡＬＩＣＥ@example.com` and `alice@example.com`
    /// are one address to any application that applies NFKC, so only the plain form is taken.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let email = Self::from_stored(s)?;
        if email.0.chars().any(is_hidden_format) {
            return Err(invalid(
                "an email address cannot hold invisible formatting characters",
            ));
        }
        let plain: String = email.0.nfkc().collect();
        if plain != email.0 {
            return Err(invalid(format!(
                "this address holds characters with a plainer form (full-width letters, \
                 ligatures and the like); write it as {plain}"
            )));
        }
        Ok(email)
    }

    /// Whether an address would be refused as new today by [`Email::parse`] (one stored before
    /// that check existed): for `latchkey user check`.
    pub fn is_ambiguous(&self) -> bool {
        Self::parse(&self.0).is_err()
    }

    /// An address as stored, or as given to find a stored one: a pragmatic check, not RFC
    /// 5322 — one `@`, a non-empty local part, a domain with a dot or `localhost`, no white
    /// space or control characters, at most 254 bytes.
    pub fn from_stored(s: &str) -> Result<Self, InvalidInput> {
        let s = nfc(s.trim());
        let err = || invalid("enter an email address like name@example.com");
        if s.is_empty() || s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err());
        }
        let (local, domain) = s.split_once('@').ok_or_else(err)?;
        let domain_ok = !domain.is_empty()
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && (domain.contains('.') || domain.eq_ignore_ascii_case("localhost"));
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(err());
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key for uniqueness and look-ups: NFC, then Unicode lower case.
    pub fn normalized(&self) -> String {
        normalize_email(&self.0)
    }

    /// The part before the `@`, for the password blocklist.
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map_or(self.0.as_str(), |(l, _)| l)
    }
}

/// Invisible characters that change how text around them is shown: Unicode's format
/// characters (general category Cf: bidirectional marks, overrides and isolates, zero-width
/// space and word joiner, the byte-order mark, interlinear annotations, tags…) and the line and
/// paragraph separators (Zl, Zp). The zero-width non-joiner and joiner (U+200C, U+200D) are
/// let through: Persian, Hindi and other scripts spell names with them.
pub fn is_hidden_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{180E}'..='\u{180F}'
        | '\u{200B}'
        | '\u{200E}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}')
}

/// `s` in NFC, without a copy through the normaliser when it already is (almost always: ASCII,
/// or text that was stored normalised and is read back).
fn nfc(s: &str) -> String {
    if s.is_ascii()
        || unicode_normalization::is_nfc_quick(s.chars())
            == unicode_normalization::IsNormalized::Yes
    {
        s.to_owned()
    } else {
        s.nfc().collect()
    }
}

/// The normalised form of any email-like text (also of unparseable input, so failed logins
/// for garbage are counted like any other).
pub fn normalize_email(s: &str) -> String {
    nfc(s.trim()).to_lowercase()
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A person's or an environment's display name: 1 to 200 characters, no control characters,
/// and (when new) no invisible formatting character.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    /// A new name: [`DisplayName::from_stored`]'s checks, and no bidirectional override or
    /// isolate, no line or paragraph separator, no byte-order mark or other invisible format
    /// character ([`is_hidden_format`]). A name travels in `X-Latchkey-Name` to applications
    /// and into audit logs and pages, where such characters reorder or hide what is shown.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let name = Self::from_stored(s)?;
        if name.0.chars().any(is_hidden_format) {
            return Err(invalid(
                "a name cannot hold invisible formatting characters (direction marks, \
                 line separators, zero-width spaces)",
            ));
        }
        Ok(name)
    }

    /// Whether a name would be refused as new today (one stored before that check existed).
    pub fn is_suspicious(&self) -> bool {
        self.0.chars().any(is_hidden_format)
    }

    /// A name as stored: 1 to 200 characters, no control characters.
    pub fn from_stored(s: &str) -> Result<Self, InvalidInput> {
        let s = nfc(s.trim());
        if s.is_empty() || s.chars().count() > 200 || s.chars().any(char::is_control) {
            return Err(invalid(
                "a name must be 1 to 200 characters, without control characters",
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? } $what:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(invalid(format!(
                        concat!("`{}` is not a valid ", $what, "; use one of: {}"),
                        s.chars().take(40).collect::<String>().escape_debug(),
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Whether an environment asks for a second factor (SPEC §2).
    MfaPolicy { Off = "off", Optional = "optional", Required = "required" } "MFA policy"
);
string_enum!(
    /// A user's role in their environment.
    Role { User = "user", Admin = "admin" } "role"
);
string_enum!(
    /// A user's life cycle.
    UserState { Invited = "invited", Active = "active", Disabled = "disabled" } "user state"
);

/// Per-account lockout and per-IP throttling settings (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LockoutSettings {
    /// Consecutive failures of one kind that lock the account.
    pub threshold: u32,
    /// The first lock's length; each later one doubles.
    pub base_lock: HumanDuration,
    /// The longest lock.
    pub max_lock: HumanDuration,
    /// Failed attempts per IP per minute before that IP is throttled.
    pub ip_failures_per_minute: u32,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        Self {
            threshold: 5,
            base_lock: HumanDuration::from_secs(60).unwrap_or_else(|_| unreachable!()),
            max_lock: HumanDuration::from_secs(3_600).unwrap_or_else(|_| unreachable!()),
            ip_failures_per_minute: 30,
        }
    }
}

/// An environment and its policies (SPEC §1, §2). Timestamps are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub slug: EnvSlug,
    pub name: DisplayName,
    pub mfa_policy: MfaPolicy,
    pub session_max_age: HumanDuration,
    pub session_idle_timeout: Option<HumanDuration>,
    pub totp_window: u8,
    pub lockout: LockoutSettings,
    /// Shown in authenticator apps; `None` means the display name.
    pub issuer: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Thirty days: the seed product's rule and our default (the AAL1 bound; see docs/SECURITY.md).
pub const DEFAULT_SESSION_MAX_AGE: u64 = 30 * 86_400;

impl Environment {
    /// A new environment with the defaults of SPEC §2 (`system` always requires MFA).
    pub fn new(slug: EnvSlug, name: DisplayName, mfa_policy: Option<MfaPolicy>, now: i64) -> Self {
        let mfa_policy = if slug.is_system() {
            MfaPolicy::Required
        } else {
            mfa_policy.unwrap_or(MfaPolicy::Off)
        };
        Self {
            slug,
            name,
            mfa_policy,
            session_max_age: HumanDuration::from_secs(DEFAULT_SESSION_MAX_AGE)
                .unwrap_or_else(|_| unreachable!()),
            session_idle_timeout: None,
            totp_window: 1,
            lockout: LockoutSettings::default(),
            issuer: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The name shown in authenticator apps. A `:` would split the app's label in two
    /// (SECURITY E2), so the display name's colons become spaces.
    pub fn issuer(&self) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| self.name.as_str().replace(':', " "))
    }
}

/// A user (SPEC §1). Timestamps are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub env: EnvSlug,
    pub email: Email,
    pub name: DisplayName,
    pub role: Role,
    pub state: UserState,
    pub mfa_enforced: bool,
    pub mfa_enrolled: bool,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["dev", "prod", "eu-staging", "0", "a-", &"a".repeat(63)] {
            assert!(EnvSlug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-dev",
            "Dev",
            "my env",
            "prod!",
            "é",
            &"a".repeat(64),
            "a\0",
        ] {
            assert!(EnvSlug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_compare_case_insensitively_and_keep_their_case() {
        let a = Email::parse(" Alice@Example.COM ").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.as_str(), "Alice@Example.COM");
        assert_eq!(a.normalized(), "alice@example.com");
        // NFD and NFC forms are the same address.
        let nfd = Email::parse("e\u{301}lise@example.com").map(|e| e.normalized());
        let nfc = Email::parse("\u{e9}lise@example.com").map(|e| e.normalized());
        assert_eq!(nfd, nfc);
        assert!(Email::parse("admin@localhost").is_ok());
    }

    #[test]
    fn text_is_kept_in_nfc_whether_or_not_it_arrives_so() {
        // Decomposed input is composed; composed and ASCII input come back as they were.
        let e = Email::parse("e\u{301}lise@example.com").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.as_str(), "\u{e9}lise@example.com");
        let e = Email::parse("\u{e9}lise@example.com").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.as_str(), "\u{e9}lise@example.com");
        let n = DisplayName::parse(" Zoe\u{308} ").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n.as_str(), "Zo\u{eb}");
        let n = DisplayName::parse("Ren\u{e9}e").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n.as_str(), "Ren\u{e9}e");
        assert_eq!(normalize_email("E\u{301}LISE@x.io"), "\u{e9}lise@x.io");
    }

    #[test]
    fn new_names_refuse_hidden_formatting_but_stored_ones_still_read() {
        for bad in [
            "Ali\u{202E}ecil",
            "Bob\u{2028}Admin",
            "\u{FEFF}Carol",
            "Dan\u{200B}",
            "Eve\u{2066}x\u{2069}",
            "Fay\u{200F}",
        ] {
            let refused = DisplayName::parse(bad).map(|_| ()).err().map(|e| e.0);
            assert!(refused.is_some_and(|m| m.contains("invisible")), "{bad:?}");
            let stored = DisplayName::from_stored(bad).unwrap_or_else(|e| panic!("{e}"));
            assert!(stored.is_suspicious());
        }
        // Scripts that need the zero-width (non-)joiner keep it; emoji sequences too.
        for ok in [
            "\u{645}\u{6CC}\u{200C}\u{62E}\u{648}\u{627}\u{647}\u{645}",
            "Ada \u{1F469}\u{200D}\u{1F4BB}",
            "Zoë",
        ] {
            assert!(DisplayName::parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn new_emails_must_be_their_own_compatibility_form() {
        let full_width = "\u{FF21}\u{FF2C}\u{FF29}\u{FF23}\u{FF25}@example.com";
        let e = Email::parse(full_width)
            .map(|_| ())
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(e.contains("write it as ALICE@example.com"), "{e}");
        assert!(
            Email::parse("\u{FB01}ona@example.com").is_err(),
            "a ligature"
        );
        assert!(
            Email::parse("ann\u{200B}@example.com").is_err(),
            "a zero-width space"
        );
        let stored = Email::from_stored(full_width).unwrap_or_else(|e| panic!("{e}"));
        assert!(stored.is_ambiguous());
        let plain = Email::parse("Élise@example.com").unwrap_or_else(|e| panic!("{e}"));
        assert!(!plain.is_ambiguous());
    }

    #[test]
    fn bad_emails() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a b@example.com",
            "a@b@c.com",
            "a@example",
            "a@.com",
            "a@example..com",
            "a\u{0}@x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn enums_parse_their_names_only() {
        assert_eq!("required".parse::<MfaPolicy>(), Ok(MfaPolicy::Required));
        let err = "sometimes"
            .parse::<MfaPolicy>()
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("off, optional, required"), "{err}");
        assert!("Admin".parse::<Role>().is_err());
    }

    #[test]
    fn system_always_requires_mfa() {
        let name = DisplayName::parse("System").unwrap_or_else(|e| panic!("{e}"));
        let env = Environment::new(EnvSlug::system(), name, Some(MfaPolicy::Off), 0);
        assert_eq!(env.mfa_policy, MfaPolicy::Required);
        assert_eq!(env.session_max_age.as_secs(), 30 * 86_400);
    }
}

//! Passwords (SECURITY P1–P6): parsing, the strength rules, and argon2id hashing.
//!
//! Hashing here is synchronous and CPU-bound; the service layer runs it on its bounded blocking
//! pool, never on the async executor. Nothing here logs; a password only ever leaves this module
//! as a PHC hash string.

use std::cell::RefCell;

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{
        PasswordHasher,
        phc::{Output, ParamsString, PasswordHash, Salt},
    },
};
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

use crate::{SecretString, model::MfaPolicy};

/// Longest password accepted, in bytes of UTF-8: longer input is refused before hashing (P6).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Minimum length where a second factor is required (P1; NIST SP 800-63B rev. 4).
pub const MIN_CHARS_WITH_MFA: usize = 8;
/// Minimum length where a password alone may log in (P1).
pub const MIN_CHARS_WITHOUT_MFA: usize = 15;
/// zxcvbn looks at this many characters at most: past it, a password is not "common".
const STRENGTH_CHECK_CHARS: usize = 100;

#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("{0}")]
    Weak(String),
    #[error("the password hash could not be computed")]
    Hashing,
}

/// A password as the user typed it, NFC-normalised (P4) and at most 1 KiB (P6).
#[derive(Clone, Debug)]
pub struct Password(SecretString);

impl Password {
    pub fn parse(input: &str) -> Result<Self, PasswordError> {
        if input.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong);
        }
        if input.is_empty() {
            return Err(PasswordError::Empty);
        }
        let normalized: String = input.nfc().collect();
        if normalized.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong);
        }
        Ok(Self(SecretString::new(normalized)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    fn char_count(&self) -> usize {
        self.0.expose().chars().count()
    }
}

/// The minimum length for a new password, from what protects the account besides it (P1).
/// With policy `off` no second factor is ever asked, whatever the user is marked with, so a
/// password alone logs in there.
pub fn min_chars(policy: MfaPolicy, mfa_enforced: bool) -> usize {
    if policy == MfaPolicy::Required || (policy == MfaPolicy::Optional && mfa_enforced) {
        MIN_CHARS_WITH_MFA
    } else {
        MIN_CHARS_WITHOUT_MFA
    }
}

/// Check a new password (P1, P2): the minimum length, no composition rules, and refuse common
/// and breached passwords (zxcvbn's frequency lists) and passwords built on the account's own
/// words (`context`: the email, its local part, the environment's slug and name). The error
/// says why, in words for the user.
#[allow(clippy::default_trait_access)] // zxcvbn's `DictionaryType` cannot be named
pub fn check_new_password(
    password: &Password,
    min_chars: usize,
    context: &[&str],
) -> Result<(), PasswordError> {
    if password.char_count() < min_chars {
        return Err(PasswordError::Weak(format!(
            "use at least {min_chars} characters; a few unrelated words make a good password"
        )));
    }
    let head: String = password
        .expose()
        .chars()
        .take(STRENGTH_CHECK_CHARS)
        .collect();
    let lower = head.to_lowercase();
    for word in context
        .iter()
        .map(|w| w.trim().to_lowercase())
        .filter(|w| w.chars().count() >= 3)
    {
        if lower.contains(&word) && word.chars().count() * 2 >= lower.chars().count() {
            return Err(PasswordError::Weak(
                "the password is too close to your email address or the environment's name".into(),
            ));
        }
    }
    let inputs: Vec<&str> = context.to_vec();
    let entropy = zxcvbn::zxcvbn(&head, &inputs);
    let whole_is_common = entropy.sequence().iter().any(|m| {
        m.token.chars().count() == head.chars().count()
            && matches!(
                &m.pattern,
                zxcvbn::matching::patterns::MatchPattern::Dictionary(d)
                    // zxcvbn keeps `DictionaryType` private; its default is `Passwords`, the
                    // list of leaked passwords, which is the one that matters here.
                    if d.dictionary_name == Default::default()
            )
    });
    if whole_is_common {
        return Err(PasswordError::Weak(
            "this password is on a list of commonly used passwords; choose another".into(),
        ));
    }
    if u8::from(entropy.score()) < 2 {
        let reason = entropy
            .feedback()
            .and_then(zxcvbn::feedback::Feedback::warning)
            .map(|w| w.to_string())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "this password is too easy to guess".into());
        return Err(PasswordError::Weak(format!(
            "{reason}; choose another password"
        )));
    }
    Ok(())
}

/// argon2id cost parameters. The floor is OWASP's minimum (P5): m = 19 MiB, t = 2, p = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashCost {
    /// Refuse parameters below the floor, with a message for the operator.
    pub fn validate(self) -> Result<Self, String> {
        let floor = Self::default();
        if self.memory_kib < floor.memory_kib
            || self.iterations < floor.iterations
            || self.parallelism < floor.parallelism
        {
            return Err(format!(
                "argon2id parameters m={} KiB, t={}, p={} are below the minimum m={} KiB, t={}, p={}",
                self.memory_kib,
                self.iterations,
                self.parallelism,
                floor.memory_kib,
                floor.iterations,
                floor.parallelism
            ));
        }
        if self.memory_kib > 4 * 1024 * 1024 || self.iterations > 100 || self.parallelism > 64 {
            return Err(
                "argon2id parameters are implausibly large (m ≤ 4 GiB, t ≤ 100, p ≤ 64)".into(),
            );
        }
        Ok(self)
    }

    /// Parameters for tests only: tiny and fast. Never reachable from configuration.
    #[doc(hidden)]
    pub fn insecure_for_tests() -> Self {
        Self {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// What checking a password against a stored hash found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password is right; `needs_rehash` when the stored hash is weaker than the current
    /// parameters (P5), so the caller stores a new hash.
    Match {
        needs_rehash: bool,
    },
    Mismatch,
}

/// argon2id with the configured parameters.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    params: Params,
    dummy: String,
}

impl Argon2Hasher {
    pub fn new(cost: HashCost) -> Result<Self, PasswordError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|_| PasswordError::Hashing)?;
        let mut hasher = Self {
            params,
            dummy: String::new(),
        };
        // A hash of a random password with the same cost, checked for unknown users so that
        // they take as long as known ones (P7).
        let random = crate::token::Token::generate().map_err(|_| PasswordError::Hashing)?;
        hasher.dummy = hasher.hash_text(random.expose())?;
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hash with memory the argon2 crate allocates and frees (for the one dummy hash at start,
    /// so that the thread that builds the hasher keeps no 19 MiB).
    fn hash_text(&self, text: &str) -> Result<String, PasswordError> {
        self.argon2()
            .hash_password(text.as_bytes())
            .map(|h| h.to_string())
            .map_err(|_| PasswordError::Hashing)
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) with a fresh random salt.
    pub fn hash(&self, password: &Password) -> Result<String, PasswordError> {
        let salt = crate::entropy::random_bytes::<16>().map_err(|_| PasswordError::Hashing)?;
        let mut out = [0u8; 32];
        let argon2 = self.argon2();
        with_memory(self.params.block_count(), |memory| {
            argon2.hash_password_into_with_memory(
                password.expose().as_bytes(),
                &salt,
                &mut out,
                memory,
            )
        })
        .map_err(|_| PasswordError::Hashing)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|_| PasswordError::Hashing)?,
            salt: Some(Salt::new(&salt).map_err(|_| PasswordError::Hashing)?),
            hash: Some(Output::new(&out).map_err(|_| PasswordError::Hashing)?),
        };
        Ok(phc.to_string())
    }

    /// Check `password` against a stored PHC string. A malformed stored hash never matches.
    pub fn verify(&self, password: &Password, phc: &str) -> Verification {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return Verification::Mismatch;
        };
        if !matches_phc(password, &parsed) {
            return Verification::Mismatch;
        }
        let needs_rehash = match Params::try_from(&parsed) {
            Ok(p) => {
                parsed.algorithm.as_str() != "argon2id"
                    || parsed.version != Some(0x13)
                    || p.m_cost() < self.params.m_cost()
                    || p.t_cost() < self.params.t_cost()
                    || p.p_cost() < self.params.p_cost()
            }
            Err(_) => true,
        };
        Verification::Match { needs_rehash }
    }

    /// Spend the same work as [`Self::verify`] for a user who does not exist or has no
    /// password, and always fail.
    pub fn verify_dummy(&self, password: &Password) -> Verification {
        let _ = self.verify(password, &self.dummy);
        Verification::Mismatch
    }
}

thread_local! {
    /// argon2's memory, kept by each thread that hashes (the service's few hashing threads)
    /// and reused: allocating and freeing 19 MiB per hash left the allocator holding several
    /// copies per thread (`BENCHMARKS.md`, peak RSS under a login storm).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` on `blocks` blocks of this thread's argon2 memory.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    MEMORY.with(|cell| match cell.try_borrow_mut() {
        Ok(mut memory) => {
            if memory.len() < blocks {
                memory.resize(blocks, Block::new());
            }
            f(&mut memory[..blocks])
        }
        // Not reachable (hashing does not re-enter), but never a panic: use fresh memory.
        Err(_) => f(&mut vec![Block::new(); blocks]),
    })
}

/// Recompute the stored hash's parameters over `password` and compare in constant time.
fn matches_phc(password: &Password, parsed: &PasswordHash) -> bool {
    use subtle::ConstantTimeEq;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = Version::try_from(parsed.version.unwrap_or(0x13)) else {
        return false;
    };
    let Ok(params) = Params::try_from(parsed) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let computed = with_memory(params.block_count(), |memory| {
        argon2.hash_password_into_with_memory(
            password.expose().as_bytes(),
            salt.as_ref(),
            &mut out,
            memory,
        )
    });
    computed.is_ok() && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn hasher() -> Argon2Hasher {
        Argon2Hasher::new(HashCost::insecure_for_tests()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn hashes_with_reused_memory_agree_with_the_argon2_crate() {
        use argon2::password_hash::PasswordVerifier;
        let h = hasher();
        let p = pw("correct horse battery staple");
        // Ours, checked by the crate's own verifier.
        let ours = h.hash(&p).unwrap_or_else(|e| panic!("{e}"));
        let parsed = PasswordHash::new(&ours).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            h.argon2()
                .verify_password(p.expose().as_bytes(), &parsed)
                .is_ok()
        );
        // The crate's, checked by ours (hashes stored before this change).
        let theirs = h.hash_text(p.expose()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            h.verify(&p, &theirs),
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            h.verify(&pw("wrong horse battery staple"), &theirs),
            Verification::Mismatch
        );
        // A second hash on the same thread reuses the memory and still differs (fresh salt).
        let again = h.hash(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(ours, again);
        assert_eq!(
            h.verify(&p, &again),
            Verification::Match {
                needs_rehash: false
            }
        );
    }

    #[test]
    fn length_limits() {
        assert_eq!(Password::parse("").err(), Some(PasswordError::Empty));
        assert_eq!(
            Password::parse(&"a".repeat(1025)).err(),
            Some(PasswordError::TooLong)
        );
        assert!(Password::parse(&"a".repeat(1024)).is_ok());
        let ok = pw("quilt anchor mango");
        assert!(check_new_password(&ok, 15, &[]).is_ok());
        let short = pw("kv9#Tq2!");
        assert!(check_new_password(&short, MIN_CHARS_WITH_MFA, &[]).is_ok());
        assert!(check_new_password(&short, MIN_CHARS_WITHOUT_MFA, &[]).is_err());
        // 64 characters and more are accepted (P1).
        let long = pw(&"correct horse battery staple vivid ".repeat(3));
        assert!(check_new_password(&long, 15, &[]).is_ok());
    }

    #[test]
    fn minimum_depends_on_mfa() {
        assert_eq!(min_chars(MfaPolicy::Required, false), 8);
        assert_eq!(min_chars(MfaPolicy::Optional, true), 8);
        assert_eq!(min_chars(MfaPolicy::Optional, false), 15);
        assert_eq!(min_chars(MfaPolicy::Off, false), 15);
        assert_eq!(
            min_chars(MfaPolicy::Off, true),
            15,
            "off never asks a second factor"
        );
    }

    #[test]
    fn common_passwords_and_own_words_are_refused_with_a_reason() {
        for common in [
            "password",
            "password123",
            "iloveyou",
            "qwertyuiop",
            "123456789",
            "passw0rd",
        ] {
            let err = check_new_password(&pw(common), 8, &[]);
            assert!(
                matches!(err, Err(PasswordError::Weak(ref r)) if !r.is_empty()),
                "{common}: {err:?}"
            );
        }
        let err = check_new_password(
            &pw("alice.smith2024"),
            8,
            &["alice.smith@example.com", "alice.smith", "prod"],
        );
        assert!(matches!(err, Err(PasswordError::Weak(_))), "{err:?}");
        let err = check_new_password(
            &pw("acmeproduction"),
            8,
            &["a@b.com", "a", "acmeproduction"],
        );
        assert!(matches!(err, Err(PasswordError::Weak(_))), "{err:?}");
    }

    #[test]
    fn hash_verify_and_no_truncation() {
        let h = hasher();
        let long = "x".repeat(72) + &"y".repeat(28);
        let stored = h.hash(&pw(&long)).unwrap_or_default();
        assert!(stored.starts_with("$argon2id$v=19$"));
        assert!(matches!(
            h.verify(&pw(&long), &stored),
            Verification::Match { .. }
        ));
        assert_eq!(h.verify(&pw(&long[..72]), &stored), Verification::Mismatch);
        assert_eq!(
            h.verify(&pw("anything"), "not a phc string"),
            Verification::Mismatch
        );
        assert_eq!(h.verify_dummy(&pw(&long)), Verification::Mismatch);
    }

    #[test]
    fn nfc_and_nfd_are_the_same_password() {
        let h = hasher();
        let stored = h
            .hash(&pw("caf\u{e9} au lait tous les jours"))
            .unwrap_or_default();
        assert!(matches!(
            h.verify(&pw("cafe\u{301} au lait tous les jours"), &stored),
            Verification::Match { .. }
        ));
    }

    #[test]
    fn salts_are_unique_and_rehash_is_flagged_when_cost_rises() {
        let weak = hasher();
        let a = weak.hash(&pw("same password here")).unwrap_or_default();
        let b = weak.hash(&pw("same password here")).unwrap_or_default();
        assert_ne!(a, b);
        assert_eq!(
            weak.verify(&pw("same password here"), &a),
            Verification::Match {
                needs_rehash: false
            }
        );
        let stronger = Argon2Hasher::new(HashCost {
            memory_kib: 128,
            iterations: 2,
            parallelism: 1,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            stronger.verify(&pw("same password here"), &a),
            Verification::Match { needs_rehash: true }
        );
    }

    #[test]
    fn cost_floor() {
        assert!(HashCost::default().validate().is_ok());
        assert!(
            HashCost {
                memory_kib: 1024,
                ..HashCost::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            HashCost {
                iterations: 1,
                ..HashCost::default()
            }
            .validate()
            .is_err()
        );
    }
}

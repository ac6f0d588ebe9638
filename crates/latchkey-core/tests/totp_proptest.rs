//! Property tests of the TOTP module against an independent implementation and its own
//! contract:
//!
//! - `code_at` agrees with the `totp-rs` crate (6.0) for random keys, times in `0..=2^40`,
//!   SHA1/SHA256/SHA512, 6 and 8 digits and 30/60 s periods (16–64-byte keys through the
//!   compliant builder; 0–200-byte keys, covering the HMAC key-hashing path, unchecked);
//! - `verify` accepts `code_at(t)` at `now = t` with window 1 and returns the current step
//!   (or a later neighbour of the window whose code happens to be the same), which `totp-rs`
//!   also accepts, and a code of the other length never matches;
//! - `verify` never panics near the epoch (or before it) for any window, and whatever it
//!   returns is a step inside the clamped window, later than `last_step`, whose code matches;
//! - `TotpCode::parse` never panics on arbitrary Unicode and accepts exactly the inputs of at
//!   most 64 bytes that are N ASCII digits once ASCII spaces are removed.

use latchkey_core::totp::{
    Algorithm, Digits, MAX_WINDOW, TotpCode, TotpParams, TotpSecret, code_at, hotp, verify,
};
use proptest::prelude::*;
use proptest::sample::select;

fn algorithm() -> impl Strategy<Value = Algorithm> {
    select(vec![Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512])
}

fn digits() -> impl Strategy<Value = Digits> {
    select(vec![Digits::Six, Digits::Eight])
}

fn period() -> impl Strategy<Value = u32> {
    select(vec![30_u32, 60])
}

fn params(algorithm: Algorithm, digits: Digits, period: u32) -> TotpParams {
    TotpParams::new(algorithm, digits, period).unwrap_or_else(|e| panic!("params: {e}"))
}

fn reference_algorithm(a: Algorithm) -> totp_rs::Algorithm {
    match a {
        Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
        Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
        Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
    }
}

/// `totp-rs` configured like `p`, with `skew` steps either side for `check`.
fn reference_builder(key: &[u8], p: TotpParams, skew: u16) -> totp_rs::Builder {
    totp_rs::Builder::new()
        .with_algorithm(reference_algorithm(p.algorithm()))
        .with_digits(u8::try_from(p.digits().count()).unwrap_or(u8::MAX))
        .with_step_duration(u64::from(p.period()))
        .with_skew(skew)
        .with_secret(key.to_vec())
}

fn as_i64(t: u64) -> i64 {
    i64::try_from(t).unwrap_or_else(|e| panic!("{t}: {e}"))
}

/// Our code for `t`, and the code of the same key and parameters from `totp-rs`.
fn both_codes(key: &[u8], p: TotpParams, t: u64, compliant: bool) -> (String, String) {
    let builder = reference_builder(key, p, 1);
    let reference = if compliant {
        builder
            .build()
            .unwrap_or_else(|e| panic!("totp-rs refused {} key bytes: {e:?}", key.len()))
    } else {
        builder.build_noncompliant()
    };
    let ours = code_at(&TotpSecret::from_bytes(key.to_vec()), &p, as_i64(t));
    (ours, reference.generate(t).to_string())
}

/// The model of `TotpCode::parse`: at most 64 bytes, and exactly `n` ASCII digits and nothing
/// else once ASCII spaces are removed.
fn parse_model(input: &str, n: usize) -> Option<String> {
    let stripped: String = input.chars().filter(|&c| c != ' ').collect();
    (input.len() <= 64 && stripped.len() == n && stripped.bytes().all(|b| b.is_ascii_digit()))
        .then_some(stripped)
}

const MAX_TIME: u64 = 1 << 40;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn code_at_matches_totp_rs(
        key in proptest::collection::vec(any::<u8>(), 16..=64),
        t in 0..=MAX_TIME,
        alg in algorithm(),
        d in digits(),
        period in period(),
    ) {
        let p = params(alg, d, period);
        let (ours, reference) = both_codes(&key, p, t, true);
        prop_assert_eq!(ours.len(), d.count());
        prop_assert_eq!(ours, reference);
    }

    #[test]
    fn code_at_matches_totp_rs_for_any_key_length(
        key in proptest::collection::vec(any::<u8>(), 0..=200),
        t in 0..=MAX_TIME,
        alg in algorithm(),
        d in digits(),
    ) {
        let p = params(alg, d, 30);
        let (ours, reference) = both_codes(&key, p, t, false);
        prop_assert_eq!(ours, reference);
    }

    #[test]
    fn verify_accepts_the_current_code(
        key in proptest::collection::vec(any::<u8>(), 16..=64),
        t in 0..=MAX_TIME,
        alg in algorithm(),
        d in digits(),
        period in period(),
    ) {
        let p = params(alg, d, period);
        let secret = TotpSecret::from_bytes(key.clone());
        let now = as_i64(t);
        let text = code_at(&secret, &p, now);
        let code = TotpCode::parse(&text, d).unwrap_or_else(|e| panic!("{e}"));
        let step = p.step_at(now);
        prop_assert_eq!(step, t / u64::from(period));

        // `verify` returns the latest matching step of the window: the current one unless
        // the next step's code happens to be the same (a 10^-6 or 10^-8 coincidence).
        let value = hotp(&key, alg, step, d);
        let expected = if hotp(&key, alg, step + 1, d) == value { step + 1 } else { step };
        prop_assert_eq!(verify(&secret, &p, &code, now, None, 1), Some(expected));
        prop_assert_eq!(verify(&secret, &p, &code, now, None, 0), Some(step));
        // Typed with spaces, it is the same code.
        let (head, tail) = text.split_at(d.count() / 2);
        let spaced = TotpCode::parse(&format!(" {head} {tail} "), d).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(spaced, code);
        prop_assert_eq!(verify(&secret, &p, &spaced, now, None, 0), Some(step));
        // Once the matched step is recorded, the same code is refused.
        prop_assert_eq!(verify(&secret, &p, &code, now, Some(expected), 1), None);

        // A code of the other length never matches, even the same step's code.
        let other = if d == Digits::Six { Digits::Eight } else { Digits::Six };
        let other_text = code_at(&secret, &params(alg, other, period), now);
        let other_code = TotpCode::parse(&other_text, other).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(verify(&secret, &p, &other_code, now, None, MAX_WINDOW), None);

        // The independent implementation accepts our code too.
        let reference = reference_builder(&key, p, 1)
            .build()
            .unwrap_or_else(|e| panic!("totp-rs: {e:?}"));
        prop_assert!(reference.check(&text, t).is_some());
    }

    #[test]
    fn verify_near_the_epoch_never_panics_and_stays_in_the_window(
        key in proptest::collection::vec(any::<u8>(), 0..=64),
        now in -90_i64..90,
        window in prop_oneof![1_u8..=MAX_WINDOW, any::<u8>()],
        last_step in proptest::option::of(prop_oneof![0_u64..16, any::<u64>()]),
        code_value in 0_u32..1_000_000,
        use_real_code in any::<bool>(),
        alg in algorithm(),
    ) {
        let p = params(alg, Digits::Six, 30);
        let secret = TotpSecret::from_bytes(key.clone());
        let text = if use_real_code {
            code_at(&secret, &p, now)
        } else {
            format!("{code_value:06}")
        };
        let code = TotpCode::parse(&text, Digits::Six).unwrap_or_else(|e| panic!("{e}"));
        let got = verify(&secret, &p, &code, now, last_step, window);

        let current = p.step_at(now);
        let w = u64::from(window.min(MAX_WINDOW));
        if let Some(s) = got {
            prop_assert!(s >= current.saturating_sub(w) && s <= current + w, "step {} outside", s);
            prop_assert!(last_step.is_none_or(|l| s > l), "step {} not after {:?}", s, last_step);
            prop_assert_eq!(format!("{:06}", hotp(&key, alg, s, Digits::Six)), text.clone());
        }
        if use_real_code && last_step.is_none_or(|l| l < current) {
            prop_assert!(got.is_some_and(|s| s >= current), "current code refused: {:?}", got);
        }
    }

    #[test]
    fn parse_accepts_exactly_n_ascii_digits(input in any::<String>(), d in digits()) {
        let got = TotpCode::parse(&input, d);
        match parse_model(&input, d.count()) {
            Some(stripped) => {
                prop_assert!(got.is_ok(), "{:?} refused", input);
                prop_assert_eq!(got, TotpCode::parse(&stripped, d));
            }
            None => prop_assert!(got.is_err(), "{:?} accepted", input),
        }
    }

    #[test]
    fn parse_near_valid_inputs(
        input in "[0-9 ]{0,70}|[0-9 \u{0660}-\u{0669}\u{FF10}-\u{FF19}\t+.-]{0,12}",
        d in digits(),
    ) {
        let got = TotpCode::parse(&input, d);
        match parse_model(&input, d.count()) {
            Some(stripped) => {
                prop_assert!(got.as_ref().is_ok_and(|c| c.digits() == d), "{:?} refused", input);
                prop_assert_eq!(got, TotpCode::parse(&stripped, d));
            }
            None => prop_assert!(got.is_err(), "{:?} accepted", input),
        }
    }
}

//! Measures the cost of TOTP verification against its building block, to show what one
//! login attempt costs the server:
//!
//! - `totp/totp_verify`: `verify` of a valid current 6-digit SHA1 code (RFC 6238 key) with a
//!   window of ±1 and no previous step. `verify` computes every step of the window whether or
//!   not one matches, so this is its constant cost: one key schedule and three HMACs.
//! - `totp/hmac_sha1`: one full HMAC-SHA1 of an 8-byte counter under a 20-byte key, keyed
//!   afresh each iteration (key schedule + MAC), the unit of work `verify` repeats.
//!
//! Compile-checked with `cargo bench -p latchkey-core --no-run`; run with
//! `cargo bench -p latchkey-core --bench totp`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use latchkey_core::totp::{Algorithm, Digits, TotpCode, TotpParams, TotpSecret, code_at, verify};

/// RFC 6238 Appendix B's SHA1 seed (ASCII "12345678901234567890").
const RFC_SHA1_KEY: &[u8; 20] = b"12345678901234567890";
/// RFC 6238 Appendix B's time 1111111109, step 0x23523EC.
const NOW: i64 = 1_111_111_109;

fn bench_totp(c: &mut Criterion) {
    let secret = TotpSecret::from_bytes(RFC_SHA1_KEY.to_vec());
    let params =
        TotpParams::new(Algorithm::Sha1, Digits::Six, 30).unwrap_or_else(|e| panic!("params: {e}"));
    let text = code_at(&secret, &params, NOW);
    let code = TotpCode::parse(&text, Digits::Six).unwrap_or_else(|e| panic!("{text}: {e}"));
    // The bench measures an accepted code; make sure it is one.
    assert_eq!(
        verify(&secret, &params, &code, NOW, None, 1),
        Some(params.step_at(NOW)),
        "the benchmarked code must verify"
    );

    let mut group = c.benchmark_group("totp");

    group.bench_function("totp_verify", |b| {
        b.iter(|| {
            verify(
                black_box(&secret),
                black_box(&params),
                black_box(&code),
                black_box(NOW),
                black_box(None),
                black_box(1),
            )
        });
    });

    let counter = params.step_at(NOW).to_be_bytes();
    group.bench_function("hmac_sha1", |b| {
        b.iter(|| {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(black_box(RFC_SHA1_KEY))
                .unwrap_or_else(|e| panic!("HMAC key: {e}"));
            mac.update(black_box(&counter));
            mac.finalize().into_bytes()
        });
    });

    group.finish();
}

criterion_group!(benches, bench_totp);
criterion_main!(benches);

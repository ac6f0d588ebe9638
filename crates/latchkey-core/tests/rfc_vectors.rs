//! Proves that Latchkey's real TOTP/HOTP code path reproduces the published test vectors:
//! every row of RFC 6238 Appendix B (through `code_at`, `TotpParams::step_at` and `verify`
//! at window 0) and every row of RFC 4226 Appendix D (through `hotp`).
//!
//! The vectors are the published tables, kept as `rfc6238.tsv` and `rfc4226.tsv` in
//! `tests/vectors/` beside this file (a copy in the repository, so a clone tests on its own;
//! `tests/vectors/README.md` says where each row comes from). A missing or short file fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use latchkey_core::totp::{
    Algorithm, Digits, TotpCode, TotpParams, TotpSecret, code_at, hotp, verify,
};

/// Rows of RFC 6238 Appendix B: 6 times x 3 algorithms.
const RFC6238_ROWS: usize = 18;
/// Rows of RFC 4226 Appendix D: counters 0..=9.
const RFC4226_ROWS: usize = 10;

/// The folder holding the vector files.
fn vectors_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors"))
}

/// A parsed TSV: the data rows as maps from header name to field, plus the raw count of
/// non-comment, non-blank lines after the header (counted independently of the parse).
struct Table {
    rows: Vec<HashMap<String, String>>,
    data_lines: usize,
}

fn read_table(path: &Path, required: &[&str]) -> Table {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let data_lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count()
        .saturating_sub(1);

    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let (_, header) = lines
        .next()
        .unwrap_or_else(|| panic!("{}: no header line", path.display()));
    let columns: Vec<String> = header.split('\t').map(|c| c.trim().to_owned()).collect();
    for name in required {
        assert!(
            columns.iter().any(|c| c == name),
            "{}: header {columns:?} lacks column {name:?}",
            path.display()
        );
    }

    let rows = lines
        .map(|(n, line)| {
            let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
            assert_eq!(
                fields.len(),
                columns.len(),
                "{}:{}: {} fields for {} columns",
                path.display(),
                n + 1,
                fields.len(),
                columns.len()
            );
            columns
                .iter()
                .cloned()
                .zip(fields.into_iter().map(str::to_owned))
                .collect()
        })
        .collect();
    Table { rows, data_lines }
}

fn field<'a>(row: &'a HashMap<String, String>, name: &str) -> &'a str {
    row.get(name)
        .map_or_else(|| panic!("row {row:?} lacks {name:?}"), String::as_str)
}

fn hex(s: &str) -> Vec<u8> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(s.as_bytes())
        .unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

fn parse_code(s: &str, digits: Digits) -> TotpCode {
    TotpCode::parse(s, digits).unwrap_or_else(|e| panic!("{s:?} does not parse: {e}"))
}

#[test]
fn rfc6238_appendix_b() {
    let dir = vectors_dir();
    let table = read_table(
        &dir.join("rfc6238.tsv"),
        &["unix_time", "step_hex", "algorithm", "seed_hex", "expected"],
    );
    assert_eq!(
        table.rows.len(),
        table.data_lines,
        "rows parsed vs lines in the file"
    );
    assert_eq!(
        table.rows.len(),
        RFC6238_ROWS,
        "RFC 6238 Appendix B has {RFC6238_ROWS} rows"
    );

    let mut failures = Vec::new();
    for row in &table.rows {
        let time: i64 = field(row, "unix_time")
            .parse()
            .unwrap_or_else(|e| panic!("unix_time in {row:?}: {e}"));
        let step = u64::from_str_radix(field(row, "step_hex"), 16)
            .unwrap_or_else(|e| panic!("step_hex in {row:?}: {e}"));
        let algorithm = Algorithm::parse(field(row, "algorithm"))
            .unwrap_or_else(|| panic!("unknown algorithm in {row:?}"));
        let secret = TotpSecret::from_bytes(hex(field(row, "seed_hex")));
        let expected = field(row, "expected");
        assert_eq!(
            expected.len(),
            8,
            "expected code in {row:?} is not 8 digits"
        );
        let label = format!("{} t={time}", algorithm.as_str());

        let params =
            TotpParams::new(algorithm, Digits::Eight, 30).unwrap_or_else(|e| panic!("params: {e}"));

        if params.step_at(time) != step {
            failures.push(format!(
                "{label}: step_at = {:X}, step_hex = {step:X}",
                params.step_at(time)
            ));
        }

        let got = code_at(&secret, &params, time);
        if got != expected {
            failures.push(format!("{label}: code_at = {got}, expected {expected}"));
        }

        let code = parse_code(expected, Digits::Eight);
        let verified = verify(&secret, &params, &code, time, None, 0);
        if verified != Some(step) {
            failures.push(format!(
                "{label}: verify(window 0) = {verified:?}, expected Some({step})"
            ));
        }
        // The same step is refused once recorded, and accepted when only the previous one is.
        let replay = verify(&secret, &params, &code, time, Some(step), 0);
        if replay.is_some() {
            failures.push(format!(
                "{label}: replay of step {step} accepted: {replay:?}"
            ));
        }
        let after_prev = verify(&secret, &params, &code, time, step.checked_sub(1), 0);
        if after_prev != Some(step) {
            failures.push(format!("{label}: verify after step-1 = {after_prev:?}"));
        }

        // Six digits are the low six of the eight (the same truncated value mod 10^6).
        let six =
            TotpParams::new(algorithm, Digits::Six, 30).unwrap_or_else(|e| panic!("params: {e}"));
        let got6 = code_at(&secret, &six, time);
        if got6 != expected[2..] {
            failures.push(format!(
                "{label}: 6-digit code_at = {got6}, expected {}",
                &expected[2..]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "RFC 6238 mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn rfc4226_appendix_d() {
    let dir = vectors_dir();
    let table = read_table(
        &dir.join("rfc4226.tsv"),
        &["counter", "key_hex", "expected"],
    );
    assert_eq!(
        table.rows.len(),
        table.data_lines,
        "rows parsed vs lines in the file"
    );
    assert_eq!(
        table.rows.len(),
        RFC4226_ROWS,
        "RFC 4226 Appendix D has {RFC4226_ROWS} rows"
    );

    let mut failures = Vec::new();
    for row in &table.rows {
        let counter: u64 = field(row, "counter")
            .parse()
            .unwrap_or_else(|e| panic!("counter in {row:?}: {e}"));
        let key = hex(field(row, "key_hex"));
        let expected = field(row, "expected");
        assert_eq!(
            expected.len(),
            6,
            "expected code in {row:?} is not 6 digits"
        );

        let got = format!("{:06}", hotp(&key, Algorithm::Sha1, counter, Digits::Six));
        if got != expected {
            failures.push(format!(
                "counter {counter}: hotp = {got}, expected {expected}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "RFC 4226 mismatches:\n{}",
        failures.join("\n")
    );
}

//! The repository explains itself: every `SPEC §N` that code and docs cite names a section of
//! `docs/SPEC.md`, every `SECURITY X9` id that code cites is defined in `docs/SECURITY.md`, and
//! nothing points at documents outside the repository (`DESIGN §`, a `shared/` folder).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The text files under `dir` that code or docs live in (not `target/`, not test vectors).
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                files(&path, out);
            }
        } else if ["rs", "sql", "html", "toml", "md"]
            .iter()
            .any(|ext| name.ends_with(&format!(".{ext}")))
        {
            out.push(path);
        }
    }
}

/// The section numbers `SPEC §4.2, §4.7` names on each line: the first after `SPEC §`, then
/// those that follow it as `, §N` or ` and §N`.
fn spec_refs(line: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("SPEC §") {
        rest = &rest[at + "SPEC ".len()..];
        while let Some(after) = rest.strip_prefix('§') {
            let number: String = after
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let number = number.trim_end_matches('.').to_owned();
            if number.is_empty() {
                break;
            }
            rest = &after[number.len()..];
            refs.push(number);
            match rest
                .strip_prefix(", ")
                .or_else(|| rest.strip_prefix(" and "))
            {
                Some(next) if next.starts_with('§') => rest = next,
                _ => break,
            }
        }
    }
    refs
}

#[test]
fn every_reference_resolves_inside_the_repository() {
    let root = root();
    let spec = std::fs::read_to_string(root.join("docs/SPEC.md")).unwrap();
    let sections: Vec<String> = spec
        .lines()
        .filter(|l| l.starts_with("## ") || l.starts_with("### "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|n| n.trim_end_matches('.').to_owned())
        .collect();
    let security = std::fs::read_to_string(root.join("docs/SECURITY.md")).unwrap();

    let mut all = Vec::new();
    files(&root.join("crates"), &mut all);
    files(&root.join("docs"), &mut all);
    all.push(root.join("README.md"));
    let mut cited = 0;
    let mut missing = Vec::new();
    for path in &all {
        // The contract itself, and this checker, which names what it looks for.
        if path.ends_with("docs/SPEC.md") || path.ends_with("tests/e2e/docs.rs") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        for (n, line) in text.lines().enumerate() {
            for number in spec_refs(line) {
                cited += 1;
                if !sections.contains(&number) {
                    missing.push(format!("{shown}:{}: SPEC §{number}", n + 1));
                }
            }
            for outside in ["DESIGN §", "../shared", "shared/vectors", "shared/SPEC"] {
                if line.contains(outside) {
                    missing.push(format!("{shown}:{}: points outside: {outside}", n + 1));
                }
            }
            if shown.starts_with("crates/") {
                let mut rest = line;
                while let Some(at) = rest.find("SECURITY ") {
                    rest = &rest[at + "SECURITY ".len()..];
                    let id: String = rest
                        .chars()
                        .take_while(char::is_ascii_alphanumeric)
                        .collect();
                    let well_formed = id.len() >= 2
                        && id.starts_with(|c: char| c.is_ascii_uppercase())
                        && id[1..].chars().all(|c| c.is_ascii_digit());
                    if well_formed && !security.contains(&format!("**{id}**")) {
                        missing.push(format!("{shown}:{}: SECURITY {id}", n + 1));
                    }
                }
            }
        }
    }
    assert!(
        cited > 50,
        "only {cited} SPEC references found: is the walk right?"
    );
    assert!(
        missing.is_empty(),
        "unresolved references:\n{}",
        missing.join("\n")
    );
}

#[test]
fn spec_references_are_read_in_lists() {
    assert_eq!(spec_refs("the login of SPEC §3 and §5.1"), ["3", "5.1"]);
    assert_eq!(spec_refs("(SPEC §4.2, §4.7)."), ["4.2", "4.7"]);
    assert_eq!(spec_refs("SPEC §7: 24 hours, RFC 6749 §5.2"), ["7"]);
    assert!(spec_refs("no reference here §2").is_empty());
}

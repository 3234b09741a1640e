//! Every manifest under tests/invalid is refused — by admission rules (schema, CEL) or by the
//! planner — with the specific message its header names. Header lines:
//! `# with: <example files to load alongside>`, `# expect: <text the error must contain>` and,
//! where the running operator words a missing dependency as a wait, `# operator-expect: <text>`
//! (checked end to end by tests/e2e_bad_input.rs).

use std::path::{Path, PathBuf};

use stamp_operator::cli::load_manifests;
use stamp_operator::plan::plan_bundle;

struct Case {
    path: PathBuf,
    with: Vec<PathBuf>,
    expect: String,
}

fn cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join("tests/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let header = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_string()
            };
            let with = header("# with:")
                .split_whitespace()
                .map(|f| root.join("deploy/examples").join(f))
                .collect();
            let expect = header("# expect:");
            assert!(
                !expect.is_empty(),
                "{} has no `# expect:` line",
                path.display()
            );
            Case { path, with, expect }
        })
        .collect()
}

/// The refusal of a case: admission error of the file, or the planner's errors.
fn refusal(case: &Case) -> Option<String> {
    let mut files = case.with.clone();
    files.push(case.path.clone());
    let bundle = match load_manifests(&files) {
        Err(e) => return Some(e.to_string()),
        Ok(bundle) => bundle,
    };
    let errors = plan_bundle(&bundle).errors();
    (!errors.is_empty()).then(|| {
        errors
            .iter()
            .map(|(kind, name, e)| format!("{kind} {name}: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

#[test]
fn corpus_is_large_enough() {
    assert!(
        cases().len() >= 40,
        "the bad-input corpus must hold at least 40 manifests"
    );
}

#[test]
fn every_invalid_manifest_is_refused_with_its_message() {
    let mut failures = Vec::new();
    for case in cases() {
        let file = case.path.file_name().unwrap().to_string_lossy().to_string();
        match refusal(&case) {
            None => failures.push(format!("{file}: accepted, expected `{}`", case.expect)),
            Some(msg) if !msg.contains(&case.expect) => {
                failures.push(format!("{file}: expected `{}`, got:\n  {msg}", case.expect))
            }
            Some(msg) => {
                // The refusal must be about this file's object, not a side effect elsewhere.
                let own = msg.contains(&file)
                    || msg.contains("prod/bad")
                    || msg.contains("prod/small")
                    || msg.contains("GlobalPlane prod");
                if !own {
                    failures.push(format!(
                        "{file}: refusal does not name the invalid object: {msg}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_examples_alone_are_accepted() {
    // Guards the corpus: each case fails because of its own file, not because the examples broke.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files: Vec<PathBuf> = ["globalplane.yaml", "stamp-westeurope.yaml"]
        .iter()
        .map(|f| root.join("deploy/examples").join(f))
        .collect();
    let bundle = load_manifests(&files).unwrap();
    assert!(plan_bundle(&bundle).errors().is_empty());
}

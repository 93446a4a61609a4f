//! Tests of the tests: the registry, fixtures, docs and catalogue agree.

use std::collections::HashMap;

use kmapcheck::catalogue::BUILTIN;
use kmapcheck::rules::RULES;

#[test]
fn every_rule_has_fixtures_that_fire_and_stay_silent() {
    // Patch-mode cases (fixtures/patch/, tests/patch.rs) count too: KM002
    // and KM003 only fire there, on a pre-image/post-image pair. A case's
    // gcc output is fixtures/patch/expected/<case>.gcc (absent: silent).
    let patch_outputs: Vec<String> = std::fs::read_dir("fixtures/patch")
        .expect("fixtures/patch exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "patch" || e == "mbox"))
        .filter(|p| !p.to_string_lossy().contains("malformed_"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::read_to_string(format!("fixtures/patch/expected/{name}.gcc"))
                .unwrap_or_default()
        })
        .collect();
    for rule in RULES {
        let dir = format!("fixtures/{}", rule.code);
        let cases: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "c"))
                    .collect()
            })
            .unwrap_or_default();
        let tree_firing = cases
            .iter()
            .filter(|c| c.with_extension("stderr").exists())
            .count();
        let marker = format!("[{}]", rule.code);
        let patch_firing = patch_outputs.iter().filter(|g| g.contains(&marker)).count();
        let firing = tree_firing + patch_firing;
        let silent = cases.len() - tree_firing + patch_outputs.len() - patch_firing;
        assert!(firing > 0, "{}: no case with expected findings", rule.code);
        assert!(silent > 0, "{}: no case that must stay silent", rule.code);
    }
}

#[test]
fn rule_docs_are_generated_from_the_rule_source() {
    let bless = std::env::var_os("KMAPCHECK_BLESS").is_some();
    for rule in RULES {
        let path = format!("docs/rules/{}.md", rule.code);
        let page = rule.explanation();
        if bless {
            std::fs::create_dir_all("docs/rules").unwrap();
            std::fs::write(&path, &page).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            on_disk, page,
            "{path} is stale: KMAPCHECK_BLESS=1 cargo test --test meta"
        );
    }
}

#[test]
fn rule_docs_have_every_section() {
    for rule in RULES {
        for section in [
            "## What it does",
            "## Why is this bad",
            "## Example",
            "## Use instead",
            "## Known limitations",
        ] {
            assert!(rule.doc.contains(section), "{} lacks {section}", rule.code);
        }
    }
}

#[test]
fn no_api_name_has_two_meanings_in_the_catalogue() {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (file, text) in BUILTIN {
        let value: toml::Value = toml::from_str(text).unwrap();
        let mut names = Vec::new();
        collect_call_names(&value, &mut names);
        for name in names {
            if let Some(first) = seen.insert(name.clone(), file) {
                panic!("`{name}` appears in {first} and {file}");
            }
        }
    }
}

/// Names listed under keys that name calls (not prose, not codes).
fn collect_call_names(value: &toml::Value, out: &mut Vec<String>) {
    const CALL_KEYS: [&str; 13] = [
        "names",
        "sleeps",
        "sleeps_with_gfp",
        "unmap",
        "nofault",
        "fault_disable",
        "fault_enable",
        "acquire",
        "release",
        "bare",
        "percpu",
        "pin",
        "unpin",
    ];
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                if CALL_KEYS.contains(&k.as_str()) {
                    out.extend(
                        v.as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|s| s.as_str().map(str::to_owned)),
                    );
                } else {
                    collect_call_names(v, out);
                }
            }
        }
        toml::Value::Array(a) => a.iter().for_each(|v| collect_call_names(v, out)),
        _ => {}
    }
}

#[test]
fn tree_sitter_c_grammar_loads_in_this_tree_sitter() {
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_c::LANGUAGE.into())
        .expect("ABI-compatible grammar");
    let tree = parser.parse("{ list(x); }", None).unwrap();
    assert_eq!(
        tree.root_node().child(0).unwrap().kind(),
        "compound_statement"
    );
}

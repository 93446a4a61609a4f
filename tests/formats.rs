//! Output formats as users and CI tools see them: golden files for every
//! format on fixtures/report/mixed.c (`mixed.<format>` beside it;
//! `KMAPCHECK_BLESS=1 cargo test --test formats` rewrites them), and schema
//! validation of real output: JSON against docs/json.schema.json, SARIF
//! against the official SARIF 2.1.0 schema (tests/schemas/).

mod common;

use common::kmapcheck;

use serde_json::Value;

const MIXED: &str = "fixtures/report/mixed.c";
const FORMATS: [&str; 7] = [
    "human",
    "gcc",
    "json",
    "sarif",
    "github",
    "gitlab",
    "checkpatch",
];

fn format_output(format: &str, path: &str) -> String {
    let (code, out, err) = kmapcheck(&["--color", "never", "--format", format, path]);
    assert_eq!(code, 1, "{format}: findings exit 1\n{err}");
    out
}

#[test]
fn every_format_matches_its_golden_file() {
    let bless = std::env::var_os("KMAPCHECK_BLESS").is_some();
    let mut failures = Vec::new();
    for format in FORMATS {
        let got = format_output(format, MIXED);
        let expected_path = MIXED.replace(".c", &format!(".{format}"));
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != got {
            failures.push(format!(
                "{expected_path}: output differs (KMAPCHECK_BLESS=1 to accept)\n--- expected\n{expected}\n--- got\n{got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The official SARIF schema's `language` patterns have a lone `]`, a literal
/// in ECMA-262's legacy (Annex B) syntax but an error in the strict syntax
/// jsonschema checks `pattern` values with, so the crate refuses to load the
/// schema. Escaping that `]` matches the same strings; it is done in memory
/// and only at its two known places, so the vendored file stays byte-identical to the
/// official one and a change of it fails here.
fn schema_text(schema_path: &str) -> String {
    const LEGACY: &str = r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#;
    const STRICT: &str = r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$""#;
    let text = std::fs::read_to_string(schema_path).unwrap();
    if schema_path.contains("sarif") {
        assert_eq!(text.matches(LEGACY).count(), 2, "{schema_path} changed");
        return text.replace(LEGACY, STRICT);
    }
    text
}

fn validator(schema_path: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&schema_text(schema_path)).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{schema_path}: {e}"))
}

fn assert_valid(validator: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}:\n{}", errors.join("\n"));
}

#[test]
fn json_output_follows_the_documented_schema() {
    let v = validator("docs/json.schema.json");
    for path in [MIXED, "fixtures"] {
        let doc: Value = serde_json::from_str(&format_output("json", path)).unwrap();
        assert!(!doc["findings"].as_array().unwrap().is_empty());
        assert_valid(&v, &doc, path);
    }
    // The schema is strict: an undocumented field is an error.
    let mut doc: Value = serde_json::from_str(&format_output("json", MIXED)).unwrap();
    doc["findings"][0]["column_utf16"] = 3.into();
    assert!(!v.is_valid(&doc), "the schema accepts an unknown field");
}

/// Patch mode prints the same documents: its goldens (tests/patch.rs)
/// validate against the same schemas.
#[test]
fn patch_mode_json_and_sarif_follow_the_schemas() {
    let json = validator("docs/json.schema.json");
    let sarif = validator("tests/schemas/sarif-schema-2.1.0.json");
    let mut checked = 0;
    for entry in std::fs::read_dir("fixtures/patch/expected")
        .unwrap()
        .flatten()
    {
        let path = entry.path();
        let v = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => &json,
            Some("sarif") => &sarif,
            _ => continue,
        };
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_valid(v, &doc, &path.display().to_string());
        checked += 1;
    }
    assert!(checked >= 20, "patch goldens went missing: {checked}");
}

#[test]
fn sarif_output_follows_the_official_sarif_2_1_0_schema() {
    let v = validator("tests/schemas/sarif-schema-2.1.0.json");
    for path in [MIXED, "fixtures"] {
        let doc: Value = serde_json::from_str(&format_output("sarif", path)).unwrap();
        assert_valid(&v, &doc, path);
        let results = doc["runs"][0]["results"].as_array().unwrap();
        let rules = doc["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap();
        assert!(!results.is_empty());
        for r in results {
            let index = usize::try_from(r["ruleIndex"].as_u64().unwrap()).unwrap();
            assert_eq!(rules[index]["id"], r["ruleId"]);
            assert!(r["partialFingerprints"]["kmapcheck/v1"].is_string());
        }
    }
    // The official schema is strict too: proof that validation is on.
    let mut doc: Value = serde_json::from_str(&format_output("sarif", MIXED)).unwrap();
    doc["runs"][0]["results"][0]["lineNumber"] = 3.into();
    assert!(
        !v.is_valid(&doc),
        "the SARIF schema accepts an unknown field"
    );
}

#[test]
fn sarif_rules_carry_their_documentation() {
    let doc: Value = serde_json::from_str(&format_output("sarif", MIXED)).unwrap();
    let rule = &doc["runs"][0]["tool"]["driver"]["rules"][0];
    assert_eq!(rule["id"], "KM001");
    let explanation = kmapcheck::rules::RULES[0].explanation();
    assert_eq!(rule["fullDescription"]["text"], explanation.as_str());
    assert!(
        rule["helpUri"]
            .as_str()
            .unwrap()
            .ends_with("/blob/main/docs/rules/KM001.md")
    );
    assert_eq!(rule["defaultConfiguration"]["level"], "error");
}

/// Adds lines above every function and re-indents: the fingerprints of the
/// same findings must not change (SARIF, GitLab and the baseline rely on it).
#[test]
fn fingerprints_survive_line_shifts() {
    let dir = std::env::temp_dir().join(format!("kmapcheck-fp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let original = std::fs::read_to_string(MIXED).unwrap();
    let shifted = format!(
        "/* three\n * new\n * lines */\n{}",
        original.replace("\n\tkaddr", "\n\n        kaddr")
    );
    let fingerprints = |text: &str| -> Vec<String> {
        let copy = dir.join("mixed.c");
        std::fs::write(&copy, text).unwrap();
        let out = format_output("gitlab", copy.to_str().unwrap());
        let doc: Value = serde_json::from_str(&out).unwrap();
        doc.as_array()
            .unwrap()
            .iter()
            .map(|i| i["fingerprint"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = fingerprints(&original);
    let after = fingerprints(&shifted);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(before.len(), 2);
    assert_eq!(before, after);
}

#[test]
fn gcc_and_github_print_one_line_per_finding() {
    for format in ["gcc", "github"] {
        let out = format_output(format, "fixtures");
        let (_, json, _) = kmapcheck(&["--format", "json", "fixtures"]);
        let doc: Value = serde_json::from_str(&json).unwrap();
        let findings = doc["findings"].as_array().unwrap().len();
        assert_eq!(out.lines().count(), findings, "{format}");
    }
}

/// Notes (KM011's advice) in every format: their own level, valid against
/// both schemas, dropped by `--min-severity warning`, and exit 0.
#[test]
fn notes_have_their_level_in_every_format_and_exit_zero() {
    const CASE: &str = "fixtures/KM011/percpu.c";
    let expected = [
        ("human", "note[KM011]: "),
        ("gcc", ": note: "),
        ("json", "\"severity\": \"note\""),
        ("sarif", "\"level\": \"note\""),
        ("github", "::notice file="),
        ("gitlab", "\"severity\": \"info\""),
    ];
    for (format, marker) in expected {
        let (code, out, err) = kmapcheck(&[
            "--color", "never", "--select", "KM011", "--format", format, CASE,
        ]);
        assert_eq!(code, 0, "{format}: notes alone exit 0\n{err}");
        assert!(out.contains(marker), "{format}: no `{marker}` in\n{out}");
        assert!(err.contains(", 3 note(s)"), "{format}: summary {err}");
        if format == "json" || format == "sarif" {
            let schema = if format == "json" {
                "docs/json.schema.json"
            } else {
                "tests/schemas/sarif-schema-2.1.0.json"
            };
            let doc: Value = serde_json::from_str(&out).unwrap();
            assert_valid(&validator(schema), &doc, format);
        }
    }
    let (code, out, _) = kmapcheck(&[
        "--select",
        "KM011",
        "--min-severity",
        "warning",
        "--format",
        "gcc",
        CASE,
    ]);
    assert_eq!((code, out.as_str()), (0, ""));
}

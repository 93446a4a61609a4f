//! Documentation generated from the clap definition (src/cli.rs): the man
//! page docs/kmapcheck.1 must be current (`KMAPCHECK_BLESS=1 cargo test
//! --test docs` rewrites it), and completions must offer every option.

use std::process::Command;

use clap::CommandFactory;
use kmapcheck::cli::Args;

#[test]
fn man_page_is_generated_from_the_cli_definition() {
    let mut page = Vec::new();
    clap_mangen::Man::new(Args::command())
        .render(&mut page)
        .unwrap();
    let page = String::from_utf8(page).unwrap();
    let path = "docs/kmapcheck.1";
    if std::env::var_os("KMAPCHECK_BLESS").is_some() {
        std::fs::write(path, &page).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        on_disk, page,
        "{path} is stale: KMAPCHECK_BLESS=1 cargo test --test docs"
    );
    for needle in ["\\-\\-format", "\\-\\-baseline", "sarif", "Exit status"] {
        assert!(page.contains(needle), "man page lacks {needle}");
    }
}

#[test]
fn completions_offer_every_long_option() {
    let longs: Vec<String> = Args::command()
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    assert!(longs.len() > 10, "{longs:?}");
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_kmapcheck"))
            .args(["--completions", shell])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for long in &longs {
            assert!(script.contains(long.as_str()), "{shell} lacks --{long}");
        }
        assert!(script.contains("sarif"), "{shell} lacks format values");
    }
}

/// The bash script must at least parse: `bash -n`.
#[test]
fn bash_completion_parses() {
    let out = Command::new(env!("CARGO_BIN_EXE_kmapcheck"))
        .args(["--completions", "bash"])
        .output()
        .expect("binary runs");
    let dir = std::env::temp_dir().join(format!("kmapcheck-compl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("kmapcheck.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let status = Command::new("bash").arg("-n").arg(&script).status();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.expect("bash runs").success(), "bash -n failed");
}

//! Same input, same bytes out: stdout, stderr and exit status must not depend
//! on --jobs or on the run. Always checked on a generated corpus with
//! findings and skipped inputs in many files; also on part of the real 6.12
//! tree when it is installed (scripts/determinism checks the whole tree in
//! release, for every format).

use std::path::{Path, PathBuf};
use std::process::Command;

type Output = (i32, String, String);

fn kmapcheck(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_kmapcheck"))
        .args(["--color", "never"])
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `paths` in every format with --jobs 1, 2, 8 and 8 again, and asserts
/// all four agree; returns the human output of --jobs 1.
fn assert_deterministic(paths: &[&str]) -> Output {
    let mut human = None;
    for format in ["human", "json"] {
        let with = |jobs: &str| {
            // No time limit: on a loaded machine a debug build could hit it on
            // one run and not another, and a timed-out file is (rightly) skipped.
            let mut args = vec!["--file-timeout", "0", "--format", format, "--jobs", jobs];
            args.extend_from_slice(paths);
            kmapcheck(&args)
        };
        let reference = with("1");
        for (jobs, run) in [("2", 1), ("8", 1), ("8", 2)] {
            let other = with(jobs);
            assert!(
                other == reference,
                "{format}: --jobs {jobs} (run {run}) differs from --jobs 1 on {paths:?}\n\
                 --- jobs 1: exit {}\n{}\n{}\n--- jobs {jobs}: exit {}\n{}\n{}",
                reference.0,
                reference.2,
                reference.1,
                other.0,
                other.2,
                other.1
            );
        }
        human.get_or_insert(reference);
    }
    human.expect("two formats ran")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kmapcheck-det-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn generated_corpus_gives_the_same_output_whatever_the_jobs() {
    let dir = temp_dir("gen");
    let seed = std::fs::read_to_string("fixtures/KM001/seed_mfill_retry.c").unwrap();
    let spin = std::fs::read_to_string("fixtures/KM001/evidence_spinlock.c").unwrap();
    // Many files in many directories, so workers finish in varying orders.
    for i in 0..400 {
        let sub = dir.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&sub).unwrap();
        let text = match i % 3 {
            0 => seed.clone(),
            1 => format!("{spin}\n{seed}"),
            _ => "int clean(void)\n{\n\treturn 0;\n}\n".to_owned(),
        };
        std::fs::write(sub.join(format!("f{i:03}.c")), text).unwrap();
        if i % 50 == 0 {
            std::fs::write(sub.join(format!("bin{i:03}.c")), b"kmap_local_page\0").unwrap();
        }
    }
    let d = dir.to_str().unwrap();
    let (code, out, err) = assert_deterministic(&[d, "fixtures", "no-such-path.c"]);
    assert_eq!(code, 1);
    assert!(out.matches("[KM001]").count() > 300, "{out}");
    assert_eq!(err.matches("binary file").count(), 8, "{err}");
    assert!(err.contains("no-such-path.c"), "{err}");
}

/// Where scripts/kernel-trees unpacks 6.12.
fn real_tree() -> Option<PathBuf> {
    let cache = std::env::var_os("KMAPCHECK_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/kmapcheck")))?;
    let tree = cache.join("trees/linux-source-6.12");
    tree.join("mm/shmem.c").is_file().then_some(tree)
}

#[test]
fn real_tree_with_mutated_copies_gives_the_same_output_whatever_the_jobs() {
    let Some(tree) = real_tree() else {
        eprintln!(
            "notice: linux-source-6.12 not installed: real-tree part skipped; \
             scripts/determinism installs it and checks the whole tree"
        );
        return;
    };
    // Copies without pagefault_disable(), so there is output to compare; the
    // shared tree is only read.
    let mutated = temp_dir("real").join("mm");
    std::fs::create_dir_all(&mutated).unwrap();
    for name in ["shmem.c", "userfaultfd.c", "memory.c"] {
        let text = std::fs::read_to_string(tree.join("mm").join(name)).unwrap();
        let cut: String = text
            .lines()
            .filter(|l| !l.contains("pagefault_disable()"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(cut.len() < text.len(), "{name} has a pagefault_disable()");
        std::fs::write(mutated.join(name), cut).unwrap();
    }
    let (mm, fs) = (tree.join("mm"), tree.join("fs"));
    let paths = [
        mm.to_str().unwrap(),
        fs.to_str().unwrap(),
        mutated.to_str().unwrap(),
    ];
    let (code, out, _) = assert_deterministic(&paths);
    assert_eq!(code, 1);
    assert!(out.matches("[KM001]").count() >= 4, "{out}");
}

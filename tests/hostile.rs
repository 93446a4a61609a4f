//! Hostile inputs (issue 7: never crash, never lie). Each case is analyzed or
//! skipped with exactly one stderr line that names it and says why; the scan
//! goes on; nothing blocks, overflows the stack or grows without bound. Big
//! inputs are generated here, never committed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kmapcheck::Analyzer;
use kmapcheck::driver::Inputs;

/// A finding KM001 must report: a fault under `kmap_local_page()` and a spinlock.
const SEED: &str = "int seed(void)\n{\n\tvoid *p = kmap_local_page(pg);\n\tspin_lock(&l);\n\tif (copy_from_user(p, u, 4))\n\t\tret = 1;\n\tspin_unlock(&l);\n\tkunmap_local(p);\n\treturn ret;\n}\n";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs the binary (optionally under a wrapper command) and kills it after
/// 60 s, so a hang fails the test instead of blocking CI.
fn run_in(wrapper: &[&str], args: &[&str]) -> Run {
    let bin = env!("CARGO_BIN_EXE_kmapcheck");
    let mut argv: Vec<&str> = wrapper.to_vec();
    argv.push(bin);
    argv.extend_from_slice(&["--color", "never"]);
    argv.extend_from_slice(args);
    let start = Instant::now();
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    // Drain the pipes on threads: a child blocked on a full pipe is not a hang.
    let mut out_pipe = child.stdout.take().expect("piped");
    let mut err_pipe = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || read_all(&mut out_pipe));
    let err = std::thread::spawn(move || read_all(&mut err_pipe));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().expect("kill");
            panic!("kmapcheck {args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().expect("reader"),
        stderr: err.join().expect("reader"),
        elapsed: start.elapsed(),
    }
}

fn read_all(r: &mut impl std::io::Read) -> String {
    let mut v = Vec::new();
    r.read_to_end(&mut v).expect("read pipe");
    String::from_utf8_lossy(&v).into_owned()
}

fn run(args: &[&str]) -> Run {
    run_in(&[], args)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kmapcheck-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The stderr lines that mention `name`.
fn lines_naming<'a>(stderr: &'a str, name: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.contains(name)).collect()
}

/// Asserts one stderr line names `name` and contains `why`, and the summary
/// says inputs were skipped.
fn assert_skipped(r: &Run, name: &str, why: &str) {
    let lines = lines_naming(&r.stderr, name);
    assert_eq!(lines.len(), 1, "one line for {name}:\n{}", r.stderr);
    assert!(
        lines[0].contains(why),
        "{name}: expected `{why}`:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("skipped because of errors"),
        "summary must say so:\n{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

/// Peak resident memory (KiB) of the largest child this test process waited
/// for. Tests of this file run in parallel, so it is a max over all of their
/// runs: an upper bound for each.
fn max_child_rss_kib() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and nothing else.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut usage), 0);
        usage.ru_maxrss
    }
}

#[test]
fn empty_binary_latin1_crlf_and_unterminated_files() {
    let dir = temp_dir("small");
    std::fs::write(dir.join("empty.c"), b"").unwrap();
    std::fs::write(dir.join("binary.c"), b"kmap_local_page\0\x7fELF").unwrap();
    let mut latin1 = b"/* D\xe9j\xe0 vu, \xa9 caf\xe9 */\n".to_vec();
    latin1.extend_from_slice(SEED.as_bytes());
    std::fs::write(dir.join("latin1.c"), latin1).unwrap();
    std::fs::write(dir.join("crlf.c"), SEED.replace('\n', "\r\n")).unwrap();
    std::fs::write(dir.join("lf.c"), SEED).unwrap();
    let comment =
        format!("{SEED}int g(void)\n{{\n\tvoid *q = kmap_local_page(pg); /* never closed\n");
    std::fs::write(dir.join("open_comment.c"), comment).unwrap();
    let string = format!("int g(void)\n{{\n\tvoid *q = kmap_local_page(\"never closed\n{SEED}");
    std::fs::write(dir.join("open_string.c"), string).unwrap();
    let r = run(&["--format", "json", s(&dir)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_skipped(&r, "binary.c", "binary file");
    for quiet in [
        "empty.c",
        "latin1.c",
        "crlf.c",
        "lf.c",
        "open_comment.c",
        "open_string.c",
    ] {
        assert!(
            lines_naming(&r.stderr, quiet).is_empty(),
            "{quiet}: {}",
            r.stderr
        );
    }
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    let at = |file: &str| -> Vec<(u64, u64)> {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["path"].as_str().unwrap().ends_with(file))
            .map(|f| (f["line"].as_u64().unwrap(), f["column"].as_u64().unwrap()))
            .collect()
    };
    // Same finding, same place: CRLF and Latin-1 change neither lines nor columns.
    assert_eq!(at("/lf.c"), [(5, 6)]);
    assert_eq!(at("/crlf.c"), [(5, 6)]);
    assert_eq!(at("/latin1.c"), [(6, 6)]);
    // An unterminated comment swallows the rest of the file; an unterminated
    // string ends at its line, as the compiler would say: the seed is found.
    assert_eq!(at("/open_comment.c"), [(5, 6)]);
    assert_eq!(at("/open_string.c"), [(8, 6)]);
    assert!(at("/empty.c").is_empty());
}

/// The pipeline on a thread with `stack` bytes of stack, as rayon gives its
/// workers 2 MiB.
fn check_on_stack(src: String, stack: usize) -> kmapcheck::FileReport {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || Analyzer::new().unwrap().check_source(src.as_bytes()))
        .unwrap()
        .join()
        .expect("no stack overflow (an overflow aborts the whole test binary)")
}

fn nested(depth: usize, open: &str, close: &str) -> String {
    let head = "int f(void)\n{\n\tvoid *p = kmap_local_page(pg);\n\tspin_lock(&l);\n";
    format!(
        "{head}{}x();{}\tif (copy_from_user(p, u, 4))\n\t\treturn 1;\n}}\n",
        open.repeat(depth),
        close.repeat(depth)
    )
}

#[test]
fn nesting_10000_deep_is_summarized_within_half_a_rayon_stack() {
    let mix = "if (a) while (b) for (;;) do switch (c) { case 1: l: {";
    let cases = [
        ("blocks", nested(10_000, "{", "}")),
        ("ifs", nested(10_000, "if (a) ", "")),
        ("statements", nested(3_500, mix, "} } while (0);")),
    ];
    for (name, src) in cases {
        // 1 MiB: half what rayon workers get, so a debug build keeps a 2x margin.
        let report = check_on_stack(src, 1 << 20);
        assert!(report.limit.is_none(), "{name}: {:?}", report.limit);
        assert_eq!(report.stats.functions, 1, "{name}");
        assert_eq!(
            report.stats.partial, 1,
            "{name}: deep nesting is an approximation"
        );
        assert_eq!(
            report.diagnostics.len(),
            1,
            "{name}: the access after the nest is seen"
        );
    }
}

#[test]
fn a_megabyte_line_is_analyzed_and_a_megabyte_body_is_refused() {
    let dir = temp_dir("long");
    let table: String = (0..300_000).map(|i| format!("{:03},", i % 1000)).collect();
    let long_line = format!("static const int t[] = {{{table}}};\n{SEED}");
    assert!(long_line.len() > 1 << 20);
    std::fs::write(dir.join("long_line.c"), &long_line).unwrap();
    let body = format!(
        "int big(void)\n{{ void *p = kmap_local_page(pg); {} }}\n{SEED}",
        "a = b + c; ".repeat(100_000)
    );
    std::fs::write(dir.join("long_body.c"), body).unwrap();
    let r = run(&["--format", "json", s(&dir)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        lines_naming(&r.stderr, "long_line.c").is_empty(),
        "{}",
        r.stderr
    );
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("long_line.c")
    );
    assert_eq!(findings[0]["line"], 6);
    assert_skipped(&r, "long_body.c", "function `big` has a 1100035-byte body");
}

#[test]
fn nested_calls_are_analyzed_in_linear_time() {
    let dir = temp_dir("calls");
    // 30,000 nested calls: preprocessing used to rescan each call's arguments
    // (O(n^2): 9 s in release, minutes in debug); now about 2 s in debug.
    let n = 30_000;
    let src = format!(
        "int f(void)\n{{\n\tvoid *p = kmap_local_page(pg);\n\tspin_lock(&l);\n\tx = {}1{};\n\
         \tif (copy_from_user(p, u, 4))\n\t\treturn 1;\n}}\n",
        "f(".repeat(n),
        ")".repeat(n)
    );
    std::fs::write(dir.join("calls.c"), src).unwrap();
    let r = run(&["--file-timeout", "0", s(&dir)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains("calls.c:6:6"), "{}", r.stdout);
    assert!(r.elapsed < Duration::from_secs(20), "{:?}", r.elapsed);
}

#[test]
fn a_slow_file_is_stopped_by_the_time_limit() {
    let dir = temp_dir("slow");
    // Unclosed calls: tree-sitter's error recovery takes ~2 s per 250 KB in
    // a release build and longer in debug.
    let body = format!(
        "int slow(void)\n{{\n\tvoid *p = kmap_local_page(pg);\n{}}}\n",
        "f(;\n".repeat(60_000)
    );
    std::fs::write(dir.join("slow.c"), body).unwrap();
    std::fs::write(dir.join("seed.c"), SEED).unwrap();
    let r = run(&["--file-timeout", "0.3", s(&dir)]);
    assert_eq!(r.code, 1, "the scan goes on to seed.c: {}", r.stderr);
    assert_skipped(
        &r,
        "slow.c",
        "exceeded the 0.3 s time limit (--file-timeout) in function `slow`",
    );
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    let strict = run(&["--strict", "--file-timeout", "0.3", s(&dir)]);
    assert_eq!(strict.code, 2, "--strict turns a skipped file into exit 2");
}

#[test]
fn a_parse_cancelled_by_the_time_limit_does_not_leak_into_the_next_file() {
    use kmapcheck::{Options, rules};
    let hurried = Options {
        file_timeout: Some(Duration::from_millis(300)),
        ..Options::default()
    };
    let slow = format!(
        "int slow(void)\n{{\n\tvoid *p = kmap_local_page(pg);\n{}}}\n",
        "f(;\n".repeat(60_000)
    );
    // One thread, so both files go through the same thread-local parser:
    // a cancelled tree-sitter parse resumes on the next call unless reset.
    std::thread::spawn(move || {
        let timed = Analyzer::with_options(rules::RULES.to_vec(), hurried).unwrap();
        let report = timed.check_source(slow.as_bytes());
        // Stopped inside the function (in its parse, which takes seconds),
        // not before it: otherwise there is no cancelled parse to leak.
        assert!(
            matches!(&report.limit, Some(kmapcheck::Limit::Timeout { during, .. })
                if during == "function `slow`"),
            "{:?}",
            report.limit
        );
        let report = Analyzer::new().unwrap().check_source(SEED.as_bytes());
        assert_eq!(report.limit, None);
        assert_eq!(report.diagnostics.len(), 1, "{:?}", report.diagnostics);
        assert_eq!(report.stats.complete, 1);
    })
    .join()
    .expect("no panic");
}

#[test]
fn huge_files_are_skipped_or_analyzed_in_bounded_memory() {
    let dir = temp_dir("huge");
    let unit = format!("{SEED}\n");
    // 100 MB: over the size limit, refused from its size without being read.
    let huge = dir.join("huge.c");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&huge).unwrap());
        let chunk = unit.repeat(10_000);
        while f.get_ref().metadata().unwrap().len() < 100_000_000 {
            f.write_all(chunk.as_bytes()).unwrap();
            f.flush().unwrap();
        }
    }
    let r = run(&[s(&huge)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_skipped(&r, "huge.c", "larger than the 67108864-byte limit");
    // 16 MB of real functions, all with a finding: analyzed to the end or
    // stopped by the time limit, never more than ~1 GiB.
    let big = dir.join("big.c");
    std::fs::write(&big, unit.repeat(16_000_000 / unit.len())).unwrap();
    let r = run(&["--file-timeout", "3", "--format", "json", s(&big)]);
    let timed_out = lines_naming(&r.stderr, "big.c");
    if r.code == 1 {
        assert!(timed_out.is_empty(), "{}", r.stderr);
        let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
        assert_eq!(
            doc["findings"].as_array().unwrap().len(),
            16_000_000 / unit.len()
        );
    } else {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_skipped(&r, "big.c", "exceeded the 3 s time limit");
    }
    let rss = max_child_rss_kib();
    assert!(rss < 1 << 20, "peak child memory {rss} KiB");
    // 116 MB: not left behind in /tmp.
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fifos_devices_and_symlink_loops_are_named_and_never_opened() {
    let dir = temp_dir("special");
    let fifo = dir.join("pipe.c");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    std::os::unix::fs::symlink("loop.c", dir.join("loop.c")).unwrap();
    std::os::unix::fs::symlink("nowhere.c", dir.join("dangling.c")).unwrap();
    std::os::unix::fs::symlink("/dev/null", dir.join("null.c")).unwrap();
    std::fs::write(dir.join("seed.c"), SEED).unwrap();
    // In a directory: the FIFO is named from its type, broken links are named,
    // a link to a device is not followed.
    let r = run(&[s(&dir)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_skipped(&r, "pipe.c", "named pipe (FIFO), not opened");
    assert_skipped(&r, "loop.c", "Too many levels of symbolic links");
    assert_skipped(&r, "dangling.c", "unresolvable symlink");
    assert!(lines_naming(&r.stderr, "null.c").is_empty(), "{}", r.stderr);
    // Given explicitly, links are followed: to a device, and into a loop.
    let r = run(&[s(&fifo), s(&dir.join("null.c")), s(&dir.join("loop.c"))]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_skipped(&r, "pipe.c", "named pipe (FIFO), not opened");
    assert_skipped(&r, "null.c", "a device node, not opened");
    assert_skipped(&r, "loop.c", "Too many levels of symbolic links");
    // --dump-cfg reads the files it is given: a FIFO is an error, not a hang.
    let r = run(&["--dump-cfg", s(&fifo)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("pipe.c: not a regular file"),
        "{}",
        r.stderr
    );
}

#[test]
fn files_that_vanish_or_turn_into_fifos_mid_scan_are_named() {
    let dir = temp_dir("mid");
    for name in ["gone.c", "fifo.c", "seed.c"] {
        std::fs::write(dir.join(name), SEED).unwrap();
    }
    let inputs = Inputs::walk(std::slice::from_ref(&dir), false);
    // Between the walk and the read, as a concurrent `git checkout` would.
    std::fs::remove_file(dir.join("gone.c")).unwrap();
    std::fs::remove_file(dir.join("fifo.c")).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(dir.join("fifo.c"))
            .status()
            .unwrap()
            .success()
    );
    let analyzer = Analyzer::new().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(inputs.check(&analyzer, 2).unwrap());
    });
    let result = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a FIFO must not block the scan");
    let problems = result.problems.join("\n");
    assert_eq!(result.problems.len(), 2, "{problems}");
    assert!(
        problems.contains("fifo.c: a named pipe (FIFO), not opened"),
        "{problems}"
    );
    assert!(
        problems.contains("gone.c: cannot read: No such file"),
        "{problems}"
    );
    assert_eq!(result.files.len(), 1);
    assert!(result.files[0].path.ends_with("seed.c"));
    assert_eq!(result.stats.files_skipped, 2);
}

/// Can this process read a file with mode 000? Root (CAP_DAC_OVERRIDE) can.
fn reads_despite_mode_000(path: &Path) -> bool {
    std::fs::read(path).is_ok()
}

#[test]
fn unreadable_files_and_directories_are_named_even_as_root() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("perm");
    std::fs::write(dir.join("seed.c"), SEED).unwrap();
    std::fs::write(dir.join("locked.c"), SEED).unwrap();
    std::fs::create_dir(dir.join("locked_dir")).unwrap();
    std::fs::write(dir.join("locked_dir/inner.c"), SEED).unwrap();
    let mode0 = std::fs::Permissions::from_mode(0o000);
    std::fs::set_permissions(dir.join("locked.c"), mode0.clone()).unwrap();
    std::fs::set_permissions(dir.join("locked_dir"), mode0).unwrap();
    // As root, mode 000 denies nothing: drop the two capabilities that
    // override it for the child, so the denial really happens.
    let privileged = reads_despite_mode_000(&dir.join("locked.c"));
    let setpriv: &[&str] = &["setpriv", "--bounding-set=-dac_override,-dac_read_search"];
    let can_drop = privileged
        && Command::new(setpriv[0])
            .args(&setpriv[1..])
            .arg("true")
            .status()
            .is_ok_and(|s| s.success());
    let wrapper: &[&str] = if can_drop { setpriv } else { &[] };
    let r = run_in(wrapper, &[s(&dir)]);
    let restore = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(dir.join("locked_dir"), restore.clone()).unwrap();
    std::fs::set_permissions(dir.join("locked.c"), restore).unwrap();
    if privileged && !can_drop {
        // Honest fallback: nothing is denied, so everything is analyzed.
        eprintln!("notice: root without setpriv: mode 000 cannot deny reads here");
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("in 3 file(s) checked"), "{}", r.stderr);
        return;
    }
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_skipped(&r, "locked.c", "cannot read: Permission denied");
    assert_skipped(&r, "locked_dir", "Permission denied");
    assert!(r.stdout.contains("seed.c"), "{}", r.stdout);
}

/// KM011 is off by default, so the tests above do not run it: the same
/// hostile shapes with every rule on. A region under 10,000 nested blocks
/// fits half a rayon stack; 3,000 functions with a region each (fixes,
/// line numbers) and one function with 60 regions stay fast.
#[test]
fn km011_on_deep_nesting_and_many_regions() {
    let all = || Analyzer::with_rules(kmapcheck::rules::RULES.to_vec()).unwrap();
    let region =
        "\tp = kmap_atomic(pg);\n\tif (copy_from_user(p, u, 4))\n\t\tr = 1;\n\tkunmap_atomic(p);\n";
    let depth = 10_000;
    let deep = format!(
        "int f(void)\n{{\n{}{region}{}}}\n",
        "{".repeat(depth),
        "}".repeat(depth)
    );
    let report = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || all().check_source(deep.as_bytes()))
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert!(report.limit.is_none(), "{:?}", report.limit);
    assert!(report.diagnostics.iter().any(|d| d.code == "KM011"));

    let n = 3_000;
    let many: String = (0..n)
        .map(|i| {
            format!("int f{i}(void)\n{{\n\tvoid *p;\n\tint r = 0;\n\n{region}\treturn r;\n}}\n")
        })
        .collect();
    let wide = format!("int g(void)\n{{\n{}\treturn r;\n}}\n", region.repeat(60));
    for (name, src, notes) in [("many", many, n), ("wide", wide, 1)] {
        let start = Instant::now();
        let report = all().check_source(src.as_bytes());
        let elapsed = start.elapsed();
        let km011: Vec<_> = report
            .diagnostics
            .iter()
            .filter(|d| d.code == "KM011")
            .collect();
        // "wide": one region, since every unmap may end the one map site.
        assert!(km011.len() >= notes, "{name}: {} notes", km011.len());
        assert!(elapsed < Duration::from_secs(20), "{name}: {elapsed:?}");
    }
}

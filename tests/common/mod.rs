//! Running the built binary from integration tests: one place for the
//! "spawn, wait, capture (exit code, stdout, stderr)" that every CLI-level
//! test needs. Each test crate uses a subset of these.
#![allow(
    dead_code,
    reason = "each test crate includes this module and uses part of it"
)]

use std::path::Path;
use std::process::Command;

/// A command for the kmapcheck binary built for these tests.
pub fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kmapcheck"))
}

/// Runs `cmd` to completion: exit code (-1 if killed by a signal), stdout, stderr.
pub fn capture(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kmapcheck ARGS` from the test's working directory (the crate root).
pub fn kmapcheck(args: &[&str]) -> (i32, String, String) {
    capture(command().args(args))
}

/// `kmapcheck ARGS` run from `cwd` (config discovery, relative paths).
pub fn kmapcheck_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    capture(command().current_dir(cwd).args(args))
}

//! `make C=1 CHECK=kmapcheck`: kbuild runs the checker as it runs sparse,
//! `$(CHECK) $(CHECKFLAGS) $(c_flags) file.c` (scripts/Makefile.build), with
//! compiler flags such as `-D__KERNEL__ -Iinclude -include kconfig.h -Wbitwise
//! -m64 --arch=x86 -std=gnu11 -fno-strict-aliasing`. kmapcheck needs none of
//! them: it recognises the convention, skips every flag (and a flag's
//! separate argument), and checks the `.c` operands.

use std::ffi::OsString;
use std::path::PathBuf;

/// Environment variable: when `1`, findings make the sparse-style run exit 1
/// (sparse itself never fails a build, so by default neither do we).
pub const EXIT_ENV: &str = "KMAPCHECK_SPARSE_EXIT";

/// Flags of gcc/sparse that take their value as the next argument.
const WITH_SEPARATE_VALUE: [&str; 17] = [
    "-include",
    "-imacros",
    "-isystem",
    "-idirafter",
    "-iquote",
    "-iprefix",
    "-iwithprefix",
    "-isysroot",
    "-x",
    "-o",
    "-MF",
    "-MT",
    "-MQ",
    "-D",
    "-U",
    "-I",
    "--arch",
];

/// Is `arg` a compiler-style flag that no kmapcheck option looks like?
/// kmapcheck's own options are long (`--format`) or `-j`, `-h`, `-V`.
fn is_compiler_flag(arg: &str) -> bool {
    if let Some(long) = arg.strip_prefix("--") {
        return long == "arch" || long.starts_with("arch=");
    }
    const PREFIXES: [&str; 15] = [
        "-D", "-U", "-I", "-W", "-m", "-f", "-O", "-g", "-E", "-x", "-n", "-v", "-std=",
        "-include", "-isystem",
    ];
    PREFIXES.iter().any(|p| arg.starts_with(p))
}

/// Does this command line follow the sparse convention?
pub fn is_sparse_style(args: &[OsString]) -> bool {
    args.iter()
        .any(|a| a.to_str().is_some_and(is_compiler_flag))
}

/// A sparse-style command line, read.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The `.c` operands, in order.
    pub files: Vec<PathBuf>,
    /// Flags and other operands skipped, for `--stats`-style curiosity and tests.
    pub ignored: usize,
}

/// Reads a sparse-style command line (without the program name). Never
/// fails: an unknown flag must not break a kernel build.
pub fn parse(args: &[OsString]) -> Invocation {
    let mut files = Vec::new();
    let mut ignored = 0;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text.starts_with('-') && text.len() > 1 {
            ignored += 1;
            if WITH_SEPARATE_VALUE.contains(&text.as_ref()) {
                ignored += usize::from(iter.next().is_some());
            }
            continue;
        }
        let path = PathBuf::from(arg);
        if path.extension().is_some_and(|e| e == "c") {
            files.push(path);
        } else {
            ignored += 1;
        }
    }
    Invocation { files, ignored }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn kmapcheck_own_command_lines_are_not_sparse_style() {
        for line in [
            &["mm/"][..],
            &["--format", "gcc", "-j", "4", "mm/shmem.c"],
            &["-j4", "--min-severity", "error", "."],
            &["--explain", "KM001"],
            &["-V"],
            &["--baseline", "b.json", "--select", "KM001"],
        ] {
            assert!(!is_sparse_style(&os(line)), "{line:?}");
        }
    }

    #[test]
    fn kbuild_command_lines_are_sparse_style_and_keep_only_c_operands() {
        let argv = os(&[
            "-D__linux__",
            "-Dlinux",
            "-Wbitwise",
            "-Wno-return-void",
            "--arch=x86",
            "-mlittle-endian",
            "-m64",
            "-Wp,-MMD,mm/.shmem.o.d",
            "-nostdinc",
            "-I./arch/x86/include",
            "-include",
            "./include/linux/kconfig.h",
            "-isystem",
            "/usr/lib/gcc/x86_64-linux-gnu/12/include",
            "-std=gnu11",
            "-O2",
            "-fno-strict-aliasing",
            "-DKBUILD_MODNAME=\"shmem\"",
            "-x",
            "c",
            "mm/shmem.c",
        ]);
        assert!(is_sparse_style(&argv));
        let inv = parse(&argv);
        assert_eq!(inv.files, [PathBuf::from("mm/shmem.c")]);
        assert_eq!(inv.ignored, argv.len() - 1);
    }
}

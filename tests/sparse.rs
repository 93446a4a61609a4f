//! `make C=1 CHECK=kmapcheck`: the binary called with kbuild's sparse-style
//! command line (CHECKFLAGS then c_flags then the file, as
//! scripts/Makefile.build's cmd_checksrc builds it for x86_64 in 6.12).

mod common;

/// What kbuild passes before the file, minus the long tail of -f/-m flags
/// that add nothing a test of the convention needs beyond these.
const KBUILD_ARGS: &[&str] = &[
    "-D__linux__",
    "-Dlinux",
    "-D__STDC__",
    "-Dunix",
    "-D__unix__",
    "-Wbitwise",
    "-Wno-return-void",
    "-Wno-unknown-attribute",
    "-D__x86_64__",
    "--arch=x86",
    "-mlittle-endian",
    "-m64",
    "-Wp,-MMD,fixtures/report/.mixed.o.d",
    "-nostdinc",
    "-I./arch/x86/include",
    "-I./arch/x86/include/generated",
    "-I./include",
    "-I./arch/x86/include/uapi",
    "-include",
    "./include/linux/compiler-version.h",
    "-include",
    "./include/linux/kconfig.h",
    "-include",
    "./include/linux/compiler_types.h",
    "-D__KERNEL__",
    "-fmacro-prefix-map=./=",
    "-std=gnu11",
    "-fshort-wchar",
    "-funsigned-char",
    "-fno-common",
    "-fno-PIE",
    "-fno-strict-aliasing",
    "-mno-sse",
    "-mno-mmx",
    "-mno-sse2",
    "-mno-3dnow",
    "-mno-avx",
    "-fcf-protection=branch",
    "-fno-jump-tables",
    "-m64",
    "-falign-jumps=1",
    "-mcmodel=kernel",
    "-mno-red-zone",
    "-O2",
    "-fno-allow-store-data-races",
    "-g",
    "-gdwarf-5",
    "-fdiagnostic-prefix",
    "-Wall",
    "-Wundef",
    "-Werror=strict-prototypes",
    "-Wno-format-security",
    "-isystem",
    "/usr/lib/gcc/x86_64-linux-gnu/12/include",
    "-v",
    "-E",
    "-DKBUILD_MODFILE=\"mm/shmem\"",
    "-DKBUILD_BASENAME=\"shmem\"",
    "-DKBUILD_MODNAME=\"shmem\"",
    "-D__KBUILD_MODNAME=kmod_shmem",
    // Flags no sparse version knows must not fail the build either.
    "-fsome-future-flag=3",
    "-Wno-not-yet-invented",
    "-mbranch-protection=none",
];

fn check(file: &str, env: Option<(&str, &str)>) -> (i32, String, String) {
    let mut cmd = common::command();
    cmd.args(KBUILD_ARGS)
        .arg(file)
        .env_remove("KMAPCHECK_SPARSE_EXIT");
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    common::capture(&mut cmd)
}

#[test]
fn sparse_style_call_prints_gcc_findings_on_stderr_and_exits_0() {
    let (code, out, err) = check("fixtures/report/mixed.c", None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "", "stdout stays empty, as with sparse");
    let findings: Vec<&str> = err.lines().filter(|l| l.ends_with("[KM001]")).collect();
    assert_eq!(
        findings,
        [
            "fixtures/report/mixed.c:21:6: error: `copy_from_user()` may fault under `kmap_local_page()`: pagefault_disable() is missing [KM001]",
            "fixtures/report/mixed.c:34:8: warning: `copy_from_user()` may fault under `kmap_local_folio()`: pagefault_disable() is missing [KM001]",
        ]
    );
}

#[test]
fn the_exit_env_var_makes_findings_fail_the_build() {
    let (code, _, _) = check(
        "fixtures/report/mixed.c",
        Some(("KMAPCHECK_SPARSE_EXIT", "1")),
    );
    assert_eq!(code, 1);
    let (code, _, err) = check(
        "fixtures/KM001/seed_mfill_fixed.c",
        Some(("KMAPCHECK_SPARSE_EXIT", "1")),
    );
    assert_eq!((code, err.as_str()), (0, ""));
}

#[test]
fn a_missing_file_is_named_but_does_not_fail_the_build() {
    let (code, _, err) = check("mm/no-such-file.c", None);
    assert_eq!(code, 0);
    assert!(err.contains("mm/no-such-file.c"), "{err}");
}

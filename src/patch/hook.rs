//! `kmapcheck install-hook`: a plain git pre-commit hook that checks what
//! the commit changes (`kmapcheck --staged`). For the pre-commit framework,
//! see .pre-commit-hooks.yaml (hook id `kmapcheck-staged`).

use std::path::{Path, PathBuf};

/// The hook script; `exe` is the kmapcheck that installed it, so the hook
/// runs the same version whatever PATH the commit is made with.
pub fn script(exe: &str) -> String {
    let quoted = exe.replace('\'', "'\\''");
    format!(
        "#!/bin/sh\n\
         # Installed by `kmapcheck install-hook`: checks the staged changes in\n\
         # patch mode (docs/patch-mode.md). Skip once with `git commit --no-verify`.\n\
         exec '{quoted}' --staged --format gcc\n"
    )
}

/// Writes the hook of the repository holding `dir`; refuses to replace an
/// existing hook unless `force`. Returns the hook's path.
pub fn install(dir: &Path, force: bool) -> Result<PathBuf, String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--git-path", "hooks"])
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err("not inside a git repository".to_owned());
    }
    let hooks = dir.join(String::from_utf8_lossy(&out.stdout).trim());
    let hook = hooks.join("pre-commit");
    if hook.exists() && !force {
        return Err(format!(
            "{} already exists; not replaced (use --force)",
            hook.display()
        ));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find kmapcheck itself: {e}"))?;
    std::fs::create_dir_all(&hooks).map_err(|e| format!("{}: {e}", hooks.display()))?;
    std::fs::write(&hook, script(&exe.to_string_lossy()))
        .map_err(|e| format!("{}: {e}", hook.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", hook.display()))?;
    }
    Ok(hook)
}

//! `.kmapcheck.toml`: per-project settings, found upward from the scanned
//! paths (or named with `--config`). See docs/config.md for every key.
//!
//! Unknown keys are errors (serde `deny_unknown_fields`): a misspelt
//! `exlcude` silently checking everything is worse than a failed run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::catalogue::ExtraApi;
use crate::diag::Severity;

/// The file name looked for in each scanned path's directory and its parents.
pub const FILE_NAME: &str = ".kmapcheck.toml";

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub rules: RulesSection,
    /// Globs over paths relative to the config file's directory.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Extra API knowledge, merged into the built-in catalogue.
    #[serde(default)]
    pub api: Option<ExtraApi>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RulesSection {
    pub select: Option<Vec<String>>,
    #[serde(default)]
    pub ignore: Vec<String>,
    pub min_severity: Option<Severity>,
    /// Rule code or type name -> severity.
    #[serde(default)]
    pub severity: BTreeMap<String, Severity>,
}

/// A config file that was read, with the directory its globs are relative to.
pub struct Loaded {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub config: Config,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// `line` is 1-based; the message is toml's, on one line.
    #[error("{path}:{line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
    // User text is escaped: an error is one line, even for a pattern with a
    // newline in it (found by fuzzing the config).
    #[error("{path}: exclude pattern `{}`: {}", .pattern.escape_debug(), .message.escape_debug())]
    Glob {
        path: String,
        pattern: String,
        message: String,
    },
    #[error(
        "the paths are governed by different {FILE_NAME} files ({first} and {second}); check them separately or pass --config"
    )]
    Ambiguous { first: String, second: String },
}

/// The nearest `.kmapcheck.toml` in `start` or one of its parents.
fn find_upward(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|candidate| candidate.is_file())
}

/// The config file that governs `paths`: each path's nearest one upward; all
/// must agree (a path without one disagrees with a path with one), since one
/// run has one rule set and one catalogue.
pub fn discover(paths: &[PathBuf]) -> Result<Option<PathBuf>, ConfigError> {
    let mut first: Option<Option<PathBuf>> = None;
    for path in paths {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        let start = if abs.is_dir() {
            abs.as_path()
        } else {
            abs.parent().unwrap_or(&abs)
        };
        let found = find_upward(start);
        match &first {
            Some(seen) if *seen != found => {
                let name = |c: &Option<PathBuf>| {
                    c.as_ref()
                        .map_or_else(|| "none".to_owned(), |p| p.display().to_string())
                };
                return Err(ConfigError::Ambiguous {
                    first: name(seen),
                    second: name(&found),
                });
            }
            Some(_) => {}
            None => first = Some(found),
        }
    }
    Ok(first.flatten())
}

/// Parses a config file's text; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |span| {
            text[..span.start.min(text.len())].matches('\n').count() + 1
        });
        ConfigError::Parse {
            path: path.display().to_string(),
            line,
            // toml's message names the key (`unknown field `exlcude`, expected
            // one of ...`); its Display adds a multi-line source excerpt.
            message: e.message().replace('\n', " "),
        }
    })
}

pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let config = parse(path, &text)?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let dir = abs.parent().map(Path::to_owned).unwrap_or_default();
    Ok(Loaded {
        path: path.to_owned(),
        dir,
        config,
    })
}

/// Decides whether a walked path is excluded by the config's globs.
#[derive(Debug)]
pub struct Exclude {
    dir: PathBuf,
    set: GlobSet,
}

impl Exclude {
    /// Patterns follow .gitignore habits: `*` stays within one path
    /// component, `**` crosses them, and a pattern without `/` matches a
    /// file or directory name at any depth.
    pub fn new(loaded: &Loaded) -> Result<Self, ConfigError> {
        let mut builder = GlobSetBuilder::new();
        for pattern in &loaded.config.exclude {
            let anchored = pattern.trim_start_matches('/');
            let full = if pattern.contains('/') {
                anchored.to_owned()
            } else {
                format!("**/{anchored}")
            };
            // `dir/**` also names `dir` itself, so the walk prunes it whole.
            let whole_dir = full.strip_suffix("/**").map(str::to_owned);
            for glob in std::iter::once(full).chain(whole_dir) {
                let glob = GlobBuilder::new(&glob)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| ConfigError::Glob {
                        path: loaded.path.display().to_string(),
                        pattern: pattern.clone(),
                        message: e.kind().to_string(),
                    })?;
                builder.add(glob);
            }
        }
        let set = builder.build().map_err(|e| ConfigError::Glob {
            path: loaded.path.display().to_string(),
            pattern: String::new(),
            message: e.to_string(),
        })?;
        Ok(Self {
            dir: loaded.dir.clone(),
            set,
        })
    }

    /// Is `path` (as walked: relative to the working directory, or absolute)
    /// excluded? Paths outside the config's directory never are.
    pub fn is_excluded(&self, path: &Path) -> bool {
        if self.set.is_empty() {
            return false;
        }
        let Ok(abs) = std::path::absolute(path) else {
            return false;
        };
        // `absolute` keeps `..` and `.`; drop `.` so `./mm` and `mm` agree.
        let abs: PathBuf = abs
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        abs.strip_prefix(&self.dir)
            .is_ok_and(|rel| self.set.is_match(rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_the_key_the_file_and_the_line() {
        let err = parse(
            Path::new("x/.kmapcheck.toml"),
            "exclude = []\n[rules]\nselct = [\"KM001\"]\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.starts_with("x/.kmapcheck.toml:3: unknown field `selct`"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        let err = parse(Path::new("c.toml"), "[api]\nacess = []\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown field `acess`"), "{err}");
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            Path::new("c.toml"),
            r#"
            exclude = ["drivers/staging/**", "*_test.c"]
            [rules]
            select = ["KM001"]
            ignore = []
            min-severity = "error"
            severity = { KMAP_FAULT_IN_KMAP_LOCAL = "warning" }
            [api]
            iterators = ["my_for_each"]
            [[api.access]]
            inatomic = false
            names = ["my_copy"]
            "#,
        )
        .unwrap();
        assert_eq!(c.rules.min_severity, Some(Severity::Error));
        assert_eq!(c.exclude.len(), 2);
        assert!(c.api.is_some());
    }

    #[test]
    fn globs_match_relative_to_the_config_directory() {
        let dir = std::env::temp_dir().join("kmapcheck-glob-test");
        let loaded = Loaded {
            path: dir.join(FILE_NAME),
            dir: dir.clone(),
            config: Config {
                exclude: vec!["drivers/staging/**".into(), "*_test.c".into()],
                ..Config::default()
            },
        };
        let ex = Exclude::new(&loaded).unwrap();
        assert!(ex.is_excluded(&dir.join("drivers/staging/x/y.c")));
        assert!(ex.is_excluded(&dir.join("drivers/staging")));
        assert!(ex.is_excluded(&dir.join("mm/kmap_test.c")));
        assert!(ex.is_excluded(&dir.join("./mm/kmap_test.c")));
        assert!(!ex.is_excluded(&dir.join("drivers/gpu/a.c")));
        assert!(!ex.is_excluded(Path::new("/elsewhere/drivers/staging/a.c")));
    }
}

//! Target 3: `.kmapcheck.toml` text through everything a config feeds:
//! parsing, exclude globs, rule selection, the catalogue merge of `[api]`,
//! and an analysis with the merged catalogue. Every mistake must come back as
//! an error value whose message is one line naming the file; nothing panics.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;

use kmapcheck::catalogue::Catalogue;
use kmapcheck::config::{self, ConfigError, Exclude, Loaded};
use kmapcheck::select::{Request, Selection};
use kmapcheck::{Analyzer, Options};

/// Code the merged catalogue is tried on: a kmap_local region with a copy,
/// under a lock-like call, in an iterator-like loop (written for the target).
const SOURCE: &[u8] = b"static int fill(struct page *page, const void __user *src)\n{\n\tvoid *kaddr = kmap_local_page(page);\n\tint ret = 0;\n\n\toot_lock(&dev->lock);\n\toot_for_each_slot(slot, dev) {\n\t\tret = oot_copy_in(kaddr, src, PAGE_SIZE);\n\t\tif (copy_from_user(kaddr, src, 4))\n\t\t\tret = -EFAULT;\n\t}\n\toot_unlock(&dev->lock);\n\tkunmap_local(kaddr);\n\treturn ret;\n}\n";

fn one_line(e: &dyn std::fmt::Display) {
    let text = e.to_string();
    assert!(!text.contains('\n'), "multi-line error: {text:?}");
}

fuzz_target!(|data: &[u8]| {
    // The loader reads with read_to_string: non-UTF-8 is a read error there.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz/.kmapcheck.toml");
    let mut config = match config::parse(path, text) {
        Ok(c) => c,
        Err(e) => {
            if let ConfigError::Parse { line, .. } = &e {
                assert!(*line >= 1 && *line <= text.lines().count() + 1, "line {line}");
            }
            one_line(&e);
            return;
        }
    };
    let api = config.api.take();
    let loaded = Loaded {
        path: path.to_owned(),
        dir: PathBuf::from("/fuzz"),
        config,
    };
    match Exclude::new(&loaded) {
        Ok(exclude) => {
            for p in ["/fuzz/mm/shmem.c", "/fuzz/a/b/c.h", "/elsewhere/x.c", "rel.c"] {
                let _ = exclude.is_excluded(Path::new(p));
            }
        }
        Err(e) => one_line(&e),
    }
    let rules = &loaded.config.rules;
    let request = Request {
        select: rules.select.as_deref(),
        ignore: rules.ignore.iter().map(String::as_str).collect(),
        severity: rules.severity.iter().map(|(n, s)| (n.as_str(), *s)).collect(),
        min_severity: rules.min_severity,
    };
    let selection = match Selection::new(&request) {
        Ok(s) => s,
        Err(e) => return one_line(&e),
    };
    let mut catalogue = Catalogue::builtin().expect("the built-in catalogue loads");
    if let Some(api) = api {
        if let Err(e) = catalogue.merge(api) {
            return one_line(&e);
        }
    }
    let analyzer = Analyzer::with_catalogue(selection.rules(), Options::default(), catalogue)
        .expect("an analyzer over a merged catalogue");
    let report = analyzer.check_source(SOURCE);
    for d in &report.diagnostics {
        assert!(d.primary.span.end <= SOURCE.len());
    }
});

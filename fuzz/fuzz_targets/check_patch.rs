//! Target 3: arbitrary bytes as a patch (issue 7): the diff/mbox parser, the
//! in-memory application and the hunk-only images, the pipeline on both
//! images and the checkpatch reporter. Parse errors are fine; panics,
//! hangs and spans outside the post-image are not.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use kmapcheck::Analyzer;
use kmapcheck::patch::{self, apply, diff};
use kmapcheck::report;

fn analyzer() -> &'static Analyzer {
    static ANALYZER: OnceLock<Analyzer> = OnceLock::new();
    ANALYZER.get_or_init(|| Analyzer::new().expect("the built-in catalogue loads"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(patches) = diff::parse(data) else {
        return;
    };
    for file in patches.iter().flat_map(|p| &p.files) {
        // Applying to the rebuilt pre-image and to garbage must not panic.
        let rebuilt = apply::from_hunks(file);
        let _ = apply::apply(&rebuilt.pre, file);
        let _ = apply::apply(data, file);
    }
    let options = patch::Options { all: true };
    let checked = patch::check(analyzer(), "fuzz.patch".into(), data.to_vec(), None, options)
        .expect("an input that parses once parses twice");
    for file in &checked.files {
        let len = file.findings.source.len();
        for d in &file.findings.diagnostics {
            assert!(d.primary.span.start <= d.primary.span.end && d.primary.span.end <= len);
        }
    }
    let unit = patch::checkpatch_unit(&checked);
    let _ = report::checkpatch::render(&[unit]);
});

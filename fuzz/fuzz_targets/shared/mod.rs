//! What both targets do with a file's bytes: the whole per-file pipeline as
//! the driver runs it, then the invariants that make its output true.

use std::sync::OnceLock;

use kmapcheck::Analyzer;
use kmapcheck::driver::FileFindings;
use kmapcheck::report;

fn analyzer() -> &'static Analyzer {
    static ANALYZER: OnceLock<Analyzer> = OnceLock::new();
    ANALYZER.get_or_init(|| Analyzer::new().expect("the built-in catalogue loads"))
}

/// Preprocess, find functions, parse, CFG, dataflow, every rule; then render
/// in every format, as the driver would for a file without NUL bytes.
pub fn check(data: &[u8]) {
    let report = analyzer().check_source(data);
    // The thread's parser is reused: nothing may leak from one file to the next.
    let again = analyzer().check_source(data);
    assert_eq!(
        report.diagnostics, again.diagnostics,
        "same input, same findings"
    );
    assert_eq!(report.limit, again.limit);
    for d in &report.diagnostics {
        for span in std::iter::once(&d.primary.span).chain(d.secondary.iter().map(|l| &l.span)) {
            // A span outside the file would point the user at nothing.
            assert!(
                span.start <= span.end && span.end <= data.len(),
                "{span:?} in {} bytes",
                data.len()
            );
        }
    }
    if memchr_nul(data) {
        return;
    }
    let files = [FileFindings {
        path: "fuzz.c".to_owned(),
        source: data.to_vec(),
        diagnostics: report.diagnostics,
    }];
    let _ = report::human::render(&files, false);
    let _ = report::json::render(&files, &Default::default());
}

fn memchr_nul(data: &[u8]) -> bool {
    data.contains(&0)
}

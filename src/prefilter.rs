//! Decide from raw bytes, without parsing, whether a file can matter.
//!
//! Almost no kernel file maps pages: one SIMD multi-substring search per file
//! (aho-corasick, as ripgrep uses) lets the scan skip the rest at read speed.

use aho_corasick::{AhoCorasick, MatchKind};

pub struct Prefilter {
    needles: AhoCorasick,
}

impl Prefilter {
    /// A prefilter for calls named `needles` (from the catalogue).
    pub fn new(needles: &[&str]) -> Self {
        let needles = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(needles)
            .expect("catalogue names are short literals; the automaton always builds");
        Self { needles }
    }

    pub fn may_match(&self, bytes: &[u8]) -> bool {
        self.needles.is_match(bytes)
    }

    /// Offsets of every needle occurrence that is a whole identifier.
    pub fn hits<'a>(&'a self, bytes: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        self.needles.find_iter(bytes).filter_map(move |m| {
            let before_ok = m.start() == 0 || !ident(bytes[m.start() - 1]);
            let after_ok = bytes.get(m.end()).is_none_or(|&b| !ident(b));
            (before_ok && after_ok).then_some(m.start())
        })
    }
}

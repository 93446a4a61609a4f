//! Target 1: arbitrary bytes through the whole per-file pipeline.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod shared;

fuzz_target!(|data: &[u8]| shared::check(data));

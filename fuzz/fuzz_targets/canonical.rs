#![no_main]
//! See coord_fuzz::check_canonical.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| coord_fuzz::check_canonical(data));

#![no_main]
//! See coord_fuzz::sql::check_sql.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| coord_fuzz::sql::check_sql(data));

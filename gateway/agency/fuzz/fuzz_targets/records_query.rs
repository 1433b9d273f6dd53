//! Routing and the records query string. Input: `<path>\n<query>`; see `query::check_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_agency_fuzz::query::check_bytes(data);
});

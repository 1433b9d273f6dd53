//! The gateway config loader on arbitrary text; see `config::check_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_agency_fuzz::config::check_bytes(data);
});

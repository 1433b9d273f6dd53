//! Row filters: `RowFilter::parse` on arbitrary UTF-8, and structured filters built with
//! `arbitrary` printed and parsed back. Input: bytes; see `rowfilter::check_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_policy_fuzz::rowfilter::check_bytes(data);
});

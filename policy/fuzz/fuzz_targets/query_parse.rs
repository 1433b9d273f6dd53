//! Licensee queries: `ClientQuery::from_pairs` on arbitrary query strings, print/parse round
//! trips and evaluation without panics. See `query::check_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_policy_fuzz::query::check_bytes(data);
});

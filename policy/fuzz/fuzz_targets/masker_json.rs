//! The streaming masker over JSON bodies: a JSON array, a JSON object holding the array at
//! `data.items` or `results`, and NDJSON; output as JSON, NDJSON or CSV.
//! Input: an 8-byte case header (see `Case::decode`), then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_policy_fuzz::masker::{check, Case};

fuzz_target!(|data: &[u8]| {
    if let Some((case, body)) = Case::decode(data, false) {
        check(&case, body);
    }
});

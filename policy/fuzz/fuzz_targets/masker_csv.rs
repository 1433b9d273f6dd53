//! The streaming masker over CSV bodies (RFC 4180 with a header row); output as JSON, NDJSON
//! or CSV. Input: an 8-byte case header (see `Case::decode`; its input byte is ignored), then
//! the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_policy_fuzz::masker::{check, Case};

fuzz_target!(|data: &[u8]| {
    if let Some((case, body)) = Case::decode(data, true) {
        check(&case, body);
    }
});

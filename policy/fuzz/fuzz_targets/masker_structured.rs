//! The streaming masker over structured bodies (`gen.rs`): records built with `arbitrary` in
//! every input format (JSON array, JSON at a path, NDJSON, CSV), so that most runs reach the
//! emitting paths; same checks as `masker_json` / `masker_csv`.
//! Input: one byte (`% 5 == 4`: CSV input, else JSON), then `arbitrary` bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_policy_fuzz::{gen, masker::check};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if let Ok((case, body)) = gen::case(rest, sel % 5 == 4) {
        check(&case, &body);
    }
});

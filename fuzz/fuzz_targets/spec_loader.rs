//! Any bytes as a spec file: parse, schema, CEL. Must never panic, hang or blow up memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kelvin_crds::load::load_documents("fuzz.yaml", data);
});

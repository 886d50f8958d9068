//! Any bytes as an inventory: JSON (streamed) when it starts with '{', else YAML.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kelvin_crds::inventory::load_inventory("fuzz", data);
});

//! The whole validate path, as `kelvin validate` and `kelvin plan --offline` run it: load,
//! simulate nodes, analyze, plan. Nodes per pool are capped so a valid spec asking for
//! 100,000 nodes tests the logic, not the machine.
#![no_main]

use k8s_openapi::jiff::Timestamp;
use kelvin_core::observed::{Observed, simulate_at_most};
use kelvin_crds::load::{Outcome, load_documents};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for outcome in load_documents("fuzz.yaml", data) {
        if let Outcome::Cluster(cluster, _) = outcome {
            let nodes = simulate_at_most(&cluster.spec, 64);
            let Ok(observed) = Observed::new(nodes, Timestamp::UNIX_EPOCH) else {
                continue;
            };
            let _ = kelvin_core::analyze(&cluster.spec, &observed);
            let _ = kelvin_core::plan::plan(&cluster, &observed);
        }
    }
});

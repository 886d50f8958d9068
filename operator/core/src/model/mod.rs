//! The physics and the rules, each next to its formula: power, cooling, fabric, devices,
//! tenants, selectors, node placement and topology. Pure: values in, values out.
//! [`crate::analysis`] ties them together.

pub mod cooling;
pub mod devices;
pub mod fabric;
pub mod placement;
pub mod power;
pub mod selector;
pub mod tenants;
pub mod topology;

/// `1 node`, `8,750 nodes`: counts of nodes in messages, singular for one.
pub fn nodes(count: u64) -> String {
    if count == 1 {
        "1 node".to_owned()
    } else {
        format!("{count} nodes")
    }
}

/// `spec.gpuPools[i]` as a path.
pub fn pool_path(index: usize) -> String {
    format!("spec.gpuPools[{index}]")
}

/// `spec.fabrics[i]` as a path.
pub fn fabric_path(index: usize) -> String {
    format!("spec.fabrics[{index}]")
}

/// `spec.coolingZones[i]` as a path.
pub fn zone_path(index: usize) -> String {
    format!("spec.coolingZones[{index}]")
}

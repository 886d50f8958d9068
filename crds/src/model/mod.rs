//! The physics and the rules: power, cooling and fabric arithmetic, device checks, node
//! placement and the validation that ties them together. Pure: values in, values out.

pub mod cooling;
pub mod devices;
pub mod fabric;
pub mod nodes;
pub mod placement;
pub mod power;
pub mod selector;
mod validate;

/// Report types of the validation step.
pub mod validate_report {
    pub use super::validate::{PoolReport, max_unavailable};
}

pub use validate::{Analysis, analyze};

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

//! Kelvin's API types, the generated CRD and the pure model (validation and the power,
//! cooling and fabric arithmetic). No client, no clock, no I/O.

pub mod crd;
pub mod diagnostics;
pub mod load;
pub mod locate;
pub mod model;
pub mod names;
pub mod schema;
pub mod v1alpha1;

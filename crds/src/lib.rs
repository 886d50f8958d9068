//! Kelvin's API types, the generated CRD, the spec and inventory loader and the offline
//! schema + CEL checks. The physics and planning live in kelvin-core. No client, no I/O.

pub mod crd;
pub mod diagnostics;
pub mod inventory;
pub mod load;
pub mod locate;
pub mod names;
pub mod node;
pub mod schema;
pub mod sorted_map;
pub mod v1alpha1;

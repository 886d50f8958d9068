//! Kelvin's planning core and (in a later step) its controllers.
//!
//! The pipeline is `validate (kelvin-crds) -> build -> diff`, all pure: a spec and a set of
//! nodes in, desired objects and node changes out. The CLI's `plan` and the operator run the
//! same functions, so `plan` shows exactly what the operator will do.

pub mod build;
pub mod constants;
pub mod node_changes;
pub mod plan;
pub mod topology;

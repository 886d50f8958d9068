//! kelvin-core: Kelvin's pure core, shared by the CLI and the operator (DESIGN.md §1).
//!
//! ```text
//! Observed (nodes sorted by name, owned objects, now)
//!   -> analysis  (every rule: power, cooling, fabric, devices, tenants, placement)
//!   -> desired   (objects: one typed list per kind) + node_state (whole per-node labels/taints)
//!   -> rollout   (the node writes allowed now, within each pool's disruption budget)
//!   -> plan      (what the user sees) / status (what the operator writes back)
//! ```
//!
//! Values in, values out: no client, no tokio, no clock (`now` is part of [`observed::Observed`]).
//! The same `Observed` always gives the same output, whatever order its nodes arrived in.

pub mod analysis;
pub mod constants;
pub mod desired;
pub mod label_interest;
pub mod model;
pub mod node_state;
pub mod observed;
pub mod ownership;
pub mod plan;
pub mod quantity;
pub mod rollout;
pub mod status;

pub use analysis::{Analysis, analyze};

//! kelvin-operator: the I/O around kelvin-core. `observe` reads the cluster into an
//! `Observed` snapshot, kelvin-core plans, `apply` writes (server-side apply for objects and
//! node labels, merged taints), `controller` runs the pipeline per GpuCluster.

pub mod apply;
pub mod controller;
pub mod observe;

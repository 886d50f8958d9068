//! kelvin-operator: the I/O around kelvin-core. `node_cache` watches nodes into slim values,
//! `observe` reads the rest of the cluster into an `Observed` snapshot, kelvin-core plans,
//! `apply` writes (server-side apply for objects and node labels, merged taints),
//! `drain` evicts pods from nodes taken out of service, `controller` runs the pipeline per
//! GpuCluster; `leader` elects one acting replica,
//! `api_client` rate-limits and counts requests, `http` serves probes and `metrics`.

pub mod api_client;
pub mod apply;
pub mod controller;
pub mod drain;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod node_cache;
pub mod observe;

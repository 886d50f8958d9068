//! Kelvin's end-to-end harness: a real Kubernetes control plane for tests, with GPU nodes
//! simulated by kwok.
//!
//! [`cluster()`] starts one control plane per test binary (through `tests/cluster.sh up`, the
//! same script people use from the shell) the first time a test asks for it, and shares it with
//! every test of that binary. Tests keep to their own namespaces and object names
//! ([`unique_name`]). The control plane stops when the test process ends, however it ends: see
//! [`cluster`] for how. Set `KELVIN_E2E_KUBECONFIG` to run the tests against an existing
//! cluster instead (kind, see `tests/kind/`).
//!
//! [`GpuNodes`] creates Node objects that look like a provisioning system left them (hall,
//! cooling loop, rack, SKU labels and `nvidia.com/gpu` capacity); kwok keeps them Ready and runs
//! the pods scheduled to them. [`SpecNodes`] creates the nodes `kelvin plan --offline` simulates
//! for a spec, as they are.

pub mod cluster;
pub mod crd;
pub mod nodes;
pub mod operator;
pub mod process;
pub mod realistic;
pub mod third_party;

pub use cluster::{
    Cluster, Options, cluster, cluster_with_kueue, repo_root, unique_name, wait_for,
};
pub use nodes::{GpuNodes, Layout, SpecNodes};
pub use operator::OperatorProcess;
pub use process::{run, workspace_binary};

//! The live commands: `plan` against a cluster, `apply`, `status`, `zone set`, `destroy`.
//! Pure core, thin I/O: observing is the operator's library (`kelvin_operator::observe`),
//! planning is `kelvin_core::plan::plan`, and the CLI writes only the CRD and the GpuCluster
//! (and one zone's state): nodes and Kelvin's objects are the operator's to write.

pub mod apply;
pub mod cluster;
pub mod connect;
pub mod destroy;
pub mod diff;
pub mod plan;
pub mod progress;
pub mod prompt;
pub mod render;
pub mod saved;
pub mod status;
pub mod zone;

use std::path::Path;

use anyhow::{Context, Result};

use crate::{console::Console, input};
use plan::Spec;

/// A runtime for one command (the CLI is otherwise synchronous).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Specs of `paths` to plan against a cluster, and whether any could not be read (their
/// problems printed): invalid specs are planned too (the plan says they change nothing).
pub fn load_specs(
    paths: &[std::path::PathBuf],
    console: &mut Console,
) -> Result<(Vec<Spec>, bool)> {
    let loaded = input::load(paths, None)?;
    crate::print_diagnostics(console, &loaded.diagnostics);
    let failed = !loaded.diagnostics.is_empty();
    let mut specs = Vec::new();
    for (cluster, origin) in &loaded.clusters {
        let document = loaded.document(origin).with_context(|| {
            format!("re-reading document {} of {}", origin.document, origin.file)
        })?;
        specs.push(Spec {
            cluster: cluster.clone(),
            document,
        });
    }
    Ok((specs, failed))
}

/// Writes `plans` as a saved plan to `out`.
pub fn save(out: &Path, server: &str, plans: &[plan::LivePlan]) -> Result<()> {
    let mut saved = saved::SavedPlan::new(server);
    for plan in plans {
        saved.push(
            plan.spec.document.clone(),
            plan.fingerprint.clone(),
            &plan.planned.plan,
        )?;
    }
    saved.write(out)
}

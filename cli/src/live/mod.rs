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

use kelvin_core::plan::Plan;

use crate::{console::Console, input, output::Order};
use plan::Spec;

/// A runtime for one command (the CLI is otherwise synchronous).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Specs read for a live command.
pub struct LoadedSpecs {
    /// The specs that loaded, each with its place in the files.
    pub specs: Vec<(Order, Spec)>,
    /// Documents that could not be read or failed the schema, as plans that change nothing:
    /// `plan -o json` gives each its entry, as offline.
    pub rejected: Vec<(Order, Plan)>,
    /// Whether any problem was found (they are printed).
    pub failed: bool,
}

/// Specs of `paths` to plan against a cluster, and the documents that did not load (their
/// problems printed): invalid specs are planned too (the plan says they change nothing).
pub fn load_specs(paths: &[std::path::PathBuf], console: &mut Console) -> Result<LoadedSpecs> {
    let loaded = input::load(paths, None)?;
    crate::print_diagnostics(console, &loaded.diagnostics);
    let mut specs = Vec::new();
    for (cluster, origin) in &loaded.clusters {
        let document = loaded.document(origin).with_context(|| {
            format!("re-reading document {} of {}", origin.document, origin.file)
        })?;
        let spec = Spec {
            cluster: cluster.clone(),
            document,
        };
        specs.push((loaded.order(origin), spec));
    }
    let rejected = loaded
        .rejected
        .iter()
        .map(|r| {
            (
                loaded.order(&r.origin),
                Plan::rejected(&r.name, r.errors.clone()),
            )
        })
        .collect();
    Ok(LoadedSpecs {
        specs,
        rejected,
        failed: !loaded.diagnostics.is_empty(),
    })
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

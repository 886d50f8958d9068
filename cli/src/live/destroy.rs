//! `kelvin destroy NAME`: shows what goes (Kelvin's objects, its labels, taints and
//! annotations on the nodes) and what stays (Namespaces: they hold the tenants' jobs and
//! data), asks, deletes the GpuCluster, and waits for the operator's finalizer to finish.

use std::{collections::BTreeMap, fmt::Write as _, process::ExitCode, time::Duration};

use anyhow::{Result, anyhow, bail};
use kelvin_core::{
    constants::{FINALIZER, POOL_LABEL},
    observed::Timestamp,
    plan::orphans,
};
use kelvin_operator::observe;
use kube::api::DeleteParams;

use super::{
    cluster::{self, Operator},
    connect::{Target, cause, connect},
    progress::humanize,
    prompt,
};
use crate::{
    console::Console,
    output::{count, paint, thousands},
};

/// What `destroy` was asked.
pub struct DestroyOptions {
    pub auto_approve: bool,
    pub wait: bool,
    pub timeout: Duration,
}

/// `kelvin destroy NAME`.
pub fn command(
    target: &Target,
    name: &str,
    options: &DestroyOptions,
    console: &mut Console,
) -> Result<ExitCode> {
    prompt::require_terminal(options.auto_approve, "--auto-approve")?;
    super::runtime()?.block_on(async {
        let live = connect(target).await?;
        let stored = cluster::get(&live, name).await?.ok_or_else(|| {
            anyhow!("GpuCluster {name} not found in {}: nothing to destroy\n  fix: kelvin status lists the GpuClusters there are", live.describe())
        })?;
        let nodes = observe::nodes(&live.api).await.map_err(|e| anyhow!("listing nodes: {}", cause(&e)))?;
        let (observed, _evicting) = observe::observe(&live.api, name, nodes, Timestamp::now())
            .await
            .map_err(|e| anyhow!("observing the cluster for GpuCluster {name}: {e}: {}", cause(&e)))?;
        let analysis = kelvin_core::analyze(&stored.spec, &observed);
        let writes = kelvin_core::rollout::cleanup(&stored.spec, &analysis, &observed);
        let mut per_pool: BTreeMap<String, u64> = BTreeMap::new();
        for write in &writes {
            // Cleanup writes name no pool: the node's pool label says which it was in.
            let pool = write
                .pool
                .and_then(|p| stored.spec.gpu_pools.get(p))
                .map(|p| p.name.clone())
                .or_else(|| {
                    let at = observed.node_index(&write.node)?;
                    observed.nodes()[at].labels.get(POOL_LABEL).map(str::to_owned)
                })
                .unwrap_or_else(|| "(no pool)".to_owned());
            *per_pool.entry(pool).or_default() += 1;
        }
        let deleted: Vec<String> = orphans(&[], &observed.objects).map(|k| k.to_string()).collect();
        let kept: Vec<String> = observed
            .objects
            .keys()
            .filter(|k| k.kind == "Namespace")
            .map(|k| k.to_string())
            .collect();

        let mut out = format!(
            "GpuCluster {name} — destroy, against {} of cluster {}.\n\n",
            count(observed.nodes().len() as u64, "node"),
            live.describe()
        );
        if !per_pool.is_empty() {
            out.push_str("Node changes (Kelvin's labels, taints and annotations removed; others' stay):\n");
            for (pool, nodes) in &per_pool {
                let _ = writeln!(out, "  {} {pool}: {}", paint("~", "33"), count(*nodes, "node"));
            }
            out.push('\n');
        }
        out.push_str("Objects:\n");
        for key in &deleted {
            let _ = writeln!(out, "  {} {key}", paint("-", "31"));
        }
        let _ = writeln!(out, "  {} GpuCluster/{name}\n", paint("-", "31"));
        if !kept.is_empty() {
            let _ = writeln!(
                out,
                "Kept (Namespaces are never deleted: they hold the tenants' jobs and data):\n  {}\n",
                kept.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "{} 0 to add, {} to change, {} to destroy.\n",
            paint("Plan:", "1"),
            thousands(writes.len() as u64),
            thousands(deleted.len() as u64 + 1)
        );
        console.print(&out)?;

        if options.wait {
            match cluster::operator(&live).await {
                Operator::Absent => {
                    return Err(anyhow!(
                        "no Kelvin operator is running in this cluster: the finalizer {FINALIZER} would hold GpuCluster {name}'s deletion until one runs, and nothing was deleted\n  fix: install the operator ({}), or pass --no-wait to delete it for an operator started later",
                        cluster::INSTALL_HINT
                    ));
                }
                Operator::Unknown(why) => console.eprintln(&format!("warning: cannot tell whether a Kelvin operator runs (reading Leases: {why}); waiting as if one did")),
                Operator::Running { .. } => {}
            }
        }
        if !options.auto_approve {
            let detail = format!("Kelvin will delete GpuCluster {name} and everything above marked -, on {}.", live.describe());
            if !prompt::ask(console, &format!("Do you really want to destroy GpuCluster {name}?"), &[&detail, "There is no undo."], "Only 'yes' will be accepted to confirm.")? {
                console.println("Destroy cancelled.")?;
                return Ok(ExitCode::from(1));
            }
        }
        let api = cluster::api(&live);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => bail!("deleting GpuCluster {name}: {}", cause(&error)),
        }
        if !options.wait {
            console.println(&format!("GpuCluster/{name}: deletion requested (--no-wait); the operator's finalizer {FINALIZER} finishes it."))?;
            return Ok(ExitCode::SUCCESS);
        }
        console.println(&format!("Waiting for the operator's clean-up of GpuCluster {name} (finalizer {FINALIZER})…"))?;
        console.flush()?;
        let start = tokio::time::Instant::now();
        while cluster::get(&live, name).await?.is_some() {
            if start.elapsed() > options.timeout {
                bail!(
                    "timed out after {} waiting for the clean-up of GpuCluster {name}: it still carries the finalizer {FINALIZER}\n  fix: look at the operator's log and Events (kubectl describe gpuc {name}); wait longer with --timeout",
                    humanize(options.timeout)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        console.println(&format!(
            "Destroy complete: GpuCluster {name} and Kelvin's objects are gone, its nodes carry no Kelvin label, taint or annotation ({}).",
            humanize(start.elapsed().max(Duration::from_secs(1)))
        ))?;
        Ok(ExitCode::SUCCESS)
    })
}

//! `kelvin plan` against a cluster and `kelvin apply -f PATH… | PLAN`.

use std::{path::Path, process::ExitCode, time::Duration};

use anyhow::{Context, Result, anyhow, bail};
use kelvin_crds::v1alpha1::GpuCluster;

use super::{
    LoadedSpecs,
    cluster::{self, CrdChange, Operator, SpecChange},
    connect::{Live, Target, connect},
    plan::{LivePlan, Spec, live_plan},
    progress, prompt, render,
    saved::SavedPlan,
};
use crate::{
    Format,
    console::Console,
    output::{self, Order},
};

/// How long `apply` waits for the CRD to be Established.
const ESTABLISHED: Duration = Duration::from_secs(60);

/// Plans every spec against the cluster; prints the refusals and errors of each.
async fn plan_all(
    live: &Live,
    specs: Vec<Spec>,
    console: &mut Console,
) -> Result<(Vec<LivePlan>, bool)> {
    let mut plans = Vec::new();
    let mut failed = false;
    for spec in specs {
        let plan = live_plan(live, spec).await?;
        crate::print_diagnostics(console, &plan.planned.plan.errors);
        failed |= !plan.planned.plan.valid;
        if let SpecChange::Refused(fields) = &plan.spec_change {
            console.eprintln(&format!(
                "error: {}",
                render::refused_message(&plan.spec.name(), fields)
            ));
            failed = true;
        }
        plans.push(plan);
    }
    Ok((plans, failed))
}

/// `kelvin plan` against a live cluster.
pub fn plan_command(
    target: &Target,
    loaded: LoadedSpecs,
    format: Format,
    detailed: bool,
    out: Option<&Path>,
    console: &mut Console,
) -> Result<ExitCode> {
    let (orders, specs): (Vec<Order>, Vec<Spec>) = loaded.specs.into_iter().unzip();
    super::runtime()?.block_on(async {
        let live = connect(target).await?;
        let (plans, failed) = plan_all(&live, specs, console).await?;
        let failed = failed || loaded.failed;
        match format {
            Format::Json => {
                // Every document has its entry, as offline: a spec that did not load is one
                // that changes nothing, with its errors and no `live` section.
                let mut entries: Vec<(Order, serde_json::Value)> = orders
                    .iter()
                    .zip(&plans)
                    .map(|(order, plan)| (*order, render::json(plan, &live)))
                    .collect();
                entries.extend(
                    loaded
                        .rejected
                        .iter()
                        .map(|(order, plan)| (*order, render::rejected_json(plan))),
                );
                let text = output::json_plans(entries).context("serializing the plan")?;
                console.println(&text)?;
            }
            Format::Text => {
                for plan in &plans {
                    console.print(&render::text(plan, &live))?;
                }
            }
        }
        if let Some(out) = out {
            if failed {
                console.eprintln(&format!(
                    "error: the plan was not saved to {}: it has errors",
                    out.display()
                ));
            } else {
                super::save(out, &live.server, &plans)?;
                if format == Format::Text {
                    console.println(&format!(
                        "Saved the plan to {}. To apply exactly this plan: kelvin apply {}",
                        out.display(),
                        out.display()
                    ))?;
                }
            }
        }
        let changes = plans.iter().any(LivePlan::has_changes);
        Ok(match (failed, detailed, changes) {
            (true, _, _) => ExitCode::from(1),
            (false, true, true) => ExitCode::from(2),
            _ => ExitCode::SUCCESS,
        })
    })
}

/// What `apply` was asked.
pub struct ApplyOptions {
    pub auto_approve: bool,
    pub wait: bool,
    pub timeout: Duration,
}

/// `kelvin apply -f PATH…`.
pub fn apply_specs(
    target: &Target,
    loaded: LoadedSpecs,
    options: &ApplyOptions,
    console: &mut Console,
) -> Result<ExitCode> {
    prompt::require_terminal(options.auto_approve, "--auto-approve")?;
    if loaded.failed {
        bail!("nothing was applied: the files above have errors");
    }
    let specs = loaded.specs.into_iter().map(|(_, spec)| spec).collect();
    super::runtime()?.block_on(async {
        let live = connect(target).await?;
        let (plans, failed) = plan_all(&live, specs, console).await?;
        for plan in &plans {
            console.print(&render::text(plan, &live))?;
        }
        if failed {
            bail!("nothing was applied: the plan has errors (printed above)");
        }
        if !plans.iter().any(LivePlan::has_changes) {
            console.println("Apply complete: nothing to do.")?;
            return Ok(ExitCode::SUCCESS);
        }
        check_operator(&live, options.wait, console).await?;
        if !options.auto_approve {
            let where_ = format!(
                "Kelvin will perform the actions described above on {}.",
                live.describe()
            );
            if !prompt::confirm(console, "Do you want to perform these actions?", &[&where_])? {
                console.println("Apply cancelled.")?;
                return Ok(ExitCode::from(1));
            }
        }
        execute(&live, &plans, options, console).await
    })
}

/// `kelvin apply PLAN`: the saved plan, without a prompt, unless the cluster moved since.
pub fn apply_saved(
    target: &Target,
    path: &Path,
    saved: SavedPlan,
    options: &ApplyOptions,
    console: &mut Console,
) -> Result<ExitCode> {
    super::runtime()?.block_on(async {
        let live = connect(target).await?;
        if live.server != saved.server {
            bail!(
                "the plan in {} was made against {}, not this cluster ({})\n  fix: use the context it was made with (--context), or plan again here: kelvin plan -f SPEC --out {}",
                path.display(),
                saved.server,
                live.describe(),
                path.display()
            );
        }
        let mut plans = Vec::new();
        for entry in &saved.clusters {
            let cluster: GpuCluster = serde_json::from_value(entry.document.clone())
                .with_context(|| format!("reading the spec saved in {}", path.display()))?;
            let name = cluster.metadata.name.clone().unwrap_or_default();
            let plan = live_plan(&live, Spec { cluster, document: entry.document.clone() }).await?;
            let moved = entry.observed.moved(&plan.fingerprint);
            if !moved.is_empty() {
                let mut message = format!(
                    "the saved plan {} is stale: the cluster changed since it was made (GpuCluster {name}):",
                    path.display()
                );
                for line in moved {
                    message.push_str(&format!("\n  - {line}"));
                }
                message.push_str(&format!(
                    "\n  fix: plan again and review: kelvin plan -f SPEC --out {}",
                    path.display()
                ));
                return Err(anyhow!(message));
            }
            if let SpecChange::Refused(fields) = &plan.spec_change {
                bail!("{}", render::refused_message(&name, fields));
            }
            plans.push(plan);
        }
        for plan in &plans {
            let s = &plan.planned.plan.summary;
            console.println(&format!(
                "Applying the saved plan {} for GpuCluster {}: {} to add, {} to change, {} to destroy.",
                path.display(),
                plan.spec.name(),
                s.add,
                s.change,
                s.destroy
            ))?;
        }
        if !plans.iter().any(LivePlan::has_changes) {
            console.println("Apply complete: nothing to do.")?;
            return Ok(ExitCode::SUCCESS);
        }
        check_operator(&live, options.wait, console).await?;
        execute(&live, &plans, options, console).await
    })
}

/// Refuses to start what nobody will finish: without an operator, waiting would never end.
async fn check_operator(live: &Live, wait: bool, console: &mut Console) -> Result<()> {
    match cluster::operator(live).await {
        Operator::Running { .. } => Ok(()),
        Operator::Absent if wait => Err(cluster::no_operator(
            "nothing would act on the GpuCluster, and nothing was applied",
        )),
        Operator::Absent => {
            console.eprintln(&format!(
                "warning: no Kelvin operator is running: the GpuCluster is stored, but nothing acts on it until one runs ({})",
                cluster::INSTALL_HINT
            ));
            Ok(())
        }
        Operator::Unknown(cause) => {
            console.eprintln(&format!(
                "warning: cannot tell whether a Kelvin operator runs (reading Leases: {cause}); waiting as if one did"
            ));
            Ok(())
        }
    }
}

/// Installs the CRD when needed, applies each GpuCluster, and waits.
async fn execute(
    live: &Live,
    plans: &[LivePlan],
    options: &ApplyOptions,
    console: &mut Console,
) -> Result<ExitCode> {
    if plans.iter().any(|p| p.crd != CrdChange::Same) {
        cluster::install_crds(live, ESTABLISHED).await?;
        console.println(
            "CustomResourceDefinition/gpuclusters.kelvin.dev: installed and Established.",
        )?;
    }
    let mut applied = Vec::new();
    for plan in plans {
        let name = plan.spec.name();
        match cluster::apply_spec(live, &name, &plan.spec.document, false).await? {
            SpecChange::Refused(fields) => bail!("{}", render::refused_message(&name, &fields)),
            change => {
                let stored = cluster::get(live, &name).await?.ok_or_else(|| {
                    anyhow!("GpuCluster {name} is gone right after it was applied")
                })?;
                let generation = stored.metadata.generation.unwrap_or_default();
                let verb = match change {
                    SpecChange::Create => "created",
                    SpecChange::Update(_) => "updated",
                    _ => "unchanged",
                };
                console.println(&format!(
                    "GpuCluster/{name}: {verb} (generation {generation})."
                ))?;
                applied.push((name, generation));
            }
        }
    }
    console.flush()?;
    if !options.wait {
        for (name, _) in &applied {
            console.println(&format!("Not waiting for the operator (--no-wait): kelvin status {name} shows where it stands."))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    for (name, generation) in &applied {
        let start = std::time::Instant::now();
        progress::wait_ready(live, name, *generation, options.timeout, console).await?;
        console.println(&format!(
            "Apply complete: GpuCluster {name} is Ready ({}).",
            progress::humanize(start.elapsed().max(Duration::from_secs(1)))
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

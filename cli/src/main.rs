//! `kelvin`: validate, plan and render GPU cluster specs (DESIGN.md §5).

mod conflicts;
mod console;
mod input;
mod live;
mod output;

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use kelvin_core::{observed::Timestamp, plan::plan};
use kelvin_crds::diagnostics::Diagnostic;

use crate::console::Console;

/// Infrastructure-as-code for AI supercomputers on Kubernetes.
#[derive(Parser)]
#[command(name = "kelvin", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Check specs against the schema, CEL rules and physics; exit 1 when any is invalid or a
    /// node is matched by two pools or two cooling zones (Kelvin would leave it alone).
    Validate {
        #[command(flatten)]
        files: Files,
        /// Nodes to place into pools and zones (default: simulated from expectedNodes).
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
    },
    /// Show what Kelvin would change: objects, node labels and taints, and the power,
    /// cooling and fabric tables. Against the cluster when there is one (server-side
    /// dry-run), else offline.
    Plan {
        #[command(flatten)]
        files: Files,
        /// Plan without a cluster: against --inventory, or nodes simulated from each pool's
        /// expectedNodes.
        #[arg(long)]
        offline: bool,
        /// Save the plan (spec, what was observed, changes) for `kelvin apply FILE`.
        #[arg(long, value_name = "FILE", conflicts_with = "offline")]
        out: Option<PathBuf>,
        /// Nodes to plan against: a Kelvin Inventory or `kubectl get nodes -o yaml` output.
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
        output: Format,
        /// Exit 0 when nothing would change, 1 on error, 2 when there are changes.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Print every object Kelvin would create, as multi-document YAML (for GitOps).
    Render {
        #[command(flatten)]
        files: Files,
        /// Nodes to plan against (default: simulated from expectedNodes).
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
    },
    /// Install or upgrade the CRD, show the plan, ask, apply the GpuCluster and wait for
    /// the operator to converge. A saved plan (PLAN) is applied without asking, unless the
    /// cluster moved since it was made.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["paths", "plan"])))]
    Apply {
        /// Spec files or directories of them; `-` reads standard input.
        #[arg(short = 'f', long = "filename", value_name = "PATH", num_args = 1..)]
        paths: Vec<PathBuf>,
        /// A plan saved with `kelvin plan --out`.
        #[arg(value_name = "PLAN")]
        plan: Option<PathBuf>,
        /// Apply without asking.
        #[arg(long)]
        auto_approve: bool,
        /// Longest wait for Ready, e.g. 90s, 10m, 1h.
        #[arg(long, value_name = "D", default_value = "10m", value_parser = live::progress::parse_duration)]
        timeout: std::time::Duration,
        /// Return once the GpuCluster is written, without waiting for the operator.
        #[arg(long)]
        no_wait: bool,
    },
    /// What the operator reports: conditions, pools, cooling zones, power, fabrics.
    Status {
        /// The GpuCluster (default: every one).
        name: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = live::status::StatusFormat::Text)]
        output: live::status::StatusFormat,
    },
    /// Report cooling zones' states (a facility system's or a person's word).
    #[command(subcommand)]
    Zone(ZoneCommand),
    /// Print Kelvin's CustomResourceDefinitions.
    Crd,
    /// Delete a GpuCluster: Kelvin's objects and its labels and taints on nodes go,
    /// Namespaces stay.
    Destroy {
        /// The GpuCluster.
        name: String,
        /// Destroy without asking.
        #[arg(long)]
        auto_approve: bool,
        /// Longest wait for the operator's clean-up, e.g. 90s, 10m.
        #[arg(long, value_name = "D", default_value = "10m", value_parser = live::progress::parse_duration)]
        timeout: std::time::Duration,
        /// Return once the deletion is requested.
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Subcommand)]
enum ZoneCommand {
    /// Server-side apply of one zone's state (field manager kelvin-facility); shows the plan
    /// it causes first.
    Set {
        /// The cooling zone.
        zone: String,
        /// Its state.
        #[arg(long, value_enum)]
        state: StateArg,
        /// Heat the zone rejects now, in kW (a Degraded zone's degradedCapacityKW).
        #[arg(long, value_name = "N")]
        capacity_kw: Option<f64>,
        /// The GpuCluster (default: the one that has the zone).
        #[arg(short = 'c', long, value_name = "CLUSTER")]
        cluster: Option<String>,
        /// Report without asking.
        #[arg(long)]
        auto_approve: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StateArg {
    #[value(name = "Normal")]
    Normal,
    #[value(name = "Degraded")]
    Degraded,
    #[value(name = "Maintenance")]
    Maintenance,
}

#[derive(clap::Args)]
struct Files {
    /// Spec files or directories of them (*.yaml, *.yml); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    paths: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum Format {
    /// Human-readable, Terraform-style.
    Text,
    /// The documented JSON plan (docs/cli.md).
    Json,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap exits 2 on a usage error, which `--detailed-exitcode` means "changes": a usage
            // error is 1 like every other error (DESIGN.md §5); --help and --version are 0.
            // Printing fails only when the reader has gone: nothing more to say then.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let mut console = Console::new();
    let result = run(cli, &mut console).and_then(|code| console.flush().map(|()| code));
    match result {
        Ok(code) => code,
        Err(error) => {
            console.eprintln(&format!("error: {error:#}"));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli, console: &mut Console) -> Result<ExitCode> {
    let target = live::connect::Target {
        kubeconfig: cli.kubeconfig,
        context: cli.context,
    };
    match cli.command {
        Command::Crd => {
            console.print(&kelvin_crds::crd::yaml().context("serializing the CRDs")?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { files, inventory } => {
            validate(&files.paths, inventory.as_deref(), console)
        }
        Command::Plan {
            files,
            offline,
            out,
            inventory,
            output,
            detailed_exitcode,
        } => {
            let cluster = live::connect::configured(&target);
            if !offline && cluster && inventory.is_some() {
                anyhow::bail!(
                    "--inventory plans against a file of nodes, not the cluster the kubeconfig names\n  fix: add --offline to plan against the inventory, or drop --inventory to plan against the cluster"
                );
            }
            if !offline && cluster {
                let specs = live::load_specs(&files.paths, console)?;
                return live::apply::plan_command(
                    &target,
                    specs,
                    output,
                    detailed_exitcode,
                    out.as_deref(),
                    console,
                );
            }
            if let Some(out) = out {
                anyhow::bail!(
                    "--out {} saves a plan of a cluster, and there is none (no --kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster account)\n  fix: name the cluster with --kubeconfig / --context",
                    out.display()
                );
            }
            plan_command(
                &files.paths,
                inventory.as_deref(),
                output,
                detailed_exitcode,
                console,
            )
        }
        Command::Render { files, inventory } => render(&files.paths, inventory.as_deref(), console),
        Command::Apply {
            paths,
            plan,
            auto_approve,
            timeout,
            no_wait,
        } => {
            let options = live::apply::ApplyOptions {
                auto_approve,
                wait: !no_wait,
                timeout,
            };
            match plan {
                Some(path) => match live::saved::SavedPlan::read(&path)? {
                    Some(saved) => {
                        live::apply::apply_saved(&target, &path, saved, &options, console)
                    }
                    None => anyhow::bail!(
                        "{} is not a saved plan\n  fix: apply a spec with -f {}, or save a plan first: kelvin plan -f SPEC --out PLAN",
                        path.display(),
                        path.display()
                    ),
                },
                None => {
                    let specs = live::load_specs(&paths, console)?;
                    live::apply::apply_specs(&target, specs, &options, console)
                }
            }
        }
        Command::Status { name, output } => {
            live::status::command(&target, name.as_deref(), output, console)
        }
        Command::Zone(ZoneCommand::Set {
            zone,
            state,
            capacity_kw,
            cluster,
            auto_approve,
        }) => {
            let state = match state {
                StateArg::Normal => kelvin_crds::v1alpha1::ZoneState::Normal,
                StateArg::Degraded => kelvin_crds::v1alpha1::ZoneState::Degraded,
                StateArg::Maintenance => kelvin_crds::v1alpha1::ZoneState::Maintenance,
            };
            let args = live::zone::ZoneSet {
                zone,
                state,
                capacity_kw,
                cluster,
                auto_approve,
            };
            live::zone::command(&target, &args, console)
        }
        Command::Destroy {
            name,
            auto_approve,
            timeout,
            no_wait,
        } => {
            let options = live::destroy::DestroyOptions {
                auto_approve,
                wait: !no_wait,
                timeout,
            };
            live::destroy::command(&target, &name, &options, console)
        }
    }
}

pub(crate) fn print_diagnostics(console: &mut Console, diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        console.eprintln(&output::paint_diagnostic(diagnostic));
    }
}

fn validate(
    paths: &[PathBuf],
    inventory: Option<&std::path::Path>,
    console: &mut Console,
) -> Result<ExitCode> {
    let mut loaded = input::load(paths, inventory)?;
    print_diagnostics(console, &loaded.diagnostics);
    let mut failed = !loaded.diagnostics.is_empty();
    let clusters = std::mem::take(&mut loaded.clusters);
    for (index, (cluster, origin)) in clusters.iter().enumerate() {
        let observed =
            loaded.observed_for(cluster, Timestamp::now(), index + 1 == clusters.len())?;
        let analysis = kelvin_core::analyze(&cluster.spec, &observed);
        print_diagnostics(console, &loaded.locate(origin, &analysis.diagnostics));
        print_diagnostics(console, &loaded.locate(origin, &analysis.node_conflicts));
        let errors = analysis.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = analysis.diagnostics.len() - errors;
        let name = cluster.metadata.name.as_deref().unwrap_or_default();
        let left_alone = analysis.placement.left_alone.iter().filter(|l| **l).count();
        if errors == 0 && left_alone > 0 {
            failed = true;
            console.println(&format!(
                "{}: GpuCluster {name} is valid, but {left_alone} node{} matched by two pools or zones: Kelvin would leave {} alone",
                origin.file,
                if left_alone == 1 { " is" } else { "s are" },
                if left_alone == 1 { "it" } else { "them" }
            ))?;
        } else if errors == 0 {
            console.println(&format!(
                "{}: GpuCluster {name} is valid ({warnings} warning{})",
                origin.file,
                if warnings == 1 { "" } else { "s" }
            ))?;
        } else {
            failed = true;
            console.println(&format!(
                "{}: GpuCluster {name} is invalid: {errors} error{}",
                origin.file,
                if errors == 1 { "" } else { "s" }
            ))?;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn plan_command(
    paths: &[PathBuf],
    inventory: Option<&std::path::Path>,
    format: Format,
    detailed: bool,
    console: &mut Console,
) -> Result<ExitCode> {
    let mut loaded = input::load(paths, inventory)?;
    print_diagnostics(console, &loaded.diagnostics);
    let mut failed = !loaded.diagnostics.is_empty();
    let mut changes = false;
    let mut claims = conflicts::Claims::default();
    // (where the document comes in the files, its plan): one entry per document, planned or not.
    let mut plans = Vec::new();
    let clusters = std::mem::take(&mut loaded.clusters);
    for (index, (cluster, origin)) in clusters.iter().enumerate() {
        let observed =
            loaded.observed_for(cluster, Timestamp::now(), index + 1 == clusters.len())?;
        let mut planned = plan(cluster, &observed).context("planning")?;
        let name = cluster.metadata.name.as_deref().unwrap_or_default();
        let conflicts = claims.claim(name, origin, &planned.manifests);
        if !conflicts.is_empty() {
            planned.plan.valid = false;
            planned.plan.errors.extend(conflicts);
        }
        planned.plan.errors = loaded.locate(origin, &planned.plan.errors);
        planned.plan.warnings = loaded.locate(origin, &planned.plan.warnings);
        planned.plan.nodes_left_alone = loaded.locate(origin, &planned.plan.nodes_left_alone);
        print_diagnostics(console, &planned.plan.errors);
        failed |= !planned.plan.valid;
        let summary = &planned.plan.summary;
        changes |= planned.plan.valid && summary.add + summary.change + summary.destroy > 0;
        plans.push((loaded.order(origin), planned.plan));
    }
    match format {
        Format::Json => {
            plans.extend(loaded.rejected.iter().map(|rejected| {
                (
                    loaded.order(&rejected.origin),
                    kelvin_core::plan::Plan::rejected(&rejected.name, rejected.errors.clone()),
                )
            }));
            let text = output::json_plans(plans).context("serializing the plan")?;
            console.println(&text)?;
        }
        Format::Text => {
            for (_, plan) in &plans {
                console.print(&output::human_plan(plan, loaded.node_source()))?;
            }
        }
    }
    Ok(match (failed, detailed, changes) {
        (true, _, _) => ExitCode::from(1),
        (false, true, true) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    })
}

fn render(
    paths: &[PathBuf],
    inventory: Option<&std::path::Path>,
    console: &mut Console,
) -> Result<ExitCode> {
    let mut loaded = input::load(paths, inventory)?;
    print_diagnostics(console, &loaded.diagnostics);
    let mut failed = !loaded.diagnostics.is_empty();
    let mut claims = conflicts::Claims::default();
    // Every cluster is planned before any is printed: a conflict with a later one stops both.
    let mut renders = Vec::new();
    let clusters = std::mem::take(&mut loaded.clusters);
    for (index, (cluster, origin)) in clusters.iter().enumerate() {
        let observed =
            loaded.observed_for(cluster, Timestamp::now(), index + 1 == clusters.len())?;
        let planned = plan(cluster, &observed).context("planning")?;
        if !planned.plan.valid {
            print_diagnostics(console, &loaded.locate(origin, &planned.plan.errors));
            failed = true;
            continue;
        }
        let name = cluster.metadata.name.as_deref().unwrap_or_default();
        let conflicts = claims.claim(name, origin, &planned.manifests);
        if !conflicts.is_empty() {
            print_diagnostics(console, &loaded.locate(origin, &conflicts));
            failed = true;
            continue;
        }
        renders.push(planned.manifests);
    }
    if failed {
        return Ok(ExitCode::from(1));
    }
    for manifest in renders.iter().flatten() {
        // Once the reader has gone, nothing more is serialized.
        if console.out_closed() {
            break;
        }
        console.println("---")?;
        console.print(
            &serde_saphyr::to_string(&manifest.body)
                .with_context(|| format!("serializing {}", manifest.key))?,
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

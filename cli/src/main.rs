//! `kelvin`: validate, plan and render GPU cluster specs (DESIGN.md §5).

mod console;
mod input;
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
    /// cooling and fabric tables.
    Plan {
        #[command(flatten)]
        files: Files,
        /// Plan without a cluster (the only mode so far): against --inventory, or nodes
        /// simulated from each pool's expectedNodes.
        #[arg(long)]
        offline: bool,
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
    /// Print Kelvin's CustomResourceDefinitions.
    Crd,
}

#[derive(clap::Args)]
struct Files {
    /// Spec files or directories of them (*.yaml, *.yml); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    paths: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
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
            inventory,
            output,
            detailed_exitcode,
        } => {
            if !offline && input::kubeconfig_present() {
                anyhow::bail!(
                    "planning against a live cluster is not supported yet; pass --offline to plan against {}",
                    if inventory.is_some() {
                        "the inventory"
                    } else {
                        "nodes simulated from expectedNodes"
                    }
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
    }
}

fn print_diagnostics(console: &mut Console, diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        console.eprintln(&output::paint_diagnostic(diagnostic));
    }
}

fn validate(
    paths: &[PathBuf],
    inventory: Option<&std::path::Path>,
    console: &mut Console,
) -> Result<ExitCode> {
    let loaded = input::load(paths, inventory)?;
    print_diagnostics(console, &loaded.diagnostics);
    let mut failed = !loaded.diagnostics.is_empty();
    for (cluster, origin) in &loaded.clusters {
        let observed = loaded.observed_for(cluster, Timestamp::now())?;
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
    let loaded = input::load(paths, inventory)?;
    print_diagnostics(console, &loaded.diagnostics);
    let mut failed = !loaded.diagnostics.is_empty();
    let mut changes = false;
    let mut plans = Vec::new();
    for (cluster, origin) in &loaded.clusters {
        let observed = loaded.observed_for(cluster, Timestamp::now())?;
        let mut planned = plan(cluster, &observed).context("planning")?;
        planned.plan.errors = loaded.locate(origin, &planned.plan.errors);
        planned.plan.warnings = loaded.locate(origin, &planned.plan.warnings);
        planned.plan.nodes_left_alone = loaded.locate(origin, &planned.plan.nodes_left_alone);
        print_diagnostics(console, &planned.plan.errors);
        failed |= !planned.plan.valid;
        let summary = &planned.plan.summary;
        changes |= summary.add + summary.change + summary.destroy > 0;
        plans.push((planned.plan, loaded.node_source()));
    }
    match format {
        Format::Json => {
            let documents: Vec<&kelvin_core::plan::Plan> = plans.iter().map(|(p, _)| p).collect();
            let text = if documents.len() == 1 {
                serde_json::to_string_pretty(documents[0])
            } else {
                serde_json::to_string_pretty(&documents)
            };
            console.println(&text.context("serializing the plan")?)?;
        }
        Format::Text => {
            for (plan, source) in &plans {
                console.print(&output::human_plan(plan, source))?;
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
    let loaded = input::load(paths, inventory)?;
    print_diagnostics(console, &loaded.diagnostics);
    let mut failed = !loaded.diagnostics.is_empty();
    for (cluster, origin) in &loaded.clusters {
        let observed = loaded.observed_for(cluster, Timestamp::now())?;
        let planned = plan(cluster, &observed).context("planning")?;
        if !planned.plan.valid {
            print_diagnostics(console, &loaded.locate(origin, &planned.plan.errors));
            failed = true;
            continue;
        }
        // Once the reader has gone, the rest is checked (for the exit code) but not serialized.
        for manifest in &planned.manifests {
            if console.out_closed() {
                break;
            }
            console.println("---")?;
            console.print(
                &serde_saphyr::to_string(&manifest.body)
                    .with_context(|| format!("serializing {}", manifest.key))?,
            )?;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

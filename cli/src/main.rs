//! `kelvin`: validate, plan and render GPU cluster specs (DESIGN.md §5).

mod input;
mod output;

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use kelvin_core::{observed::Timestamp, plan::plan};
use kelvin_crds::diagnostics::Diagnostic;

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
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Crd => {
            print!(
                "{}",
                kelvin_crds::crd::yaml().context("serializing the CRDs")?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { files, inventory } => validate(&files.paths, inventory.as_deref()),
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
            )
        }
        Command::Render { files, inventory } => render(&files.paths, inventory.as_deref()),
    }
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        eprintln!("{}", output::paint_diagnostic(diagnostic));
    }
}

fn validate(paths: &[PathBuf], inventory: Option<&std::path::Path>) -> Result<ExitCode> {
    let loaded = input::load(paths, inventory)?;
    print_diagnostics(&loaded.diagnostics);
    let mut failed = !loaded.diagnostics.is_empty();
    for (cluster, origin) in &loaded.clusters {
        let observed = loaded.observed_for(cluster, Timestamp::now())?;
        let analysis = kelvin_core::analyze(&cluster.spec, &observed);
        print_diagnostics(&loaded.locate(origin, &analysis.diagnostics));
        print_diagnostics(&loaded.locate(origin, &analysis.node_conflicts));
        let errors = analysis.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = analysis.diagnostics.len() - errors;
        let name = cluster.metadata.name.as_deref().unwrap_or_default();
        let left_alone = analysis.placement.left_alone.iter().filter(|l| **l).count();
        if errors == 0 && left_alone > 0 {
            failed = true;
            println!(
                "{}: GpuCluster {name} is valid, but {left_alone} node{} matched by two pools or zones: Kelvin would leave {} alone",
                origin.file,
                if left_alone == 1 { " is" } else { "s are" },
                if left_alone == 1 { "it" } else { "them" }
            );
        } else if errors == 0 {
            println!(
                "{}: GpuCluster {name} is valid ({warnings} warning{})",
                origin.file,
                if warnings == 1 { "" } else { "s" }
            );
        } else {
            failed = true;
            println!(
                "{}: GpuCluster {name} is invalid: {errors} error{}",
                origin.file,
                if errors == 1 { "" } else { "s" }
            );
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
) -> Result<ExitCode> {
    let loaded = input::load(paths, inventory)?;
    print_diagnostics(&loaded.diagnostics);
    let mut failed = !loaded.diagnostics.is_empty();
    let mut changes = false;
    let mut plans = Vec::new();
    for (cluster, origin) in &loaded.clusters {
        let observed = loaded.observed_for(cluster, Timestamp::now())?;
        let mut planned = plan(cluster, &observed).context("planning")?;
        planned.plan.errors = loaded.locate(origin, &planned.plan.errors);
        planned.plan.warnings = loaded.locate(origin, &planned.plan.warnings);
        planned.plan.nodes_left_alone = loaded.locate(origin, &planned.plan.nodes_left_alone);
        print_diagnostics(&planned.plan.errors);
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
            println!("{}", text.context("serializing the plan")?);
        }
        Format::Text => {
            for (plan, source) in &plans {
                print!("{}", output::human_plan(plan, source));
            }
        }
    }
    Ok(match (failed, detailed, changes) {
        (true, _, _) => ExitCode::from(1),
        (false, true, true) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    })
}

fn render(paths: &[PathBuf], inventory: Option<&std::path::Path>) -> Result<ExitCode> {
    let loaded = input::load(paths, inventory)?;
    print_diagnostics(&loaded.diagnostics);
    let mut failed = !loaded.diagnostics.is_empty();
    for (cluster, origin) in &loaded.clusters {
        let observed = loaded.observed_for(cluster, Timestamp::now())?;
        let planned = plan(cluster, &observed).context("planning")?;
        if !planned.plan.valid {
            print_diagnostics(&loaded.locate(origin, &planned.plan.errors));
            failed = true;
            continue;
        }
        for manifest in &planned.manifests {
            println!("---");
            print!(
                "{}",
                serde_saphyr::to_string(&manifest.body)
                    .with_context(|| format!("serializing {}", manifest.key))?
            );
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

//! `kelvin status [NAME]`: what the operator reports on a GpuCluster — conditions with their
//! reasons, pools, cooling zones (heat against capacity as bars), power and fabrics.

use std::{fmt::Write as _, process::ExitCode};

use anyhow::{Context, Result, bail};
use kelvin_crds::v1alpha1::{GpuCluster, GpuClusterStatus};
use serde_json::json;

use super::{
    cluster::{self, INSTALL_HINT},
    connect::{Target, connect},
};
use crate::{
    console::Console,
    output::{count, number, paint, right, table, thousands},
};

/// Width of a bar, in characters.
const BAR: usize = 20;

/// What `-o` asks of `status`.
#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum StatusFormat {
    Text,
    Json,
    Yaml,
}

/// `[#########...........]  62%`: `used` of `capacity`, red past it, yellow past 90%.
pub fn bar(used: f64, capacity: f64) -> String {
    if capacity <= 0.0 {
        return if used > 0.0 {
            paint("[no capacity]", "31")
        } else {
            "-".to_owned()
        };
    }
    let ratio = used / capacity;
    let filled = ((ratio.min(1.0) * BAR as f64).round() as usize).min(BAR);
    let text = format!(
        "[{}{}] {:>4.0}%",
        "#".repeat(filled),
        ".".repeat(BAR - filled),
        ratio * 100.0
    );
    let code = if ratio > 1.0 {
        "31"
    } else if ratio > 0.9 {
        "33"
    } else {
        "32"
    };
    paint(&text, code)
}

/// The text of one GpuCluster's status.
pub fn text(cluster: &GpuCluster) -> String {
    let mut out = String::new();
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    let generation = cluster.metadata.generation.unwrap_or_default();
    let Some(status) = &cluster.status else {
        let _ = writeln!(
            out,
            "GpuCluster {name} (generation {generation}) has no status yet: no operator has acted on it.\n  An operator is installed with: {INSTALL_HINT}\n"
        );
        return out;
    };
    let seen = status.observed_generation.unwrap_or_default();
    let lag = if seen < generation {
        format!(", status of generation {seen}: the operator has not caught up yet")
    } else {
        String::new()
    };
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map_or("unknown", |c| c.status.as_str());
    let _ = writeln!(
        out,
        "GpuCluster {name} (generation {generation}{lag}): Ready={ready}\n"
    );
    out.push_str(&conditions(status));
    out.push_str(&pools(status));
    out.push_str(&zones(status));
    out.push_str(&power(status));
    out.push_str(&fabrics(status));
    out
}

fn conditions(status: &GpuClusterStatus) -> String {
    let mut table = table(&["CONDITION", "STATUS", "REASON", "MESSAGE"]);
    for c in &status.conditions {
        let bad = match c.type_.as_str() {
            "NodeConflicts" | "Degraded" | "Progressing" => c.status == "True",
            _ => c.status == "False",
        };
        let shown = if bad {
            paint(&c.status, "33")
        } else {
            c.status.clone()
        };
        table.add_row(vec![
            c.type_.clone(),
            shown,
            c.reason.clone(),
            c.message.clone(),
        ]);
    }
    format!("{table}\n\n")
}

fn pools(status: &GpuClusterStatus) -> String {
    if status.pools.is_empty() {
        return String::new();
    }
    let mut table = table(&[
        "POOL",
        "MATCHED",
        "EXPECTED",
        "READY",
        "LABELLED",
        "IN TRANSITION",
        "MAX UNAVAILABLE",
        "GPUS",
        "ALLOCATABLE",
        "DEVICE PLUGIN",
    ]);
    for p in &status.pools {
        table.add_row(vec![
            p.name.clone(),
            thousands(p.matched_nodes),
            thousands(p.expected_nodes),
            thousands(p.ready_nodes),
            thousands(p.labelled_nodes),
            thousands(p.in_transition),
            thousands(p.max_unavailable),
            thousands(p.gpus),
            thousands(p.allocatable_gpus),
            format!("{}/{}", p.device_plugin_ready, p.device_plugin_desired),
        ]);
    }
    right(&mut table, 1);
    format!("{table}\n\n")
}

fn zones(status: &GpuClusterStatus) -> String {
    if status.cooling_zones.is_empty() {
        return String::new();
    }
    let mut table = table(&[
        "COOLING ZONE",
        "STATE",
        "NODES",
        "HEAT kW",
        "IN SERVICE kW",
        "CAPACITY kW",
        "IN SERVICE / CAPACITY",
        "GPU CAP W",
        "CAP APPLIED",
        "OUT OF SERVICE",
        "DEFICIT kW",
    ]);
    for z in &status.cooling_zones {
        table.add_row(vec![
            z.name.clone(),
            z.state.clone(),
            thousands(z.nodes),
            number(z.heat_load_kw, 1),
            number(z.heat_in_service_kw, 1),
            number(z.capacity_kw, 1),
            bar(z.heat_in_service_kw, z.capacity_kw),
            z.gpu_power_cap_watts
                .map_or("-".to_owned(), |w| w.to_string()),
            thousands(z.cap_applied),
            if z.nodes_must_leave > 0 {
                format!(
                    "{} of {}",
                    thousands(z.out_of_service),
                    thousands(z.nodes_must_leave)
                )
            } else {
                "-".to_owned()
            },
            if z.deficit_kw > 0.0 {
                number(z.deficit_kw, 1)
            } else {
                "-".to_owned()
            },
        ]);
    }
    right(&mut table, 2);
    format!("{table}\n\n")
}

fn power(status: &GpuClusterStatus) -> String {
    let Some(p) = &status.power else {
        return String::new();
    };
    let mut table = table(&[
        "POWER",
        "IT MW",
        "FACILITY MW",
        "BUDGET MW",
        "FACILITY / BUDGET",
    ]);
    table.add_row(vec![
        "design (expectedNodes)".to_owned(),
        crate::output::mw(p.it_mw),
        crate::output::mw(p.facility_mw),
        crate::output::mw(p.budget_mw),
        bar(p.facility_mw, p.budget_mw),
    ]);
    table.add_row(vec![
        "live (nodes in service, at their caps)".to_owned(),
        crate::output::mw(p.live_it_mw),
        crate::output::mw(p.live_facility_mw),
        crate::output::mw(p.budget_mw),
        bar(p.live_facility_mw, p.budget_mw),
    ]);
    right(&mut table, 1);
    format!("{table}\n\n")
}

fn fabrics(status: &GpuClusterStatus) -> String {
    if status.fabrics.is_empty() {
        return String::new();
    }
    let mut table = table(&["FABRIC", "NODES", "TIERS", "LEAVES", "NVLINK DOMAINS"]);
    for f in &status.fabrics {
        table.add_row(vec![
            f.name.clone(),
            thousands(f.nodes),
            f.tiers.to_string(),
            thousands(f.leaves),
            thousands(f.nvlink_domains),
        ]);
    }
    right(&mut table, 1);
    format!("{table}\n\n")
}

/// The machine-readable form: name, generation and status, per GpuCluster.
pub fn document(cluster: &GpuCluster) -> serde_json::Value {
    json!({
        "name": cluster.metadata.name,
        "generation": cluster.metadata.generation,
        "status": cluster.status,
    })
}

/// `kelvin status [NAME]`.
pub fn command(
    target: &Target,
    name: Option<&str>,
    format: StatusFormat,
    console: &mut Console,
) -> Result<ExitCode> {
    super::runtime()?.block_on(async {
        let live = connect(target).await?;
        let clusters = match name {
            Some(name) => match cluster::get(&live, name).await? {
                Some(found) => vec![found],
                None => {
                    let names: Vec<String> = cluster::list(&live)
                        .await?
                        .into_iter()
                        .filter_map(|c| c.metadata.name)
                        .collect();
                    bail!(
                        "GpuCluster {name} not found in {}{}\n  fix: {}",
                        live.describe(),
                        if names.is_empty() {
                            String::new()
                        } else {
                            format!(" (there are: {})", names.join(", "))
                        },
                        if names.is_empty() {
                            "create one: kelvin apply -f SPEC"
                        } else {
                            "name one of those"
                        }
                    );
                }
            },
            None => cluster::list(&live).await?,
        };
        if clusters.is_empty() {
            bail!(
                "no GpuCluster in {}\n  fix: create one: kelvin apply -f SPEC",
                live.describe()
            );
        }
        let documents: Vec<serde_json::Value> = clusters.iter().map(document).collect();
        let single = name.is_some() || documents.len() == 1;
        match format {
            StatusFormat::Text => {
                for cluster in &clusters {
                    console.print(&text(cluster))?;
                }
                if name.is_none() && clusters.len() > 1 {
                    console.println(&count(clusters.len() as u64, "GpuCluster"))?;
                }
            }
            StatusFormat::Json => {
                let text = if single {
                    serde_json::to_string_pretty(&documents[0])
                } else {
                    serde_json::to_string_pretty(&documents)
                };
                console.println(&text.context("serializing the status")?)?;
            }
            StatusFormat::Yaml => {
                let text = if single {
                    serde_saphyr::to_string(&documents[0])
                } else {
                    serde_saphyr::to_string(&documents)
                };
                console.print(&text.context("serializing the status")?)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_with_the_ratio_and_say_it() {
        // NO_COLOR is not needed: tests do not run on a terminal.
        assert_eq!(bar(50.0, 100.0), "[##########..........]   50%");
        assert_eq!(bar(150.0, 100.0), "[####################]  150%");
        assert_eq!(bar(0.0, 0.0), "-");
    }
}

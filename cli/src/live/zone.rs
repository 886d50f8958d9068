//! `kelvin zone set ZONE --state S [--capacity-kw N] [-c CLUSTER]`: how a facility system or
//! a person reports a cooling zone's state. A server-side apply of only that zone's `state`
//! (and `degradedCapacityKW`) under field manager `kelvin-facility`, so the reporter owns
//! those two fields and nothing else of the spec. The plan it causes is shown first.

use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use kelvin_crds::v1alpha1::{GpuCluster, ZoneState};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::{
    cluster::{self, FACILITY_MANAGER},
    connect::{Live, Target, cause, connect},
    plan::{Spec, live_plan_with},
    prompt, render,
};
use crate::console::Console;

/// What `zone set` was asked.
pub struct ZoneSet {
    pub zone: String,
    pub state: ZoneState,
    pub capacity_kw: Option<f64>,
    pub cluster: Option<String>,
    pub auto_approve: bool,
}

fn state_name(state: ZoneState) -> &'static str {
    match state {
        ZoneState::Normal => "Normal",
        ZoneState::Degraded => "Degraded",
        ZoneState::Maintenance => "Maintenance",
    }
}

/// The apply document: the zone's name, state and (when given) degraded capacity, nothing else.
pub fn patch(cluster: &str, args: &ZoneSet) -> Value {
    let mut zone = json!({"name": args.zone, "state": state_name(args.state)});
    if let Some(kw) = args.capacity_kw {
        zone["degradedCapacityKW"] = json!(kw);
    }
    json!({
        "apiVersion": "kelvin.dev/v1alpha1",
        "kind": "GpuCluster",
        "metadata": {"name": cluster},
        "spec": {"coolingZones": [zone]},
    })
}

/// The GpuCluster holding the zone: the one named, or the only one that has such a zone.
async fn find(live: &Live, args: &ZoneSet) -> Result<GpuCluster> {
    let has_zone = |c: &GpuCluster| c.spec.cooling_zones.iter().any(|z| z.name == args.zone);
    let found = match &args.cluster {
        Some(name) => {
            let found = cluster::get(live, name).await?.ok_or_else(|| {
                anyhow!("GpuCluster {name} not found in {}\n  fix: kelvin status lists the GpuClusters there are", live.describe())
            })?;
            if !has_zone(&found) {
                let zones: Vec<&str> = found
                    .spec
                    .cooling_zones
                    .iter()
                    .map(|z| z.name.as_str())
                    .collect();
                bail!(
                    "GpuCluster {name} has no cooling zone {} (its zones: {})\n  fix: name one of its zones",
                    args.zone,
                    zones.join(", ")
                );
            }
            found
        }
        None => {
            let mut matching: Vec<GpuCluster> = cluster::list(live)
                .await?
                .into_iter()
                .filter(has_zone)
                .collect();
            match matching.len() {
                0 => bail!(
                    "no GpuCluster in {} has a cooling zone {}\n  fix: check the zone's name (kelvin status lists them)",
                    live.describe(),
                    args.zone
                ),
                1 => matching.remove(0),
                _ => {
                    let names: Vec<String> = matching
                        .iter()
                        .filter_map(|c| c.metadata.name.clone())
                        .collect();
                    bail!(
                        "cooling zone {} is in several GpuClusters ({})\n  fix: name one with -c/--cluster",
                        args.zone,
                        names.join(", ")
                    )
                }
            }
        }
    };
    Ok(found)
}

/// `kelvin zone set`.
pub fn command(target: &Target, args: &ZoneSet, console: &mut Console) -> Result<ExitCode> {
    prompt::require_terminal(args.auto_approve, "--auto-approve")?;
    if args.capacity_kw.is_some() && args.state != ZoneState::Degraded {
        bail!(
            "--capacity-kw is the capacity of a Degraded zone; with --state {} it has no meaning\n  fix: drop --capacity-kw, or use --state Degraded",
            state_name(args.state)
        );
    }
    super::runtime()?.block_on(async {
        let live = connect(target).await?;
        let stored = find(&live, args).await?;
        let name = stored.metadata.name.clone().unwrap_or_default();
        let body = patch(&name, args);
        let api = cluster::api(&live);
        // The reporter's word wins over the spec file's for these fields: forced.
        let dry = PatchParams::apply(FACILITY_MANAGER).force().dry_run();
        let after = api.patch(&name, &dry, &Patch::Apply(&body)).await.map_err(|e| {
            anyhow!("the API server refuses zone {} of GpuCluster {name} as {}: {}\n  fix: a Degraded zone needs --capacity-kw (the heat it rejects now)", args.zone, state_name(args.state), cause(&e))
        })?;
        let spec = Spec { cluster: after, document: body.clone() };
        let plan = live_plan_with(&live, spec, false).await?;
        console.println(&format!(
            "Reporting cooling zone {} of GpuCluster {name} as {}{} (field manager {FACILITY_MANAGER}).\n",
            args.zone,
            state_name(args.state),
            args.capacity_kw.map_or(String::new(), |kw| format!(", {kw} kW"))
        ))?;
        console.print(&render::text(&plan, &live))?;
        if !args.auto_approve {
            let question = format!("Do you want to report zone {} as {}?", args.zone, state_name(args.state));
            if !prompt::confirm(console, &question, &["The operator acts on it as the plan above shows."])? {
                console.println("Zone state not changed.")?;
                return Ok(ExitCode::from(1));
            }
        }
        let params = PatchParams::apply(FACILITY_MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| anyhow!("reporting zone {} of GpuCluster {name}: {}", args.zone, cause(&e)))?;
        console.println(&format!(
            "Cooling zone {} of GpuCluster {name} is reported {}. kelvin status {name} shows the operator's progress.",
            args.zone,
            state_name(args.state)
        ))?;
        Ok(ExitCode::SUCCESS)
    })
}

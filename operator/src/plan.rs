//! Plan: spec + nodes + observed objects -> what would change, with the power, cooling and
//! fabric reports. Pure; the CLI prints it and the operator executes it.

use std::collections::BTreeMap;

use kelvin_crds::{
    diagnostics::{Diagnostic, Severity},
    model::{
        self, Analysis, cooling::ZonePlan, fabric::FabricDesign, nodes::NodeInfo,
        power::PowerReport,
    },
    v1alpha1::GpuCluster,
};
use serde::Serialize;
use serde_json::Value;

use crate::{
    build::{self, BuildError, Manifest, ObjectKey},
    node_changes::{self, NodeChanges, PoolNodeChanges},
};

/// What happens to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Created.
    Add,
    /// Updated in place.
    Change,
    /// Deleted (no longer asked for).
    Destroy,
}

impl Action {
    /// Terraform's symbol for the action.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Add => "+",
            Self::Change => "~",
            Self::Destroy => "-",
        }
    }
}

/// One object's fate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectChange {
    /// Add, change or destroy.
    pub action: Action,
    /// Which object.
    #[serde(flatten)]
    pub key: ObjectKey,
}

/// Counts for the summary line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Objects to create.
    pub add: u64,
    /// Objects and nodes to update.
    pub change: u64,
    /// Objects to delete.
    pub destroy: u64,
}

/// Objects Kelvin already made for this GpuCluster, as found in the cluster (empty offline).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedObjects {
    /// By identity.
    pub objects: BTreeMap<ObjectKey, Value>,
}

/// The plan for one GpuCluster. Its JSON form is the documented `kelvin plan -o json` output.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// GpuCluster name.
    pub cluster: String,
    /// Whether the spec passed every rule (no errors).
    pub valid: bool,
    /// Power at design capacity.
    pub power: PowerReport,
    /// Per cooling zone.
    pub cooling_zones: Vec<ZonePlan>,
    /// Per fabric that can be built.
    pub fabrics: Vec<FabricDesign>,
    /// Per pool.
    pub pools: Vec<model::validate_report::PoolReport>,
    /// Object changes, in apply order.
    pub objects: Vec<ObjectChange>,
    /// Node changes per pool.
    pub node_changes: Vec<PoolNodeChanges>,
    /// The summary line's counts.
    pub summary: Summary,
    /// Errors (the plan is empty when there are any).
    pub errors: Vec<Diagnostic>,
    /// Warnings (acted on by the plan).
    pub warnings: Vec<Diagnostic>,
}

/// A plan with what it was made from: the objects and node changes to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// What the user sees.
    pub plan: Plan,
    /// Every desired object (empty when the spec is invalid).
    pub manifests: Vec<Manifest>,
    /// Node changes to make.
    pub node_changes: NodeChanges,
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Building the desired objects failed.
    #[error("building the desired objects")]
    BuildObjects(#[from] BuildError),
}

/// Plans `cluster` against `nodes` and the objects Kelvin already made.
pub fn plan(
    cluster: &GpuCluster,
    nodes: &[NodeInfo],
    observed: &ObservedObjects,
) -> Result<Planned, PlanError> {
    let spec = &cluster.spec;
    let analysis = model::analyze(spec, nodes);
    let (errors, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) = analysis
        .diagnostics
        .iter()
        .cloned()
        .partition(|d| d.severity == Severity::Error);
    let mut plan = Plan {
        cluster: cluster.metadata.name.clone().unwrap_or_default(),
        valid: errors.is_empty(),
        power: analysis.power.clone(),
        cooling_zones: analysis.zones.clone(),
        fabrics: analysis.fabrics.iter().flatten().cloned().collect(),
        pools: analysis.pools.clone(),
        objects: Vec::new(),
        node_changes: Vec::new(),
        summary: Summary::default(),
        errors,
        warnings,
    };
    if !plan.valid {
        // Invalid specs change nothing.
        return Ok(Planned {
            plan,
            manifests: Vec::new(),
            node_changes: NodeChanges::default(),
        });
    }
    let manifests = build::build(cluster, &analysis).manifests()?;
    plan.objects = diff_objects(&manifests, observed);
    let changes = plan_nodes(cluster, &analysis, nodes);
    plan.node_changes = node_changes::summarize(spec, nodes, &changes);
    for change in &plan.objects {
        match change.action {
            Action::Add => plan.summary.add += 1,
            Action::Change => plan.summary.change += 1,
            Action::Destroy => plan.summary.destroy += 1,
        }
    }
    plan.summary.change += changes.changes.len() as u64;
    Ok(Planned {
        plan,
        manifests,
        node_changes: changes,
    })
}

fn plan_nodes(cluster: &GpuCluster, analysis: &Analysis, nodes: &[NodeInfo]) -> NodeChanges {
    // Cooling already took its nodes out of each pool's budget.
    let budgets: Vec<u64> = analysis
        .pools
        .iter()
        .enumerate()
        .map(|(index, pool)| {
            let leaving = analysis
                .zones
                .iter()
                .flat_map(|z| z.leaving.iter())
                .filter(|node| analysis.placement.pool_of[**node] == Some(index))
                .count() as u64;
            pool.max_unavailable.saturating_sub(leaving)
        })
        .collect();
    node_changes::plan_nodes(&cluster.spec, analysis, nodes, &budgets)
}

/// Add what is missing, change what differs in a field Kelvin sets, destroy what is no longer
/// asked for.
pub fn diff_objects(manifests: &[Manifest], observed: &ObservedObjects) -> Vec<ObjectChange> {
    let mut changes: Vec<ObjectChange> = manifests
        .iter()
        .filter_map(|manifest| {
            let action = match observed.objects.get(&manifest.key) {
                None => Action::Add,
                Some(current) if contains(current, &manifest.body) => return None,
                Some(_) => Action::Change,
            };
            Some(ObjectChange {
                action,
                key: manifest.key.clone(),
            })
        })
        .collect();
    let wanted: std::collections::BTreeSet<&ObjectKey> = manifests.iter().map(|m| &m.key).collect();
    changes.extend(
        observed
            .objects
            .keys()
            .filter(|key| !wanted.contains(key))
            .map(|key| ObjectChange {
                action: Action::Destroy,
                key: key.clone(),
            }),
    );
    changes
}

/// Whether `current` already holds every field of `wanted` (fields the server adds are ignored).
fn contains(current: &Value, wanted: &Value) -> bool {
    match (current, wanted) {
        (Value::Object(current), Value::Object(wanted)) => wanted
            .iter()
            .all(|(key, value)| current.get(key).is_some_and(|c| contains(c, value))),
        (Value::Array(current), Value::Array(wanted)) => {
            current.len() == wanted.len() && current.iter().zip(wanted).all(|(c, w)| contains(c, w))
        }
        _ => current == wanted,
    }
}

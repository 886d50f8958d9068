//! Plan: a GpuCluster and an [`Observed`] snapshot -> what would change now, with the power,
//! cooling and fabric reports. Pure; the CLI prints it and the operator executes it (the same
//! `Planned` carries the objects and node writes).

use std::collections::{BTreeMap, BTreeSet};

use kelvin_crds::{
    diagnostics::{Diagnostic, Severity},
    v1alpha1::GpuCluster,
};
use serde::Serialize;
use serde_json::Value;

use crate::{
    analysis::{Analysis, PoolReport, analyze},
    desired::{self, BuildError, Desired, Manifest, ObjectKey},
    model::{cooling::ZonePlan, fabric::FabricDesign, power::PowerReport},
    node_state::DesiredNodes,
    observed::Observed,
    rollout::{self, Rollout, Transition},
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

/// One pool's node changes, counted (never one line per node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolNodeChanges {
    /// Pool name.
    pub pool: String,
    /// Nodes written now.
    pub nodes: u64,
    /// e.g. `+label kelvin.dev/pool` -> 8,750.
    pub items: BTreeMap<String, u64>,
    /// Nodes whose disruptive change waits for a later step (maxUnavailable).
    pub deferred: u64,
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
    /// Per cooling zone: nodes taken out of service by this step.
    pub leaving_now: Vec<u64>,
    /// Per fabric that can be built.
    pub fabrics: Vec<FabricDesign>,
    /// Per pool.
    pub pools: Vec<PoolReport>,
    /// Object changes, in apply order.
    pub objects: Vec<ObjectChange>,
    /// Node changes per pool.
    pub node_changes: Vec<PoolNodeChanges>,
    /// Nodes Kelvin leaves alone (matched by two pools or two zones), one warning per pair.
    pub nodes_left_alone: Vec<Diagnostic>,
    /// The summary line's counts.
    pub summary: Summary,
    /// Errors (the plan is empty when there are any).
    pub errors: Vec<Diagnostic>,
    /// Warnings (acted on by the plan).
    pub warnings: Vec<Diagnostic>,
}

impl Plan {
    /// The plan of a GpuCluster that was not planned (it failed the schema, or its file could
    /// not be read): invalid, its errors, nothing else. `kelvin plan -o json` prints one per
    /// document, so its shape never depends on what was valid.
    pub fn rejected(cluster: impl Into<String>, errors: Vec<Diagnostic>) -> Self {
        Self {
            cluster: cluster.into(),
            valid: false,
            power: PowerReport::default(),
            cooling_zones: Vec::new(),
            leaving_now: Vec::new(),
            fabrics: Vec::new(),
            pools: Vec::new(),
            objects: Vec::new(),
            node_changes: Vec::new(),
            nodes_left_alone: Vec::new(),
            summary: Summary::default(),
            errors,
            warnings: Vec::new(),
        }
    }
}

/// A plan with what it was made from: the objects and node writes to apply.
#[derive(Debug)]
pub struct Planned {
    /// What the user sees.
    pub plan: Plan,
    /// The analysis.
    pub analysis: Analysis,
    /// Every desired object (empty when the spec is invalid).
    pub desired: Desired,
    /// Its objects as JSON, in apply order.
    pub manifests: Vec<Manifest>,
    /// Every node's desired state (empty when the spec is invalid).
    pub nodes: DesiredNodes,
    /// Node writes allowed now.
    pub rollout: Rollout,
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Building the desired objects failed.
    #[error("building the desired objects")]
    BuildObjects(#[from] BuildError),
}

impl PlanError {
    /// Short, stable label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::BuildObjects(error) => error.metric_label(),
        }
    }
}

/// Plans `cluster` against `observed`.
pub fn plan(cluster: &GpuCluster, observed: &Observed) -> Result<Planned, PlanError> {
    let spec = &cluster.spec;
    let analysis = analyze(spec, observed);
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
        leaving_now: vec![0; analysis.zones.len()],
        fabrics: analysis.fabrics.iter().flatten().cloned().collect(),
        pools: analysis.pools.clone(),
        objects: Vec::new(),
        node_changes: Vec::new(),
        nodes_left_alone: analysis.node_conflicts.clone(),
        summary: Summary::default(),
        errors,
        warnings,
    };
    if !plan.valid {
        // Invalid specs change nothing.
        return Ok(Planned {
            plan,
            analysis,
            desired: Desired::default(),
            manifests: Vec::new(),
            nodes: DesiredNodes::default(),
            rollout: Rollout::default(),
        });
    }
    let desired = desired::build(cluster, &analysis, observed.apis)?;
    let manifests = desired.manifests()?;
    plan.objects = diff_objects(&manifests, &observed.objects);
    let nodes = DesiredNodes::prepare(spec, &analysis, observed);
    let rollout = rollout::rollout(spec, &analysis, &nodes, observed);
    plan.node_changes = summarize(cluster, observed, &rollout);
    for write in &rollout.writes {
        if let (Some(Transition::OutOfService), Some(zone)) = (write.starts, write.zone) {
            plan.leaving_now[zone] += 1;
        }
    }
    for change in &plan.objects {
        match change.action {
            Action::Add => plan.summary.add += 1,
            Action::Change => plan.summary.change += 1,
            Action::Destroy => plan.summary.destroy += 1,
        }
    }
    plan.summary.change += rollout.writes.len() as u64;
    Ok(Planned {
        plan,
        analysis,
        desired,
        manifests,
        nodes,
        rollout,
    })
}

/// Add what is missing, change what differs in a field Kelvin sets, destroy what is no longer
/// asked for — never a Namespace: tenants' namespaces hold their jobs and data.
pub fn diff_objects(
    manifests: &[Manifest],
    observed: &BTreeMap<ObjectKey, Value>,
) -> Vec<ObjectChange> {
    let mut changes: Vec<ObjectChange> = manifests
        .iter()
        .filter_map(|manifest| {
            let action = match observed.get(&manifest.key) {
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
    changes.extend(orphans(manifests, observed).map(|key| ObjectChange {
        action: Action::Destroy,
        key: key.clone(),
    }));
    changes
}

/// Observed objects no manifest asks for: what Kelvin deletes. Namespaces are never in it.
pub fn orphans<'a>(
    manifests: &[Manifest],
    observed: &'a BTreeMap<ObjectKey, Value>,
) -> impl Iterator<Item = &'a ObjectKey> {
    let wanted: BTreeSet<&ObjectKey> = manifests.iter().map(|m| &m.key).collect();
    observed
        .keys()
        .filter(move |key| !wanted.contains(key) && !is_namespace(key))
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

fn is_namespace(key: &ObjectKey) -> bool {
    key.kind == "Namespace" && key.api_version == "v1"
}

/// Whether `current` already holds every field of `wanted` (fields the server adds are ignored;
/// quantities are compared by value;
/// a wanted zero value — false, 0, "", [], {} — matches an absent field, as the API server omits
/// those it serializes with `omitempty`, e.g. PriorityClass `globalDefault: false`).
fn contains(current: &Value, wanted: &Value) -> bool {
    match (current, wanted) {
        (Value::Object(current), Value::Object(wanted)) => {
            wanted.iter().all(|(key, value)| match current.get(key) {
                Some(c) => contains(c, value),
                None => is_zero(value),
            })
        }
        (Value::Array(current), Value::Array(wanted)) => {
            current.len() == wanted.len() && current.iter().zip(wanted).all(|(c, w)| contains(c, w))
        }
        // Quantities come back canonical (`50000` is stored as `50k`).
        (Value::String(c), Value::String(w)) => c == w || crate::quantity::same(c, w),
        (Value::String(c), Value::Number(w)) | (Value::Number(w), Value::String(c)) => {
            crate::quantity::same(c, &w.to_string())
        }
        _ => current == wanted,
    }
}

/// Counts the writes per pool and per kind of change.
fn summarize(cluster: &GpuCluster, observed: &Observed, rollout: &Rollout) -> Vec<PoolNodeChanges> {
    let pools = &cluster.spec.gpu_pools;
    // Count first, format once per distinct item. Index pools.len() is "no pool". Label keys
    // are interned, so a short list compared by pointer first beats hashing every key.
    let mut counts: Vec<Vec<(&str, &str, u64)>> = vec![Vec::new(); pools.len() + 1];
    fn count<'a>(counts: &mut Vec<(&'a str, &'a str, u64)>, verb: &'a str, key: &'a str) {
        let same = |k: &str| std::ptr::eq(k, key) || k == key;
        match counts.iter_mut().find(|(v, k, _)| *v == verb && same(k)) {
            Some((_, _, n)) => *n += 1,
            None => counts.push((verb, key, 1)),
        }
    }
    let mut taint_counts: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); pools.len() + 1];
    let mut changed = vec![0u64; pools.len() + 1];
    for write in &rollout.writes {
        let pool = write.pool.unwrap_or(pools.len());
        let Some(before) = observed
            .node_index(&write.node)
            .map(|i| &observed.nodes()[i])
        else {
            continue;
        };
        if write.diff.is_empty() {
            continue;
        }
        changed[pool] += 1;
        for (key, _) in write.diff.set_labels() {
            let verb = if before.labels.contains_key(key.as_ref()) {
                "~label"
            } else {
                "+label"
            };
            count(&mut counts[pool], verb, key.as_ref());
        }
        for key in &write.diff.remove_labels {
            count(&mut counts[pool], "-label", key.as_str());
        }
        for taint in &write.diff.add_taints {
            *taint_counts[pool]
                .entry(format!("+taint {taint}"))
                .or_default() += 1;
        }
        for taint in &write.diff.remove_taints {
            *taint_counts[pool]
                .entry(format!("-taint {taint}"))
                .or_default() += 1;
        }
    }
    for (pool, blocked) in rollout.blocked_taints.iter().enumerate() {
        for (taint, nodes) in blocked {
            *taint_counts[pool]
                .entry(format!(
                    "!taint {taint} (a foreign taint has its key and effect)"
                ))
                .or_default() += nodes;
        }
    }
    let names = pools
        .iter()
        .map(|p| p.name.as_str())
        .chain(std::iter::once("(no pool)"));
    names
        .enumerate()
        .map(|(index, name)| {
            let mut items: BTreeMap<String, u64> = counts[index]
                .iter()
                .map(|(verb, key, count)| (format!("{verb} {key}"), *count))
                .collect();
            items.append(&mut taint_counts[index]);
            PoolNodeChanges {
                pool: name.to_owned(),
                nodes: changed[index],
                items,
                deferred: rollout.pools.get(index).map_or(0, |p| p.held),
            }
        })
        .filter(|p| p.pool != "(no pool)" || p.nodes > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::contains;

    #[test]
    fn fields_the_server_adds_or_omits_as_empty_are_no_change() {
        let wanted =
            json!({"value": 1000, "globalDefault": false, "metadata": {"labels": {"a": "b"}}});
        let current = json!({"value": 1000, "metadata": {"labels": {"a": "b"}, "uid": "x"}});
        assert!(contains(&current, &wanted));
        assert!(!contains(
            &json!({"value": 999, "metadata": {"labels": {"a": "b"}}}),
            &wanted
        ));
        assert!(!contains(
            &json!({"value": 1000, "globalDefault": true, "metadata": {"labels": {"a": "b"}}}),
            &wanted
        ));
    }

    #[test]
    fn a_quantity_the_server_canonicalized_is_no_change() {
        // examples/cortex's 50,000-GPU tenant quota, as the API server stores it.
        let wanted = json!({"spec": {"hard": {"requests.nvidia.com/gpu": "50000"}}});
        let stored = json!({"spec": {"hard": {"requests.nvidia.com/gpu": "50k"}}});
        assert!(contains(&stored, &wanted));
        let raised = json!({"spec": {"hard": {"requests.nvidia.com/gpu": "60k"}}});
        assert!(!contains(&raised, &wanted));
        assert!(contains(&json!({"replicas": "4"}), &json!({"replicas": 4})));
    }
}

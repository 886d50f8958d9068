//! A live plan: observe exactly as the operator does (`kelvin_operator::observe`), plan with
//! kelvin-core, then ask the API server what each changed object would become (server-side
//! apply, `dryRun=All`, field manager `kelvin`, force), so defaulting, webhooks and
//! canonicalized quantities are seen and only real changes are shown.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use kelvin_core::{
    constants::{FIELD_MANAGER, OUT_OF_SERVICE_TAINT},
    desired::{Desired, Manifest, ObjectKey},
    observed::{Observed, Timestamp},
    plan::{Action, ObjectChange, Planned, plan},
};
use kelvin_crds::v1alpha1::GpuCluster;
use kelvin_operator::{
    api_client::Request,
    observe::{self, api_resource},
};
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams},
};
use serde_json::Value;

use super::{
    cluster::{self, CrdChange, SpecChange, condition},
    connect::{Live, cause},
    diff,
    saved::Fingerprint,
};

/// Example nodes named per pool.
const EXAMPLES: usize = 3;

/// A spec to plan, with the document as written (what is applied: defaults the file leaves
/// out stay the server's, not a field Kelvin's CLI would own).
#[derive(Clone, Debug)]
pub struct Spec {
    pub cluster: GpuCluster,
    pub document: Value,
}

impl Spec {
    pub fn name(&self) -> String {
        self.cluster.metadata.name.clone().unwrap_or_default()
    }
}

/// Changes made outside Kelvin to what it owns, judged against the GpuCluster as stored.
#[derive(Debug, Default)]
pub struct Drift {
    /// Objects that differ from what the stored spec asks for, with the fields.
    pub objects: Vec<(ObjectChange, Vec<String>)>,
    /// Per pool: nodes whose Kelvin labels or taints differ from the stored spec's.
    pub nodes: Vec<(String, u64)>,
    /// Why drift is not judged (the operator has not caught up with the stored spec).
    pub not_judged: Option<String>,
}

/// What the plan takes out of scheduling.
#[derive(Debug, Default, PartialEq)]
pub struct Blast {
    /// Nodes that get a new NoSchedule or NoExecute taint from Kelvin.
    pub unschedulable: u64,
    /// Of those, nodes taken out of service (cooling).
    pub leave_service: u64,
    /// Their GPUs.
    pub gpus: u64,
    /// Their IT power, MW.
    pub it_mw: f64,
}

/// A live plan of one GpuCluster.
pub struct LivePlan {
    pub spec: Spec,
    pub planned: Planned,
    pub observed: Observed,
    pub crd: CrdChange,
    pub spec_change: SpecChange,
    /// Changed fields of each changed object.
    pub fields: BTreeMap<ObjectKey, Vec<String>>,
    pub drift: Drift,
    pub blast: Blast,
    /// Per pool: a few nodes written in this step.
    pub examples: BTreeMap<String, Vec<String>>,
    pub fingerprint: Fingerprint,
    /// IT MW of the matched live nodes (the design figure is at expectedNodes).
    pub live_it_mw: f64,
}

impl LivePlan {
    /// Whether applying would change anything (the spec itself included).
    pub fn has_changes(&self) -> bool {
        let summary = &self.planned.plan.summary;
        summary.add + summary.change + summary.destroy > 0
            || matches!(self.spec_change, SpecChange::Create | SpecChange::Update(_))
            || self.crd != CrdChange::Same
    }
}

fn object_api(live: &Live, key: &ObjectKey) -> Result<Api<DynamicObject>> {
    let kind = Desired::kinds()
        .into_iter()
        .find(|k| k.kind == key.kind && k.api_version == key.api_version)
        .ok_or_else(|| anyhow!("{key} is of a kind Kelvin does not write"))?;
    let resource = api_resource(&kind);
    Ok(match (&key.namespace, kind.namespaced) {
        (Some(namespace), true) => Api::namespaced_with(live.client(), namespace, &resource),
        _ => Api::all_with(live.client(), &resource),
    })
}

/// The fields a server-side apply of `manifest` (dry run) would change in `current`.
async fn dry_run(live: &Live, manifest: &Manifest, current: &Value) -> Result<Vec<String>> {
    let api = object_api(live, &manifest.key)?;
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    let body = Patch::Apply(&manifest.body);
    let after = live
        .api
        .call(Request::Read, || api.patch(&manifest.key.name, &params, &body))
        .await
        .map_err(|e| {
            anyhow!(
                "the API server refuses {} (server-side dry-run): {}\n  fix: the spec asks for an object this cluster does not accept; check its admission webhooks and policies",
                manifest.key,
                cause(&e)
            )
        })?;
    let mut after = serde_json::to_value(&after).context("serializing a dry-run result")?;
    if let Some(map) = after.as_object_mut() {
        // A dynamic object's type comes back with it; the observed copy has it set the same.
        map.insert(
            "apiVersion".into(),
            Value::String(manifest.key.api_version.clone()),
        );
        map.insert("kind".into(), Value::String(manifest.key.kind.clone()));
    }
    Ok(diff::changed_fields(current, &after))
}

/// Refines `changes` (the core's `Change`s against `observed`) through dry runs: the fields of
/// each, and the changes that are none once the server has canonicalized them dropped.
async fn refine(
    live: &Live,
    manifests: &[Manifest],
    observed: &Observed,
    changes: &mut Vec<ObjectChange>,
    cache: &mut BTreeMap<ObjectKey, (Value, Vec<String>)>,
) -> Result<BTreeMap<ObjectKey, Vec<String>>> {
    let mut fields = BTreeMap::new();
    let mut keep = Vec::with_capacity(changes.len());
    for change in changes.drain(..) {
        if change.action != Action::Change {
            keep.push(change);
            continue;
        }
        let (Some(manifest), Some(current)) = (
            manifests.iter().find(|m| m.key == change.key),
            observed.objects.get(&change.key),
        ) else {
            keep.push(change);
            continue;
        };
        let lines = match cache.get(&change.key) {
            Some((body, lines)) if *body == manifest.body => lines.clone(),
            _ => {
                let lines = dry_run(live, manifest, current).await?;
                cache.insert(change.key.clone(), (manifest.body.clone(), lines.clone()));
                lines
            }
        };
        if !lines.is_empty() {
            fields.insert(change.key.clone(), lines);
            keep.push(change);
        }
    }
    *changes = keep;
    Ok(fields)
}

/// Drift: what the stored spec's own plan would still change. Judged only once the operator
/// has acted on the stored generation (else it is the rollout in flight, not drift).
async fn drift(
    live_plan_of: &GpuCluster,
    live: &Live,
    observed: &Observed,
    cache: &mut BTreeMap<ObjectKey, (Value, Vec<String>)>,
) -> Result<Drift> {
    let generation = live_plan_of.metadata.generation;
    let seen = live_plan_of
        .status
        .as_ref()
        .and_then(|s| s.observed_generation);
    if seen.is_none() || seen != generation {
        return Ok(Drift {
            not_judged: Some(format!(
                "the operator has not acted on generation {} of the stored GpuCluster yet (its status is at {}): what differs now is its rollout in flight, not drift",
                generation.unwrap_or_default(),
                seen.map_or("none".to_owned(), |g| g.to_string())
            )),
            ..Drift::default()
        });
    }
    let planned = plan(live_plan_of, observed).context("planning the stored GpuCluster")?;
    if !planned.plan.valid {
        return Ok(Drift::default());
    }
    let mut changes = planned.plan.objects.clone();
    let fields = refine(live, &planned.manifests, observed, &mut changes, cache).await?;
    let objects = changes
        .into_iter()
        .map(|c| {
            let lines = fields.get(&c.key).cloned().unwrap_or_default();
            (c, lines)
        })
        .collect();
    let converged = condition(live_plan_of, "Progressing").is_some_and(|c| c.status == "False");
    let nodes = if converged {
        planned
            .plan
            .node_changes
            .iter()
            .filter(|p| p.nodes > 0)
            .map(|p| (p.pool.clone(), p.nodes))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Drift {
        objects,
        nodes,
        not_judged: None,
    })
}

/// Nodes that lose schedulability to Kelvin's new taints, over the whole rollout (this step's
/// writes and those waiting for the budget).
fn blast(spec: &GpuCluster, planned: &Planned, observed: &Observed) -> Blast {
    let mut blast = Blast::default();
    let pools = &spec.spec.gpu_pools;
    for (index, node) in observed.nodes().iter().enumerate() {
        let Some(Some(state)) = planned.nodes.get_at(index, &node.name) else {
            continue;
        };
        let diff = planned.nodes.diff(state, node);
        let hard = |effect: &str| effect == "NoSchedule" || effect == "NoExecute";
        if !diff.add_taints.iter().any(|t| hard(&t.effect)) {
            continue;
        }
        blast.unschedulable += 1;
        if diff
            .add_taints
            .iter()
            .any(|t| t.key == OUT_OF_SERVICE_TAINT)
        {
            blast.leave_service += 1;
        }
        if let Some(pool) = state.pool {
            blast.gpus += pools
                .get(pool)
                .map_or(0, |p| u64::from(p.accelerator.per_node));
            let watts = planned
                .plan
                .power
                .pools
                .get(pool)
                .map_or(0, |p| p.node_watts);
            blast.it_mw += watts as f64 / 1e6;
        }
    }
    blast
}

fn examples(spec: &GpuCluster, planned: &Planned) -> BTreeMap<String, Vec<String>> {
    let mut examples: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for write in planned.rollout.writes.iter().filter(|w| !w.diff.is_empty()) {
        let pool = write
            .pool
            .and_then(|p| spec.spec.gpu_pools.get(p))
            .map_or("(no pool)".to_owned(), |p| p.name.clone());
        let names = examples.entry(pool).or_default();
        if names.len() < EXAMPLES {
            names.push(write.node.clone());
        }
    }
    examples
}

/// Observes the cluster for `spec` and plans it, with a dry run of applying its document
/// as `kelvin apply` would (`check_spec`; `zone set` makes its own).
pub async fn live_plan(live: &Live, spec: Spec) -> Result<LivePlan> {
    live_plan_with(live, spec, true).await
}

/// [`live_plan`], choosing whether the spec's own apply is dry-run.
pub async fn live_plan_with(live: &Live, spec: Spec, check_spec: bool) -> Result<LivePlan> {
    let name = spec.name();
    let stored = cluster::get(live, &name).await?;
    let crd = cluster::crd_change(live).await?;
    let nodes = observe::nodes(&live.api)
        .await
        .map_err(|e| anyhow!("listing nodes: {}", cause(&e)))?;
    let (observed, _evicting) = observe::observe(&live.api, &name, nodes, Timestamp::now())
        .await
        .map_err(|e| {
            anyhow!(
                "observing the cluster for GpuCluster {name}: {e}: {}",
                cause(&e)
            )
        })?;
    // Plan as the operator will: against the stored object's identity (its uid is the owner
    // reference of every object) and status.
    let mut local = spec.cluster.clone();
    if let Some(stored) = &stored {
        local.metadata.uid = stored.metadata.uid.clone();
        local.metadata.generation = stored.metadata.generation;
        local.status = stored.status.clone();
    }
    let mut planned = plan(&local, &observed).context("planning")?;
    let spec_change = if !check_spec {
        SpecChange::Same
    } else if crd == CrdChange::Create {
        SpecChange::Create
    } else {
        cluster::apply_spec(live, &name, &spec.document, true).await?
    };
    let mut cache = BTreeMap::new();
    let mut fields = BTreeMap::new();
    if planned.plan.valid {
        let before = planned.plan.objects.len();
        fields = refine(
            live,
            &planned.manifests,
            &observed,
            &mut planned.plan.objects,
            &mut cache,
        )
        .await?;
        let dropped = (before - planned.plan.objects.len()) as u64;
        planned.plan.summary.change = planned.plan.summary.change.saturating_sub(dropped);
    }
    let drift = match &stored {
        Some(stored) => drift(stored, live, &observed, &mut cache).await?,
        None => Drift::default(),
    };
    let blast = blast(&local, &planned, &observed);
    let examples = examples(&local, &planned);
    let fingerprint = Fingerprint::of(stored.as_ref(), &observed);
    let live_it_mw = planned
        .plan
        .pools
        .iter()
        .zip(&planned.plan.power.pools)
        .map(|(pool, power)| pool.nodes as f64 * power.node_watts as f64 / 1e6)
        .sum();
    Ok(LivePlan {
        spec,
        planned,
        observed,
        crd,
        spec_change,
        fields,
        drift,
        blast,
        examples,
        fingerprint,
        live_it_mw,
    })
}

//! The GpuCluster controller: observe -> plan (validate, desire, rollout: kelvin-core) ->
//! apply objects -> write nodes -> delete orphans -> status. Each step has its own error type;
//! an invalid spec sets `Valid=False` and changes nothing else.

use std::{sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kelvin_core::{
    label_interest::LabelInterest,
    observed::Timestamp,
    plan::{orphans, plan},
    status::status,
};
use kelvin_crds::v1alpha1::{GpuCluster, GpuClusterStatus};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder},
        reflector::Store,
        watcher::Config,
    },
};

use crate::{
    api_client::ApiClient,
    apply::{self, NodeWriter},
    drain,
    metrics::{GPUCLUSTER, Metrics},
    node_cache::NodeCache,
    observe,
};

/// How soon to look again while a rollout is under way (transitions settle in seconds).
const ROLLING: Duration = Duration::from_secs(2);
/// How soon to look again when Kelvin's writes are done but the cluster is not Ready yet
/// (device-plugin pods starting: their status changes wake no watch of Kelvin's yet).
const WAITING: Duration = Duration::from_secs(5);
/// How soon to look again in a steady state (node and GpuCluster events wake it sooner).
const STEADY: Duration = Duration::from_secs(300);
/// How long a snapshot waits for the node watch to deliver Kelvin's own writes before the
/// nodes are listed instead.
const CACHE_LAG: Duration = Duration::from_secs(10);

/// What the controller needs.
pub struct Context {
    /// The API client, rate-limited and counted.
    pub api: ApiClient,
    /// The slim node cache.
    pub nodes: Arc<NodeCache>,
    /// Node writes in flight at once.
    pub write_concurrency: usize,
    /// Events on GpuClusters.
    pub recorder: Recorder,
    /// Pods already reported as held by a disruption budget.
    pub blocked: drain::BlockedPods,
    /// Every GpuCluster, as the controller's watch has them (set by [`run`]): the node cache
    /// keeps the labels all their plans read.
    pub clusters: Option<Store<GpuCluster>>,
}

impl Context {
    fn metrics(&self) -> &Metrics {
        &self.api.metrics
    }

    fn writer(&self) -> NodeWriter<'_> {
        NodeWriter {
            client: &self.api,
            cache: &self.nodes,
            concurrency: self.write_concurrency,
        }
    }

    /// The nodes as the cache has them once it shows Kelvin's own writes; listed instead when
    /// the watch lags that far behind (or has not synced: it always has, `run` waits).
    async fn nodes(
        &self,
        cluster: &GpuCluster,
    ) -> Result<Vec<Arc<kelvin_crds::node::NodeInfo>>, observe::ObserveError> {
        let others = self.clusters.as_ref().map(Store::state).unwrap_or_default();
        let interest = LabelInterest::of(others.iter().map(|c| &c.spec).chain([&cluster.spec]));
        if self.nodes.require(interest.clone()) {
            tracing::info!(cluster = %cluster.name_any(), "the spec reads node labels the cache dropped; it lists the nodes again");
        }
        match self.nodes.fresh_snapshot(CACHE_LAG).await {
            Ok(Some(nodes)) => return Ok(nodes),
            Ok(None) => tracing::warn!("node cache not synced; listing nodes"),
            Err(lagging) => tracing::warn!(%lagging, "listing nodes instead"),
        }
        let mut nodes = observe::nodes(&self.api).await?;
        for node in &mut nodes {
            // Just listed: the only owner, so this edits in place.
            interest.reduce(Arc::make_mut(node));
        }
        self.nodes.forget_expectations();
        Ok(nodes)
    }
}

/// Why a reconcile failed, by step.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Observing the cluster failed.
    #[error("observing the cluster")]
    Observe(#[from] observe::ObserveError),
    /// Planning failed.
    #[error("planning")]
    Plan(#[from] kelvin_core::plan::PlanError),
    /// Applying failed.
    #[error("applying")]
    Apply(#[from] apply::ApplyError),
    /// Draining a node failed.
    #[error("draining")]
    Drain(#[from] drain::DrainError),
}

impl ReconcileError {
    /// Short, stable label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Observe(error) => error.metric_label(),
            Self::Plan(error) => error.metric_label(),
            Self::Apply(error) => error.metric_label(),
            Self::Drain(error) => error.metric_label(),
        }
    }
}

/// What one reconcile did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Objects applied.
    pub objects: usize,
    /// Node writes made.
    pub node_writes: usize,
    /// Orphans deleted.
    pub deleted: usize,
    /// Pods evicted.
    pub evicted: usize,
    /// Whether nothing is left to do.
    pub settled: bool,
    /// Whether the status says Ready.
    pub ready: bool,
}

/// The GpuCluster is being deleted: Kelvin's labels, taints and annotations off its nodes, its
/// objects deleted (never a Namespace), then the finalizer removed so the deletion completes.
async fn clean_up(cluster: &GpuCluster, ctx: &Context) -> Result<Outcome, ReconcileError> {
    let client = &ctx.api;
    let name = cluster.name_any();
    let (observed, _) =
        observe::observe(client, &name, ctx.nodes(cluster).await?, Timestamp::now()).await?;
    let analysis = kelvin_core::analyze(&cluster.spec, &observed);
    let writes = kelvin_core::rollout::cleanup(&cluster.spec, &analysis, &observed);
    let none = kelvin_core::node_state::DesiredNodes::default();
    let node_writes = ctx.writer().write_nodes(&none, &writes, &observed).await?;
    let deleted = apply::delete_orphans(client, orphans(&[], &observed.objects)).await?;
    apply::remove_finalizer(client, cluster).await?;
    ctx.metrics().pools(&name, &[]);
    tracing::info!(cluster = %name, node_writes, deleted, "cleaned up");
    Ok(Outcome {
        node_writes,
        deleted,
        settled: true,
        ..Outcome::default()
    })
}

/// One pass over `cluster`.
pub async fn reconcile_once(
    cluster: &GpuCluster,
    ctx: &Context,
) -> Result<Outcome, ReconcileError> {
    let client = &ctx.api;
    let name = cluster.name_any();
    if cluster.metadata.deletion_timestamp.is_some() {
        return clean_up(cluster, ctx).await;
    }
    apply::add_finalizer(client, cluster).await?;
    let (observed, to_evict) =
        observe::observe(client, &name, ctx.nodes(cluster).await?, Timestamp::now()).await?;
    let planned = plan(cluster, &observed)?;
    let mut outcome = Outcome::default();
    if planned.plan.valid {
        // Objects first (namespaces, configs, plugins), so labels find their DaemonSets.
        let changed: Vec<_> = planned
            .manifests
            .iter()
            .filter(|m| planned.plan.objects.iter().any(|c| c.key == m.key))
            .cloned()
            .collect();
        for manifest in &changed {
            tracing::debug!(cluster = %name, object = %manifest.key, "applying");
        }
        outcome.objects = apply::apply_objects(client, &changed).await?;
        outcome.node_writes = ctx
            .writer()
            .write_nodes(&planned.nodes, &planned.rollout.writes, &observed)
            .await?;
        outcome.deleted =
            apply::delete_orphans(client, orphans(&planned.manifests, &observed.objects)).await?;
        let drained = drain::evict(client, &name, &to_evict, &ctx.blocked).await?;
        outcome.evicted = drained.evicted;
        publish_blocked(ctx, cluster, &drained.newly_blocked).await;
    }
    outcome.settled = planned.rollout.is_settled() && planned.plan.objects.is_empty();
    let new_status = status(cluster, &planned, &observed);
    outcome.ready = new_status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ctx.metrics().pools(
        &name,
        &new_status
            .pools
            .iter()
            .map(|p| (p.name.clone(), p.labelled_nodes, p.in_transition))
            .collect::<Vec<_>>(),
    );
    if cluster.status.as_ref() != Some(&new_status) {
        apply::write_status(client, cluster, &new_status).await?;
        publish_changes(ctx, cluster, cluster.status.as_ref(), &new_status).await;
    }
    tracing::info!(
        cluster = %name,
        valid = planned.plan.valid,
        objects = outcome.objects,
        node_writes = outcome.node_writes,
        deleted = outcome.deleted,
        evicted = outcome.evicted,
        settled = outcome.settled,
        "reconciled"
    );
    Ok(outcome)
}

/// Whether a condition in this state is something to look at (a Warning event).
fn is_warning(condition: &Condition) -> bool {
    let healthy = match condition.type_.as_str() {
        // Conditions that are bad when True.
        "NodeConflicts" | "Degraded" => "False",
        // A rollout is normal work, and Ready=False while it runs says no more than that.
        "Progressing" => return false,
        "Ready" if condition.reason == "Progressing" => return false,
        _ => "True",
    };
    condition.status != healthy
}

/// One Event per condition whose status or reason changed: what `kubectl describe gpuc` and
/// `kubectl get events` show. Only on changes, so a steady state writes nothing.
async fn publish_changes(
    ctx: &Context,
    cluster: &GpuCluster,
    old: Option<&GpuClusterStatus>,
    new: &GpuClusterStatus,
) {
    let reference = cluster.object_ref(&());
    for condition in &new.conditions {
        let before = old
            .into_iter()
            .flat_map(|s| &s.conditions)
            .find(|c| c.type_ == condition.type_);
        if before.is_some_and(|b| b.status == condition.status && b.reason == condition.reason) {
            continue;
        }
        // The API server caps an Event's note at 1 kB.
        let mut note = format!(
            "{}={}: {}",
            condition.type_, condition.status, condition.message
        );
        if note.len() > 1000 {
            let cut = (0..=1000)
                .rev()
                .find(|i| note.is_char_boundary(*i))
                .unwrap_or(0);
            note.truncate(cut);
            note.push('…');
        }
        let event = Event {
            type_: if is_warning(condition) {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: condition.reason.clone(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        ctx.metrics().wrote("create", "Event");
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            // Events are for people; failing to write one must not fail the reconcile.
            tracing::warn!(%error, cluster = %cluster.name_any(), reason = %condition.reason, "publishing an event");
        }
    }
}

/// A Warning per pod a PodDisruptionBudget keeps on a node being taken out of service: the
/// drain waits (until the drain timeout), it does not force.
async fn publish_blocked(
    ctx: &Context,
    cluster: &GpuCluster,
    blocked: &[(observe::PodRef, String)],
) {
    let reference = cluster.object_ref(&());
    for (pod, message) in blocked {
        let event = Event {
            type_: EventType::Warning,
            reason: "EvictionBlocked".into(),
            note: Some(format!(
                "pod {}/{} on node {} stays for now: {message}",
                pod.namespace, pod.name, pod.node
            )),
            action: "Drain".into(),
            secondary: None,
        };
        ctx.metrics().wrote("create", "Event");
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, pod = %pod.name, "publishing an event");
        }
    }
}

async fn reconcile(cluster: Arc<GpuCluster>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let start = std::time::Instant::now();
    let result = reconcile_once(&cluster, &ctx).await;
    ctx.metrics().reconciled(
        GPUCLUSTER,
        start.elapsed(),
        result.as_ref().err().map(ReconcileError::metric_label),
    );
    ctx.metrics().nodes_cached(ctx.nodes.len());
    let outcome = result?;
    Ok(Action::requeue(match (outcome.settled, outcome.ready) {
        (false, _) => ROLLING,
        (true, false) => WAITING,
        (true, true) => STEADY,
    }))
}

fn error_policy(cluster: Arc<GpuCluster>, error: &ReconcileError, _: Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), error = %error, cause = ?std::error::Error::source(error), kind = error.metric_label(), "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the GpuCluster controller until `shutdown` completes. `node_changes` yields when the
/// slim view of any node changed (any GpuCluster's plan may change: all are looked at again;
/// queued requests merge).
pub async fn run(
    mut ctx: Context,
    node_changes: impl Stream<Item = ()> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let clusters: Api<GpuCluster> = Api::all(ctx.api.client.clone());
    let controller = Controller::new(clusters, Config::default());
    ctx.clusters = Some(controller.store());
    controller
        .reconcile_all_on(node_changes)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(ctx))
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "controller event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        }
    }

    #[test]
    fn warnings_are_the_conditions_people_must_look_at() {
        assert!(is_warning(&condition("Valid", "False", "SpecInvalid")));
        assert!(!is_warning(&condition("Valid", "True", "SpecValid")));
        assert!(is_warning(&condition(
            "NodeConflicts",
            "True",
            "NodesLeftAlone"
        )));
        assert!(!is_warning(&condition(
            "NodeConflicts",
            "False",
            "NoConflicts"
        )));
        assert!(is_warning(&condition(
            "Degraded",
            "True",
            "CapacityReduced"
        )));
        assert!(!is_warning(&condition("Progressing", "True", "Converging")));
        assert!(!is_warning(&condition("Ready", "False", "Progressing")));
        assert!(is_warning(&condition(
            "Ready",
            "False",
            "SchedulingPoliciesMissing"
        )));
        assert!(is_warning(&condition(
            "SchedulingPolicies",
            "False",
            "ApiNotServed"
        )));
    }
}

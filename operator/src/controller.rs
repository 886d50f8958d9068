//! The GpuCluster controller: observe -> plan (validate, desire, rollout: kelvin-core) ->
//! apply objects -> write nodes -> delete orphans -> status. Each step has its own error type;
//! an invalid spec sets `Valid=False` and changes nothing else.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kelvin_core::{
    observed::Timestamp,
    plan::{orphans, plan},
    status::status,
};
use kelvin_crds::v1alpha1::GpuCluster;
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        watcher::{self, Config},
    },
};

use crate::{apply, observe};

/// How soon to look again while a rollout is under way (transitions settle in seconds).
const ROLLING: Duration = Duration::from_secs(2);
/// How soon to look again when Kelvin's writes are done but the cluster is not Ready yet
/// (device-plugin pods starting: their status changes wake no watch of Kelvin's yet).
const WAITING: Duration = Duration::from_secs(5);
/// How soon to look again in a steady state (node and GpuCluster events wake it sooner).
const STEADY: Duration = Duration::from_secs(300);

/// What the controller needs.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Node writes in flight at once.
    pub write_concurrency: usize,
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
}

impl ReconcileError {
    /// Short, stable label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Observe(error) => error.metric_label(),
            Self::Plan(error) => error.metric_label(),
            Self::Apply(error) => error.metric_label(),
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
    /// Whether nothing is left to do.
    pub settled: bool,
    /// Whether the status says Ready.
    pub ready: bool,
}

/// The GpuCluster is being deleted: Kelvin's labels, taints and annotations off its nodes, its
/// objects deleted (never a Namespace), then the finalizer removed so the deletion completes.
async fn clean_up(cluster: &GpuCluster, ctx: &Context) -> Result<Outcome, ReconcileError> {
    let client = &ctx.client;
    let name = cluster.name_any();
    let observed = observe::observe(client, &name, Timestamp::now()).await?;
    let analysis = kelvin_core::analyze(&cluster.spec, &observed);
    let writes = kelvin_core::rollout::cleanup(&cluster.spec, &analysis, &observed);
    let none = kelvin_core::node_state::DesiredNodes::default();
    let node_writes =
        apply::write_nodes(client, &none, &writes, &observed, ctx.write_concurrency).await?;
    let deleted = apply::delete_orphans(client, orphans(&[], &observed.objects)).await?;
    apply::remove_finalizer(client, cluster).await?;
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
    let client = &ctx.client;
    let name = cluster.name_any();
    if cluster.metadata.deletion_timestamp.is_some() {
        return clean_up(cluster, ctx).await;
    }
    apply::add_finalizer(client, cluster).await?;
    let observed = observe::observe(client, &name, Timestamp::now()).await?;
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
        outcome.node_writes = apply::write_nodes(
            client,
            &planned.nodes,
            &planned.rollout.writes,
            &observed,
            ctx.write_concurrency,
        )
        .await?;
        outcome.deleted =
            apply::delete_orphans(client, orphans(&planned.manifests, &observed.objects)).await?;
    }
    outcome.settled = planned.rollout.is_settled() && planned.plan.objects.is_empty();
    let new_status = status(cluster, &planned, &observed);
    outcome.ready = new_status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if cluster.status.as_ref() != Some(&new_status) {
        apply::write_status(client, cluster, &new_status).await?;
    }
    tracing::info!(
        cluster = %name,
        valid = planned.plan.valid,
        objects = outcome.objects,
        node_writes = outcome.node_writes,
        deleted = outcome.deleted,
        settled = outcome.settled,
        "reconciled"
    );
    Ok(outcome)
}

async fn reconcile(cluster: Arc<GpuCluster>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let outcome = reconcile_once(&cluster, &ctx).await?;
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

/// Runs the GpuCluster controller until the process is told to stop.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let clusters: Api<GpuCluster> = Api::all(ctx.client.clone());
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    // Any node change may change any GpuCluster's plan: look again (queued requests merge).
    let node_changes = watcher::watcher(nodes, Config::default())
        .touched_objects()
        .filter_map(|event| async move { event.ok().map(|_| ()) });
    Controller::new(clusters, Config::default())
        .reconcile_all_on(node_changes)
        .shutdown_on_signal()
        .run(reconcile, error_policy, Arc::new(ctx))
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "controller event");
            }
        })
        .await;
    Ok(())
}

//! Helpers shared by the operator's end-to-end tests (`operator/tests/*.rs`): the
//! `kelvin-operator` child process, the budget sampler that polls the API server from outside,
//! waiting for convergence, and the checks that compare what is on the nodes with what
//! kelvin-core says should be there.
//!
//! Every test file that uses them gets a control plane of its own (`cluster()` is per test
//! binary), so its GpuCluster sees only its own nodes.

#![allow(dead_code)] // each test file uses some of these

pub mod audit;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use k8s_openapi::{
    api::core::v1::Node, apimachinery::pkg::apis::meta::v1::Condition, jiff::Timestamp,
};
use k8s_openapi::{
    api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kelvin_core::ownership::access_rules;
use kelvin_core::{
    constants::{CLUSTER_LABEL, OWNED_TAINTS_ANNOTATION, POOL_LABEL, TRANSITION_ANNOTATION},
    observed::Observed,
    plan::{Planned, plan},
    rollout::max_unavailable,
};
use kelvin_crds::{
    node::{NodeInfo, kelvin_annotations},
    v1alpha1::{GpuCluster, GpuClusterStatus},
};
use kelvin_e2e::{Cluster, OperatorProcess, run, wait_for};
use kelvin_operator::{api_client::ApiClient, observe};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The operator process

/// The real `kelvin-operator` binary ([`OperatorProcess`]), logging JSON lines, with leader
/// election on and short Lease timings (a process started after a kill -9 takes the Lease over
/// within ~4 s, as a standby would). Killed (SIGKILL) when dropped, however the test ends.
pub struct Operator {
    process: OperatorProcess,
}

/// Lease timings of the test operators (defaults: 15 s / 10 s / 2 s).
pub const LEASE: [&str; 6] = [
    "--leader-elect-lease-duration",
    "4s",
    "--leader-elect-renew-deadline",
    "3s",
    "--leader-elect-retry-period",
    "500ms",
];

impl Operator {
    /// Starts `kelvin-operator` against `c`; `name` is for the reader of the test (the log
    /// file is named by the harness).
    pub fn start(c: &Cluster, name: &str) -> Result<Self> {
        Self::start_with(c, name, c.kubeconfig(), &LEASE)
    }

    /// Starts `kelvin-operator` with the identity of `kubeconfig` (a ServiceAccount's, whose
    /// calls the audit log records) and `args` instead of [`LEASE`].
    pub fn start_with(c: &Cluster, name: &str, kubeconfig: &Path, args: &[&str]) -> Result<Self> {
        let mut all = vec!["--log-format", "json"];
        all.extend(args);
        let process = OperatorProcess::start_as(
            c,
            kubeconfig,
            env!("CARGO_BIN_EXE_kelvin-operator").as_ref(),
            &all,
        )
        .with_context(|| format!("starting kelvin-operator ({name})"))?;
        Ok(Self { process })
    }

    /// The value of one `/metrics` sample (`name{labels}` exactly), 0 when absent.
    pub fn metric(&self, series: &str) -> Result<f64> {
        self.process.metric(series)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGKILL: no shutdown hook runs, nothing is flushed, the Lease is not released; waits
    /// until the process is gone.
    pub fn kill_9(&mut self) -> Result<()> {
        if !self.process.is_running() {
            bail!(
                "kelvin-operator had already exited before SIGKILL\n{}",
                self.log_tail(40)
            );
        }
        self.process.kill()
    }

    /// Fails if the process has exited (it should run until stopped).
    pub fn check_running(&mut self) -> Result<()> {
        if !self.process.is_running() {
            bail!("kelvin-operator exited\n{}", self.log_tail(40));
        }
        Ok(())
    }

    /// Path of the log file.
    pub fn log_path(&self) -> &Path {
        &self.process.log
    }

    /// The sum of the `/metrics` samples whose series starts with `prefix`.
    pub fn metric_sum(&self, prefix: &str) -> Result<f64> {
        self.process.metric_sum(prefix)
    }

    /// The log lines so far, parsed (lines that are not JSON are skipped).
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.process.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The `fields` of every `reconciled` line so far, in order.
    pub fn reconciles(&self) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l["fields"]["message"] == "reconciled")
            .map(|l| l["fields"].clone())
            .collect()
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = &self.process.log;
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(n);
        format!(
            "--- last {} lines of {}\n{}",
            lines.len() - start,
            log.display(),
            lines[start..].join("\n")
        )
    }

    /// Warnings and errors logged so far (`reconcile failed`, ...).
    pub fn warnings(&self) -> Vec<String> {
        self.log_lines()
            .into_iter()
            .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
            .map(|l| l.to_string())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Specs

/// Loads the one GpuCluster of `path` with kelvin's loader (schema, defaults, CEL).
pub fn load_spec(path: &Path) -> Result<GpuCluster> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = path.display().to_string();
    let (mut clusters, diagnostics) = kelvin_crds::load::load_gpu_clusters(&file, &bytes);
    if kelvin_crds::diagnostics::has_errors(&diagnostics) {
        let findings: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        bail!("{file} is not a valid spec:\n{}", findings.join("\n"));
    }
    match clusters.len() {
        1 => Ok(clusters.remove(0).0),
        n => bail!("{file} holds {n} GpuClusters, expected one"),
    }
}

/// Writes `text` into `<scratch>/<name>` and returns its path.
pub fn write_spec(c: &Cluster, name: &str, text: &str) -> Result<PathBuf> {
    let path = c.scratch().join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `text` with `from` replaced by `to`, `count` times exactly (a spec edit that silently
/// matched nothing would test nothing).
pub fn edit(text: &str, from: &str, to: &str, count: usize) -> Result<String> {
    let found = text.matches(from).count();
    if found != count {
        bail!("{from:?} occurs {found} times, expected {count}");
    }
    Ok(text.replace(from, to))
}

/// `kubectl apply --server-side -f path`.
pub fn kubectl_apply(c: &Cluster, path: &Path) -> Result<String> {
    run(c.kubectl().args(["apply", "--server-side", "-f"]).arg(path))
}

/// Per pool, maxUnavailable resolved against the pool's matched nodes among `nodes`, with
/// kelvin-core's one rounding ([`max_unavailable`]). The match is kelvin-core's placement
/// (a node matched by two pools belongs to neither).
pub fn budgets(cluster: &GpuCluster, nodes: &[NodeInfo]) -> Result<BTreeMap<String, u64>> {
    let observed = Observed::new(nodes.to_vec(), Timestamp::now())?;
    let analysis = kelvin_core::analyze(&cluster.spec, &observed);
    let mut matched = vec![0u64; cluster.spec.gpu_pools.len()];
    for pool in analysis.placement.pool_of.iter().flatten() {
        matched[*pool] += 1;
    }
    Ok(cluster
        .spec
        .gpu_pools
        .iter()
        .zip(matched)
        .map(|(pool, n)| (pool.name.clone(), max_unavailable(&pool.max_unavailable, n)))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The budget sampler

/// What the sampler saw.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// Node lists taken (polling).
    pub samples: usize,
    /// Lists that failed (API server busy): not counted as samples.
    pub errors: usize,
    /// Node states checked from the watch: one after every change event, so every state the
    /// nodes went through (in resourceVersion order), not only those a poll happened to see.
    pub watched: usize,
    /// Watch errors (the watcher re-lists and goes on).
    pub watch_errors: usize,
    /// Per pool, the most nodes unavailable at once: carrying `kelvin.dev/transition` or
    /// NotReady.
    pub most: BTreeMap<String, u64>,
    /// Per pool, the most nodes carrying `kelvin.dev/transition` at once.
    pub most_in_transition: BTreeMap<String, u64>,
    /// States where a pool had more unavailable nodes than its budget (the first 20).
    pub over: Vec<String>,
    /// How many states were over budget in all.
    pub over_count: usize,
}

impl Samples {
    /// Fails unless at least `min_samples` lists were taken, the watch delivered states, and
    /// no sampled or watched state was over budget.
    pub fn check(&self, min_samples: usize) -> Result<()> {
        if self.samples < min_samples {
            bail!(
                "the sampler took {} samples ({} failed), expected at least {min_samples}",
                self.samples,
                self.errors
            );
        }
        if self.watched == 0 {
            bail!("the watch delivered no node state: {self:?}");
        }
        if self.over_count > 0 {
            bail!(
                "{} of {} sampled and {} watched states had a pool over its maxUnavailable:\n{}",
                self.over_count,
                self.samples,
                self.watched,
                self.over.join("\n")
            );
        }
        Ok(())
    }
}

/// What the budget needs of a node: its pool (`kelvin.dev/pool`), its transition, Ready.
#[derive(Clone, Debug)]
struct NodeView {
    pool: Option<String>,
    transition: Option<String>,
    ready: bool,
}

impl NodeView {
    fn of(node: &Node) -> Self {
        Self {
            pool: node
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POOL_LABEL))
                .cloned(),
            transition: node
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(TRANSITION_ANNOTATION))
                .cloned(),
            ready: kelvin_e2e::nodes::is_ready(node),
        }
    }
}

/// Checks, from outside the operator, that per pool (by the node's `kelvin.dev/pool` label)
/// (#nodes with `kelvin.dev/transition`) + (#NotReady nodes) never exceeds that pool's
/// maxUnavailable, two ways at once: polling the node list every `every` (each list is one
/// consistent snapshot of every node), and a node watch checked after every event (each state
/// the nodes pass through, in order).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    budgets: Arc<Mutex<BTreeMap<String, u64>>>,
    seen: Arc<Mutex<Samples>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling with `budgets` (pool name -> maxUnavailable). A pool not in the map
    /// has a budget of 0.
    pub fn start(client: &Client, every: Duration, budgets: BTreeMap<String, u64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let budgets = Arc::new(Mutex::new(budgets));
        let seen = Arc::new(Mutex::new(Samples::default()));
        let nodes: Api<Node> = Api::all(client.clone());
        let started = Instant::now();
        let poll = {
            let (stop, budgets, seen, nodes) =
                (stop.clone(), budgets.clone(), seen.clone(), nodes.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match nodes.list(&ListParams::default()).await {
                        Ok(list) => {
                            let views: BTreeMap<String, NodeView> = list
                                .items
                                .iter()
                                .map(|n| (name_of(n), NodeView::of(n)))
                                .collect();
                            let at = list.metadata.resource_version.clone().unwrap_or_default();
                            record(
                                &views,
                                &format!("list at {at}"),
                                &seen,
                                &budgets,
                                started,
                                true,
                            );
                        }
                        Err(_) => seen.lock().unwrap_or_else(|e| e.into_inner()).errors += 1,
                    }
                    tokio::time::sleep(every).await;
                }
            })
        };
        let watch = {
            let (stop, budgets, seen) = (stop.clone(), budgets.clone(), seen.clone());
            tokio::spawn(async move {
                use futures::StreamExt;
                use kube::runtime::watcher::{self, Event};
                let mut stream = watcher::watcher(nodes, watcher::Config::default()).boxed();
                let mut views: BTreeMap<String, NodeView> = BTreeMap::new();
                let mut initial: BTreeMap<String, NodeView> = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let next =
                        tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
                    let event = match next {
                        Err(_) => continue,
                        Ok(None) => return,
                        Ok(Some(Err(_))) => {
                            seen.lock().unwrap_or_else(|e| e.into_inner()).watch_errors += 1;
                            continue;
                        }
                        Ok(Some(Ok(event))) => event,
                    };
                    let what = match event {
                        Event::Init => {
                            initial.clear();
                            continue;
                        }
                        Event::InitApply(node) => {
                            initial.insert(name_of(&node), NodeView::of(&node));
                            continue;
                        }
                        Event::InitDone => {
                            views = std::mem::take(&mut initial);
                            "watch (re)listed".to_owned()
                        }
                        Event::Apply(node) => {
                            let at = node.metadata.resource_version.clone().unwrap_or_default();
                            views.insert(name_of(&node), NodeView::of(&node));
                            format!("watch at {at}")
                        }
                        Event::Delete(node) => {
                            views.remove(&name_of(&node));
                            "watch (delete)".to_owned()
                        }
                    };
                    record(&views, &what, &seen, &budgets, started, false);
                }
            })
        };
        Self {
            stop,
            budgets,
            seen,
            tasks: vec![poll, watch],
        }
    }

    /// Replaces the budgets (after a spec change that changes them).
    pub fn set_budgets(&self, budgets: BTreeMap<String, u64>) {
        *self.budgets.lock().unwrap_or_else(|e| e.into_inner()) = budgets;
    }

    /// What it saw so far.
    pub fn seen(&self) -> Samples {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops it and returns what it saw.
    pub async fn stop(mut self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        self.seen()
    }
}

/// One state of the nodes counted per pool against the budgets.
fn record(
    views: &BTreeMap<String, NodeView>,
    what: &str,
    seen: &Mutex<Samples>,
    budgets: &Mutex<BTreeMap<String, u64>>,
    started: Instant,
    polled: bool,
) {
    let mut unavailable: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut in_transition: BTreeMap<&str, u64> = BTreeMap::new();
    for (name, view) in views {
        let Some(pool) = view.pool.as_deref() else {
            continue;
        };
        if view.transition.is_some() {
            *in_transition.entry(pool).or_default() += 1;
        }
        if view.transition.is_some() || !view.ready {
            let why = match (&view.transition, view.ready) {
                (Some(t), true) => format!("{name} ({t})"),
                (Some(t), false) => format!("{name} ({t}, NotReady)"),
                (None, _) => format!("{name} (NotReady)"),
            };
            unavailable.entry(pool).or_default().push(why);
        }
    }
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    let budgets = budgets.lock().unwrap_or_else(|e| e.into_inner());
    if polled {
        seen.samples += 1;
    } else {
        seen.watched += 1;
    }
    for (pool, names) in &unavailable {
        let count = names.len() as u64;
        let most = seen.most.entry((*pool).to_owned()).or_default();
        *most = (*most).max(count);
        let budget = budgets.get(*pool).copied().unwrap_or(0);
        if count > budget {
            seen.over_count += 1;
            if seen.over.len() < 20 {
                let line = format!(
                    "{:.2} s, {what}: pool {pool}: {count} unavailable > maxUnavailable {budget}: {}",
                    started.elapsed().as_secs_f64(),
                    names.join(", ")
                );
                seen.over.push(line);
            }
        }
    }
    for (pool, count) in in_transition {
        let most = seen.most_in_transition.entry(pool.to_owned()).or_default();
        *most = (*most).max(count);
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Status

/// Condition `type_` of `status`.
pub fn condition<'a>(status: &'a GpuClusterStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// (status, reason) of condition `type_`.
pub fn condition_is(status: &GpuClusterStatus, type_: &str) -> Option<(String, String)> {
    condition(status, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

/// The conditions and pool figures, one per line, for failure messages.
pub fn describe_status(status: Option<&GpuClusterStatus>) -> String {
    let Some(status) = status else {
        return "no status".into();
    };
    let mut lines = vec![format!(
        "observedGeneration {:?}",
        status.observed_generation
    )];
    for c in &status.conditions {
        lines.push(format!(
            "  {}={} ({}): {}",
            c.type_, c.status, c.reason, c.message
        ));
    }
    for p in &status.pools {
        lines.push(format!(
            "  pool {}: matched {} labelled {} ready {} inTransition {} maxUnavailable {} plugin {}/{}",
            p.name,
            p.matched_nodes,
            p.labelled_nodes,
            p.ready_nodes,
            p.in_transition,
            p.max_unavailable,
            p.device_plugin_ready,
            p.device_plugin_desired
        ));
    }
    lines.join("\n")
}

/// Failure context: where the control plane's logs are, the GpuCluster's status, the
/// operator's last log lines.
pub async fn context(c: &Cluster, client: &Client, name: &str, operator: &Operator) -> String {
    let clusters: Api<GpuCluster> = Api::all(client.clone());
    let status = match clusters.get_opt(name).await {
        Ok(Some(gc)) => describe_status(gc.status.as_ref()),
        Ok(None) => format!("GpuCluster {name} does not exist"),
        Err(e) => format!("reading GpuCluster {name}: {e}"),
    };
    format!(
        "{}\nGpuCluster {name}: {status}\n{}",
        c.describe(),
        operator.log_tail(30)
    )
}

/// Whether `gc`'s status says the current generation has converged: `Progressing=False`
/// (`Converged`) for this generation, every matched node labelled, none in transition, and
/// every pool's device plugin scheduled and Ready on every matched node.
pub fn is_converged(gc: &GpuCluster) -> bool {
    let Some(status) = gc.status.as_ref() else {
        return false;
    };
    status.observed_generation == gc.metadata.generation
        && condition_is(status, "Progressing") == Some(("False".into(), "Converged".into()))
        && !status.pools.is_empty()
        && status.pools.iter().all(|p| {
            p.labelled_nodes == p.matched_nodes
                && p.in_transition == 0
                && p.device_plugin_desired == p.matched_nodes
                && p.device_plugin_ready == p.device_plugin_desired
        })
}

/// Waits until GpuCluster `name` has converged ([`is_converged`]); returns it.
pub async fn wait_converged(
    c: &Cluster,
    client: &Client,
    name: &str,
    operator: &Operator,
    timeout: Duration,
) -> Result<GpuCluster> {
    let clusters: Api<GpuCluster> = Api::all(client.clone());
    let result = wait_for(
        &format!("GpuCluster {name} to converge"),
        timeout,
        || async {
            let gc = clusters.get(name).await?;
            Ok(is_converged(&gc).then_some(gc))
        },
    )
    .await;
    match result {
        Ok(gc) => Ok(gc),
        Err(e) => Err(e.context(context(c, client, name, operator).await)),
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes and objects

/// Every node (one list).
pub async fn list_nodes(client: &Client) -> Result<Vec<Node>> {
    let nodes: Api<Node> = Api::all(client.clone());
    Ok(nodes.list(&ListParams::default()).await?.items)
}

/// Waits until every node is Ready and the node lifecycle controller is done with it: no
/// `node.kubernetes.io/` taint (`not-ready` stays on a new node for a moment after kwok marks
/// it Ready), and the deprecated `beta.kubernetes.io/{os,arch}` labels it copies from
/// `kubernetes.io/{os,arch}` present: the state to take a baseline in.
pub async fn wait_nodes_settled(client: &Client, timeout: Duration) -> Result<Vec<Node>> {
    wait_for(
        "every node Ready and untainted by the node controller",
        timeout,
        || async {
            let nodes = list_nodes(client).await?;
            let settled = nodes.iter().all(|n| {
                let labels = labels_of(n);
                let copied = ["os", "arch"].iter().all(|l| {
                    !labels.contains_key(&format!("kubernetes.io/{l}"))
                        || labels.contains_key(&format!("beta.kubernetes.io/{l}"))
                });
                copied
                    && kelvin_e2e::nodes::is_ready(n)
                    && !taints_of(n)
                        .iter()
                        .any(|(k, _, _)| k.starts_with("node.kubernetes.io/"))
            });
            Ok(settled.then_some(nodes))
        },
    )
    .await
}

/// A taint as (key, value, effect): timeAdded is the API server's.
pub type TaintId = (String, Option<String>, String);

/// The node's taints.
pub fn taints_of(node: &Node) -> BTreeSet<TaintId> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| (t.key.clone(), t.value.clone(), t.effect.clone()))
        .collect()
}

/// The node's labels.
pub fn labels_of(node: &Node) -> BTreeMap<String, String> {
    node.metadata.labels.clone().unwrap_or_default()
}

/// The node's name.
pub fn name_of(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

/// What a node carried before Kelvin touched it: everything Kelvin must leave as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    pub labels: BTreeMap<String, String>,
    pub taints: BTreeSet<TaintId>,
}

/// The baseline of every node, by name.
pub fn baselines(nodes: &[Node]) -> BTreeMap<String, Baseline> {
    nodes
        .iter()
        .map(|n| {
            (
                name_of(n),
                Baseline {
                    labels: labels_of(n),
                    taints: taints_of(n),
                },
            )
        })
        .collect()
}

/// The label keys field manager `kelvin` owns on the node (from managedFields), as the
/// operator reads them.
pub fn kelvin_label_keys(node: &Node) -> BTreeSet<String> {
    observe::slim(node.clone())
        .kelvin_label_keys
        .unwrap_or_default()
        .iter()
        .map(|k| k.to_string())
        .collect()
}

/// The operator's own observation of the cluster for GpuCluster `name` (nodes slimmed as it
/// slims them, its objects, served APIs, workloads) planned by kelvin-core with the GpuCluster
/// as the API server stores it: what the operator would do now.
pub async fn plan_live(client: &Client, name: &str) -> Result<(GpuCluster, Planned)> {
    let clusters: Api<GpuCluster> = Api::all(client.clone());
    let gc = clusters.get(name).await?;
    let api = ApiClient::new(client.clone(), Default::default(), 0.0, 1);
    let nodes = observe::nodes(&api).await?;
    let (observed, _) = observe::observe(&api, name, nodes, Timestamp::now()).await?;
    let planned = plan(&gc, &observed)?;
    Ok((gc, planned))
}

/// Every way the nodes differ from exactly what `planned` wants on them, given what they
/// carried before Kelvin (`before`): labels = before + Kelvin's desired labels, Kelvin's
/// field manager owning exactly the desired keys; taints = before + Kelvin's desired taints
/// (except one a foreign taint with the same key and effect blocks); Kelvin's annotations =
/// exactly `kelvin.dev/owned-taints` naming the taints it added, no transition. Nodes Kelvin
/// leaves alone (or wants nothing on) must carry exactly what they had.
pub fn exact_problems(
    nodes: &[Node],
    before: &BTreeMap<String, Baseline>,
    planned: &Planned,
) -> Vec<String> {
    let mut problems = Vec::new();
    for node in nodes {
        let name = name_of(node);
        let Some(base) = before.get(&name) else {
            problems.push(format!("{name}: a node the test did not create"));
            continue;
        };
        let state = match planned.nodes.get(&name) {
            None => {
                problems.push(format!("{name}: not in the plan"));
                continue;
            }
            Some(state) => state,
        };
        let mut labels = base.labels.clone();
        let mut taints = base.taints.clone();
        let mut added = BTreeSet::new();
        let mut keys = BTreeSet::new();
        if let Some(state) = state {
            for (key, value) in state.labels() {
                labels.insert(key.to_string(), value.to_string());
                keys.insert(key.to_string());
            }
            for t in state.taints.iter() {
                let blocked = base
                    .taints
                    .iter()
                    .any(|(k, _, e)| *k == t.key && *e == t.effect);
                if !blocked {
                    taints.insert((t.key.clone(), t.value.clone(), t.effect.clone()));
                    added.insert(t.identity());
                }
            }
        }
        let annotations: BTreeMap<String, String> = if added.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([(
                OWNED_TAINTS_ANNOTATION.to_owned(),
                added.into_iter().collect::<Vec<_>>().join(","),
            )])
        };
        let have_labels = labels_of(node);
        if have_labels != labels {
            problems.push(format!(
                "{name}: labels differ: missing or wrong {:?}, unexpected {:?}",
                labels
                    .iter()
                    .filter(|(k, v)| have_labels.get(*k) != Some(v))
                    .collect::<Vec<_>>(),
                have_labels
                    .iter()
                    .filter(|(k, v)| labels.get(*k) != Some(v))
                    .collect::<Vec<_>>()
            ));
        }
        let have_keys = kelvin_label_keys(node);
        if have_keys != keys {
            problems.push(format!(
                "{name}: field manager kelvin owns labels {have_keys:?}, expected {keys:?}"
            ));
        }
        let have_taints = taints_of(node);
        if have_taints != taints {
            problems.push(format!(
                "{name}: taints {have_taints:?}, expected {taints:?}"
            ));
        }
        let have_annotations =
            kelvin_annotations(node.metadata.annotations.as_ref().into_iter().flatten());
        if have_annotations != annotations {
            problems.push(format!(
                "{name}: Kelvin's annotations {have_annotations:?}, expected {annotations:?}"
            ));
        }
    }
    let listed: BTreeSet<String> = nodes.iter().map(name_of).collect();
    for name in before.keys().filter(|n| !listed.contains(*n)) {
        problems.push(format!("{name}: gone"));
    }
    problems
}

/// Fails with the first problems of [`exact_problems`], if any.
pub fn check_exact(
    nodes: &[Node],
    before: &BTreeMap<String, Baseline>,
    planned: &Planned,
) -> Result<()> {
    let problems = exact_problems(nodes, before, planned);
    if !problems.is_empty() {
        bail!(
            "{} of {} nodes are not exactly as planned:\n{}",
            problems.len(),
            nodes.len(),
            problems
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

/// An object (node or Kelvin's) as far as anyone but a status writer can change it: its
/// resourceVersion, its `status` and the managedFields entries of the status subresource
/// dropped. Two fingerprints are equal when no one wrote the object's metadata or spec —
/// Kelvin never writes a node's or a DaemonSet's status, while kwok's heartbeat stage writes
/// node status and the DaemonSet controller DaemonSet status, both bumping resourceVersion.
pub fn fingerprint(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
        if let Some(Value::Array(entries)) = metadata.get_mut("managedFields") {
            entries.retain(|e| e.get("subresource").and_then(Value::as_str) != Some("status"));
        }
    }
    object
}

/// resourceVersion of a JSON object.
pub fn resource_version(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A record of every node and every object Kelvin owns for one GpuCluster (label
/// `kelvin.dev/cluster=<name>`, Namespaces by `app.kubernetes.io/managed-by=kelvin`, every kind
/// `Desired` can hold whose API is served), and the GpuCluster itself.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Node name -> node JSON.
    pub nodes: BTreeMap<String, Value>,
    /// Object identity -> object JSON.
    pub objects: BTreeMap<String, Value>,
    /// The GpuCluster's resourceVersion (its status is Kelvin's only).
    pub cluster_rv: String,
}

impl Snapshot {
    /// Takes one.
    pub async fn take(client: &Client, name: &str) -> Result<Self> {
        let nodes = list_nodes(client)
            .await?
            .into_iter()
            .map(|n| Ok((name_of(&n), serde_json::to_value(&n)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let api = ApiClient::new(client.clone(), Default::default(), 0.0, 1);
        let apis = observe::served_apis(&api).await?;
        let objects = observe::owned_objects(&api, name, apis)
            .await?
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect();
        let clusters: Api<GpuCluster> = Api::all(client.clone());
        let cluster_rv = clusters
            .get(name)
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        Ok(Self {
            nodes,
            objects,
            cluster_rv,
        })
    }

    /// Objects of `kind` (`apps/v1 DaemonSet`, as ObjectKey prints).
    pub fn count_kind(&self, kind: &str) -> usize {
        self.objects.keys().filter(|k| k.contains(kind)).count()
    }

    /// Every change between `self` and `later`, in words; `status_writers` counts nodes and
    /// objects whose resourceVersion moved only through their status (see [`fingerprint`]).
    /// Nodes and DaemonSets are compared by fingerprint (others write their status); every
    /// other object Kelvin owns, and the GpuCluster, by resourceVersion.
    pub fn changes(&self, later: &Snapshot) -> (Vec<String>, usize) {
        let mut changes = Vec::new();
        let mut status_only = 0;
        let mut compare = |what: &str,
                           before: &BTreeMap<String, Value>,
                           after: &BTreeMap<String, Value>,
                           status_may_move: &dyn Fn(&str) -> bool| {
            for (key, old) in before {
                let Some(new) = after.get(key) else {
                    changes.push(format!("{what} {key} is gone"));
                    continue;
                };
                if resource_version(old) == resource_version(new) {
                    continue;
                }
                if status_may_move(key) && fingerprint(old) == fingerprint(new) {
                    status_only += 1;
                    continue;
                }
                changes.push(format!(
                    "{what} {key}: resourceVersion {} -> {}{}",
                    resource_version(old),
                    resource_version(new),
                    diff_hint(&fingerprint(old), &fingerprint(new))
                ));
            }
            for key in after.keys().filter(|k| !before.contains_key(*k)) {
                changes.push(format!("{what} {key} appeared"));
            }
        };
        compare("node", &self.nodes, &later.nodes, &|_| true);
        compare("object", &self.objects, &later.objects, &|key| {
            key.contains("DaemonSet")
        });
        if self.cluster_rv != later.cluster_rv {
            changes.push(format!(
                "the GpuCluster: resourceVersion {} -> {}",
                self.cluster_rv, later.cluster_rv
            ));
        }
        (changes, status_only)
    }
}

/// The first top-level differences between two JSON values, for messages.
fn diff_hint(old: &Value, new: &Value) -> String {
    fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
        if out.len() >= 6 || old == new {
            return;
        }
        match (old, new) {
            (Value::Object(a), Value::Object(b)) => {
                let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for key in keys {
                    let (x, y) = (
                        a.get(key).unwrap_or(&Value::Null),
                        b.get(key).unwrap_or(&Value::Null),
                    );
                    walk(&format!("{path}.{key}"), x, y, out);
                }
            }
            _ => out.push(format!("{path}: {old} -> {new}")),
        }
    }
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    if out.is_empty() {
        String::new()
    } else {
        format!(" ({})", out.join("; "))
    }
}

/// The label selector of Kelvin's objects of GpuCluster `name`.
pub fn owned_selector(name: &str) -> String {
    format!("{CLUSTER_LABEL}={name}")
}

/// A ClusterRole of `kelvin_core::ownership::access_rules()` (what docs/operator.md and the
/// chart grant), bound to ServiceAccount `namespace/account`: an operator running as it has
/// exactly the permissions Kelvin documents.
pub async fn grant_access_rules(client: &Client, namespace: &str, account: &str) -> Result<()> {
    let rules = access_rules()
        .into_iter()
        .map(|rule| PolicyRule {
            api_groups: Some(vec![rule.group.to_owned()]),
            resources: Some(vec![rule.resource]),
            verbs: rule.verbs.into_iter().map(str::to_owned).collect(),
            ..PolicyRule::default()
        })
        .collect();
    let name = "kelvin-operator-e2e";
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        rules: Some(rules),
        ..ClusterRole::default()
    };
    // One binding per account: a shared one would be replaced by the next account's.
    let binding_name = format!("{name}-{namespace}-{account}");
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(binding_name.clone()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(namespace.into()),
            ..Subject::default()
        }]),
    };
    let params = PatchParams::apply("kelvin-e2e").force();
    Api::<ClusterRole>::all(client.clone())
        .patch(name, &params, &Patch::Apply(&role))
        .await?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(&binding_name, &params, &Patch::Apply(&binding))
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A disruptive rollout to interrupt (the fault tests)

/// A GpuCluster `name` of one 120-node pool at 10% (12) whose NoSchedule taint
/// `kelvin.dev/dedicated=training` makes the first convergence a rollout of ten batches, plus
/// `pool_labels` (a flow mapping, `{}` for none).
pub fn rollout_spec(name: &str, pool_labels: &str) -> String {
    format!(
        r#"apiVersion: kelvin.dev/v1alpha1
kind: GpuCluster
metadata:
  name: {name}
spec:
  site: {{powerBudgetMW: 5, pue: 1.2}}
  coolingZones:
  - name: hall-a
    cooling: Liquid
    capacityKW: 2000
    nodeSelector: {{matchLabels: {{kelvin.dev/hall: a}}}}
  fabrics:
  - name: ib
    type: InfiniBand
    linkGbps: 400
    railsPerNode: 8
    switchRadix: 64
    nodesPerLeaf: 32
    nvlinkDomainSize: 8
  gpuPools:
  - name: h100
    nodeSelector: {{matchLabels: {{kelvin.dev/sku: hgx-h100}}}}
    expectedNodes: 120
    accelerator: {{vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}}
    hostPowerWatts: 4600
    fabric: ib
    labels: {pool_labels}
    taints: [{{key: kelvin.dev/dedicated, value: training, effect: NoSchedule}}]
    maxUnavailable: 10%
"#
    )
}

/// The rollout of [`rollout_spec`] as the nodes say: (nodes carrying the pool taint, names of
/// nodes carrying a transition, sorted).
pub async fn rollout_progress(client: &Client) -> Result<(usize, Vec<String>)> {
    let nodes = list_nodes(client).await?;
    let taint = (
        "kelvin.dev/dedicated".to_owned(),
        Some("training".to_owned()),
        "NoSchedule".to_owned(),
    );
    let tainted = nodes
        .iter()
        .filter(|n| taints_of(n).contains(&taint))
        .count();
    let mut in_flight: Vec<String> = nodes
        .iter()
        .filter(|n| {
            n.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(TRANSITION_ANNOTATION))
        })
        .map(name_of)
        .collect();
    in_flight.sort();
    Ok((tainted, in_flight))
}

/// Waits until the rollout of [`rollout_spec`] on `nodes` nodes is under way: at least two
/// batches done, not near its end, a transition in flight (the moment to break something).
pub async fn wait_mid_rollout(client: &Client, nodes: usize, operator: &Operator) -> Result<()> {
    let started = Instant::now();
    loop {
        let (tainted, in_flight) = rollout_progress(client).await?;
        if !in_flight.is_empty() && (24..nodes - 24).contains(&tainted) {
            return Ok(());
        }
        if tainted >= nodes - 24 || started.elapsed() > Duration::from_secs(90) {
            bail!(
                "the rollout got to {tainted} of {nodes} nodes without a moment to break it in\n{}",
                operator.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The GpuCluster CRD installed, `count` kwok GPU nodes `prefix-NNNNN` created and waited
/// Ready and settled: what each node carries before Kelvin touches it.
pub async fn settled_nodes(
    c: &Cluster,
    client: &Client,
    prefix: &str,
    count: usize,
) -> Result<BTreeMap<String, Baseline>> {
    let (crd, _) = kelvin_e2e::crd::gpucluster_crd()?;
    kelvin_e2e::crd::install_crd(client, &crd).await?;
    let set = kelvin_e2e::GpuNodes::new(prefix, count);
    set.create(client).await?;
    set.wait_ready(client, Duration::from_secs(60))
        .await
        .with_context(|| c.describe())?;
    Ok(baselines(
        &wait_nodes_settled(client, Duration::from_secs(60)).await?,
    ))
}

/// [`budgets`] of the spec at `path` against the nodes the cluster has now.
pub async fn live_budgets(client: &Client, path: &Path) -> Result<BTreeMap<String, u64>> {
    let slim: Vec<NodeInfo> = list_nodes(client)
        .await?
        .into_iter()
        .map(observe::slim)
        .collect();
    budgets(&load_spec(path)?, &slim)
}

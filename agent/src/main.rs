//! `kelvin-power-agent`: watches its own Node; when Kelvin labels it
//! `kelvin.dev/gpu-power-cap-watts=<W>` (a Degraded cooling zone), limits every GPU to that
//! through NVML — never outside the GPU's own limits — and restores the default limit when the
//! label goes. It reports `kelvin.dev/gpu-power-cap-applied=<W>` (or a failure reason) on the
//! node, and a message for people in the annotation `power.kelvin.dev/cap-message`, by
//! server-side apply under its own field manager, so the operator's status can count the nodes
//! where the cap holds.

mod backend;
mod cap;

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::Context as _;
use backend::{BackendError, FakeBackend, NvmlBackend, PowerBackend};
use cap::Report;
use clap::{Parser, ValueEnum};
use futures::{StreamExt, stream::select_all};
use k8s_openapi::api::core::v1::Node;
use kelvin_core::constants::POWER_CAP_APPLIED_LABEL;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::{
        WatchStreamExt,
        watcher::{self, Config, Event},
    },
};
use serde_json::json;

/// The agent's field manager: it owns only what it reports.
const FIELD_MANAGER: &str = "kelvin-power-agent";
/// The message for people (not under `kelvin.dev/`: the operator keeps those as its own).
const MESSAGE_ANNOTATION: &str = "power.kelvin.dev/cap-message";

/// Kelvin's node agent for GPU power caps.
#[derive(Parser)]
#[command(name = "kelvin-power-agent", version, about)]
struct Args {
    /// The node to serve (the DaemonSet passes its own through the downward API).
    #[arg(
        long = "node",
        env = "NODE_NAME",
        value_delimiter = ',',
        required_unless_present = "node_selector"
    )]
    nodes: Vec<String>,
    /// Serve every node this label selector matches instead (tests: one agent for many kwok
    /// nodes; fake backend only).
    #[arg(long, conflicts_with = "nodes")]
    node_selector: Option<String>,
    /// Where power limits are set.
    #[arg(long, value_enum, default_value_t = BackendKind::Nvml)]
    backend: BackendKind,
    /// Fake backend: GPUs per node.
    #[arg(long, default_value_t = 8)]
    fake_gpus: u32,
    /// Fake backend: each GPU's lowest limit, W (H100 SXM5: 200).
    #[arg(long, default_value_t = 200)]
    fake_min_watts: u32,
    /// Fake backend: each GPU's highest limit, W (H100 SXM5: 700).
    #[arg(long, default_value_t = 700)]
    fake_max_watts: u32,
    /// Fake backend: each GPU's default limit, W.
    #[arg(long, default_value_t = 700)]
    fake_default_watts: u32,
    /// Fake backend: append one JSON line per limit set to this file.
    #[arg(long)]
    fake_record: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// The GPUs of this machine, through NVML.
    Nvml,
    /// GPUs in memory, recording what would be set.
    Fake,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// NVML that failed to load: every call says why, and the node reports it.
struct Unavailable(String);

impl PowerBackend for Unavailable {
    fn gpus(&mut self) -> Result<Vec<cap::GpuLimits>, BackendError> {
        Err(BackendError::Unavailable(self.0.clone()))
    }
    fn set_limit(&mut self, _: u32, _: u32) -> Result<(), BackendError> {
        Err(BackendError::Unavailable(self.0.clone()))
    }
}

fn backend_for(args: &Args, node: &str) -> Box<dyn PowerBackend> {
    match args.backend {
        BackendKind::Fake => Box::new(FakeBackend::new(
            node,
            args.fake_gpus,
            args.fake_min_watts,
            args.fake_max_watts,
            args.fake_default_watts,
            args.fake_record.clone(),
        )),
        BackendKind::Nvml => match NvmlBackend::new() {
            Ok(nvml) => Box::new(nvml),
            Err(error) => {
                tracing::error!(%error, "NVML is unavailable; reporting it on the node");
                Box::new(Unavailable(error.to_string()))
            }
        },
    }
}

/// Makes the GPUs match the node's label; the report to put on the node.
fn enforce(
    labels: &BTreeMap<String, String>,
    backend: &mut dyn PowerBackend,
    node: &str,
) -> Report {
    let request = match cap::requested(labels) {
        Ok(request) => request,
        Err(message) => {
            return Report::Failed {
                reason: "invalid-cap",
                message,
            };
        }
    };
    let gpus = match backend.gpus() {
        Ok(gpus) => gpus,
        Err(error) => {
            return Report::Failed {
                reason: error.reason(),
                message: error.to_string(),
            };
        }
    };
    let decision = cap::decide(request, &gpus);
    for set in &decision.set {
        if let Err(error) = backend.set_limit(set.gpu, set.watts) {
            tracing::warn!(%node, %error, "setting a GPU power limit");
            return Report::Failed {
                reason: error.reason(),
                message: error.to_string(),
            };
        }
        tracing::info!(%node, gpu = set.gpu, watts = set.watts, "GPU power limit set");
    }
    decision.report
}

/// Puts `report` on the node when it says something else than what is there.
async fn report(api: &Api<Node>, node: &Node, report: &Report) -> anyhow::Result<()> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let (label, message) = match report {
        Report::Applied { watts, message } => (Some(watts.to_string()), Some(message.clone())),
        Report::Failed { reason, message } => (Some((*reason).to_owned()), Some(message.clone())),
        Report::Default => (None, None),
    };
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let annotations = node.metadata.annotations.clone().unwrap_or_default();
    if labels.get(POWER_CAP_APPLIED_LABEL) == label.as_ref()
        && annotations.get(MESSAGE_ANNOTATION) == message.as_ref()
    {
        return Ok(());
    }
    // The whole set this manager owns: nothing when at the defaults (the API server removes it).
    let mut metadata = json!({"name": name, "labels": {}, "annotations": {}});
    if let (Some(label), Some(message)) = (label, message) {
        metadata["labels"][POWER_CAP_APPLIED_LABEL] = json!(label);
        metadata["annotations"][MESSAGE_ANNOTATION] = json!(message);
    }
    let body = json!({"apiVersion": "v1", "kind": "Node", "metadata": metadata});
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .with_context(|| format!("reporting the power cap on node {name}"))?;
    Ok(())
}

/// SIGTERM (the kubelet stopping the pod) or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    if args.node_selector.is_some() && args.backend == BackendKind::Nvml {
        anyhow::bail!(
            "--node-selector serves many nodes, but NVML sets this machine's GPUs only: use --node, or --backend fake"
        );
    }
    let client = Client::try_default()
        .await
        .context("finding the cluster (kubeconfig or in-cluster)")?;
    let api: Api<Node> = Api::all(client);
    let configs: Vec<Config> = match &args.node_selector {
        Some(selector) => vec![Config::default().labels(selector)],
        None => args
            .nodes
            .iter()
            .map(|n| Config::default().fields(&format!("metadata.name={n}")))
            .collect(),
    };
    let mut events = select_all(configs.into_iter().map(|config| {
        watcher::watcher(api.clone(), config)
            .default_backoff()
            .boxed()
    }));
    let mut backends: BTreeMap<String, Box<dyn PowerBackend>> = BTreeMap::new();
    // On SIGTERM the limits stay as they are: a cap protects a cooling loop, and the next
    // agent (or a reboot) takes over from the label.
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let event = tokio::select! {
            () = &mut shutdown => return Ok(()),
            event = events.next() => event,
        };
        let node = match event {
            Some(Ok(Event::Apply(node) | Event::InitApply(node))) => node,
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                tracing::warn!(%error, "node watch failed; retrying");
                continue;
            }
            None => return Ok(()),
        };
        let name = node.metadata.name.clone().unwrap_or_default();
        let backend = backends
            .entry(name.clone())
            .or_insert_with(|| backend_for(&args, &name));
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let outcome = enforce(&labels, backend.as_mut(), &name);
        if let Err(error) = report(&api, &node, &outcome).await {
            tracing::warn!(error = format!("{error:#}"), "next node event retries");
        }
    }
}

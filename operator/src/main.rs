//! `kelvin-operator`: reconciles GpuClusters against the cluster the standard kubeconfig
//! resolution finds (in-cluster when deployed).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use kelvin_core::label_interest::LabelInterest;
use kelvin_crds::v1alpha1::GpuCluster;
use kelvin_operator::{
    api_client::{ApiClient, Request},
    controller::{self, Context},
    http::{self, Readiness},
    leader::{Elector, Timings},
    metrics::Metrics,
    node_cache,
};
use kube::runtime::events::{Recorder, Reporter};

/// Kelvin's operator: reconciles GpuClusters into node pools, device plugins and scheduling
/// policies.
#[derive(Parser)]
#[command(name = "kelvin-operator", version, about)]
struct Args {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "KELVIN_LOG_FORMAT")]
    log_format: LogFormat,
    /// Address serving /metrics (Prometheus), /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", env = "KELVIN_HTTP_ADDRESS")]
    http_address: SocketAddr,
    /// Node writes in flight at once (the test API server's throughput for node writes stops
    /// growing at 32-64: docs/performance.md).
    #[arg(long, default_value_t = 32, env = "KELVIN_WRITE_CONCURRENCY")]
    write_concurrency: usize,
    /// Requests per second to the API server, on average (0: unlimited). Watches are not
    /// counted.
    #[arg(long, default_value_t = 500.0, env = "KELVIN_KUBE_API_QPS")]
    kube_api_qps: f64,
    /// Requests that may go at once above the average rate.
    #[arg(long, default_value_t = 1000, env = "KELVIN_KUBE_API_BURST")]
    kube_api_burst: u32,
    /// Elect one acting replica through a Lease (turn off only when one replica runs).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "KELVIN_LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the leader Lease (default: the pod's namespace in a cluster, else the
    /// kubeconfig context's).
    #[arg(long, env = "POD_NAMESPACE")]
    leader_elect_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, default_value = "kelvin-operator")]
    leader_elect_name: String,
    /// How long a Lease not renewed stays its holder's.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    leader_elect_lease_duration: Duration,
    /// How long the leader tries to renew before it stops acting.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    leader_elect_renew_deadline: Duration,
    /// How often candidates try and the leader renews.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    leader_elect_retry_period: Duration,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `500ms`, `2s`, `1m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: write e.g. 15s, 500ms or 1m"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(format!("{text:?}: unit {unit:?} is not ms, s or m")),
    }
}

/// SIGTERM (the kubelet stopping the pod) or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Unique per process: the pod's name (or the host's) and the process id.
fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kelvin-operator".into());
    format!("{host}_{}", std::process::id())
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
    let metrics = Arc::new(Metrics::default());
    let readiness = Arc::new(Readiness::default());
    let bound = http::serve(args.http_address, metrics.clone(), readiness.clone())
        .await
        .with_context(|| format!("serving /metrics and probes on {}", args.http_address))?;
    tracing::info!(address = %bound, "serving /metrics, /healthz, /readyz");

    let mut config = kube::Config::infer()
        .await
        .context("finding the cluster (kubeconfig or in-cluster)")?;
    // kube retries 429s itself by default (up to 15 times, honouring Retry-After): Kelvin's
    // client backs off in bounded steps instead, and an eviction's 429 is an answer (a
    // PodDisruptionBudget says no), not load to wait out inside one reconcile.
    config.default_retry = false;
    let client = kube::Client::try_from(config).context("building the API client")?;
    let api = ApiClient::new(
        client.clone(),
        metrics.clone(),
        args.kube_api_qps,
        args.kube_api_burst,
    );
    let identity = identity();
    let mut shutdown = std::pin::pin!(shutdown_signal());

    let mut elector = None;
    if args.leader_elect {
        let namespace = args
            .leader_elect_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let timings = Timings {
            lease_duration: args.leader_elect_lease_duration,
            renew_deadline: args.leader_elect_renew_deadline,
            retry_period: args.leader_elect_retry_period,
        };
        let mut candidate = Elector::new(
            api.clone(),
            &namespace,
            &args.leader_elect_name,
            &identity,
            timings,
        );
        readiness.standby();
        tracing::info!(%identity, lease = %format!("{namespace}/{}", args.leader_elect_name), "waiting for the leader Lease");
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            result = candidate.acquire() => result.context("leader election")?,
        }
        tracing::info!(%identity, "leading");
        metrics.leading(true);
        elector = Some(candidate);
    }
    readiness.starting();

    // The labels the GpuClusters' plans read, so the first list keeps those (each reconcile
    // checks again, and the cache lists again when a spec reads more).
    let clusters: kube::Api<GpuCluster> = kube::Api::all(client.clone());
    let all = kube::api::ListParams::default();
    let listed = api.call(Request::Read, || clusters.list(&all)).await;
    let interest = match listed {
        Ok(list) => LabelInterest::of(list.items.iter().map(|c| &c.spec)),
        Err(error) => {
            tracing::warn!(%error, "listing GpuClusters for the node labels they read");
            LabelInterest::default()
        }
    };
    let (nodes, node_changes) = node_cache::spawn(client.clone(), interest);
    tokio::select! {
        () = &mut shutdown => return Ok(()),
        () = nodes.wait_synced() => {},
    }
    tracing::info!(nodes = nodes.len(), "node cache synced");
    readiness.leading();
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "kelvin-operator".into(),
            instance: Some(identity),
        },
    );
    let ctx = Context {
        api,
        nodes,
        write_concurrency: args.write_concurrency,
        recorder,
        blocked: Default::default(),
        clusters: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = controller::run(ctx, node_changes, async move {
        let _ = stopped.await;
    });
    let mut controller = std::pin::pin!(controller);
    let lost = async {
        match elector.as_mut() {
            Some(elector) => Some(elector.hold().await),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = &mut shutdown => {
            // Let in-flight reconciles finish their writes, then give the Lease up.
            let _ = stop.send(());
            controller.await;
        }
        () = &mut controller => {}
        Some(lost) = lost => {
            // Another replica may act now: stop at once, without finishing writes.
            metrics.leading(false);
            return Err(lost).context("leader election");
        }
    }
    if let Some(mut elector) = elector {
        elector
            .release()
            .await
            .context("releasing the leader Lease")?;
    }
    Ok(())
}

//! `kelvin-operator`: reconciles GpuClusters against the cluster the standard kubeconfig
//! resolution finds (in-cluster when deployed).

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use kelvin_operator::controller::{self, Context};

/// Kelvin's operator: reconciles GpuClusters into node pools, device plugins and scheduling
/// policies.
#[derive(Parser)]
#[command(name = "kelvin-operator", version, about)]
struct Args {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "KELVIN_LOG_FORMAT")]
    log_format: LogFormat,
    /// Node writes in flight at once.
    #[arg(long, default_value_t = 16, env = "KELVIN_WRITE_CONCURRENCY")]
    write_concurrency: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
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
    let client = kube::Client::try_default()
        .await
        .context("finding the cluster (kubeconfig or in-cluster)")?;
    controller::run(Context {
        client,
        write_concurrency: args.write_concurrency,
    })
    .await
}

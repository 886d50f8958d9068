//! `fake-nodes`: create, count or delete fake GPU nodes in the cluster of $KUBECONFIG.
//! `tests/cluster.sh nodes ...` runs this. Example:
//!
//!   fake-nodes create --count 1000 --prefix gpu-h100 --labels team=fsd --wait
//!   fake-nodes from-spec -f examples/small/cluster.yaml --wait

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use k8s_openapi::api::core::v1::Taint;
use kelvin_e2e::{GpuNodes, Layout, SpecNodes};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

#[derive(Parser)]
#[command(about = "Create fake GPU nodes (kept Ready by kwok) in the cluster of $KUBECONFIG")]
struct Cli {
    /// Kubeconfig of the cluster.
    #[arg(long, env = "KUBECONFIG", global = true)]
    kubeconfig: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the nodes (existing ones are left alone) and optionally wait until Ready.
    Create {
        #[command(flatten)]
        set: SetArgs,
        /// Wait until every node of the set is Ready.
        #[arg(long)]
        wait: bool,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Print how many nodes of the set exist and how many are Ready.
    Count {
        #[command(flatten)]
        set: SetArgs,
    },
    /// Delete the nodes of the set.
    Delete {
        #[command(flatten)]
        set: SetArgs,
    },
    /// Create the nodes `kelvin plan --offline` simulates for a GpuCluster spec (expectedNodes
    /// per pool, named, labelled and placed in cooling zones exactly as the offline plan has
    /// them), so a live plan of the spec sees the same nodes.
    FromSpec {
        /// YAML file holding one GpuCluster (read by kelvin's loader: a spec failing its schema
        /// or CEL rules is refused with the findings).
        #[arg(
            value_name = "FILE",
            required_unless_present = "file",
            conflicts_with = "file"
        )]
        spec: Option<PathBuf>,
        /// The same, as a flag (`-f FILE`, like kubectl).
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        /// Create at most this many nodes per pool (expectedNodes can be tens of thousands).
        #[arg(long)]
        max_per_pool: Option<usize>,
        /// Delete those nodes instead of creating them.
        #[arg(long)]
        delete: bool,
        /// Wait until every node is Ready.
        #[arg(long)]
        wait: bool,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Concurrent API requests.
        #[arg(long, default_value_t = 32)]
        parallel: usize,
    },
}

#[derive(Args)]
struct SetArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Name prefix; nodes are PREFIX-NNNNN.
    #[arg(long, default_value = "gpu-h100")]
    prefix: String,
    /// First position number.
    #[arg(long, default_value_t = 0)]
    start: usize,
    /// Digits of the zero-padded position.
    #[arg(long, default_value_t = 5)]
    digits: usize,
    /// Value of kelvin.dev/sku.
    #[arg(long, default_value = "hgx-h100")]
    sku: String,
    /// Value of nvidia.com/gpu.product.
    #[arg(long, default_value = "NVIDIA-H100-80GB-HBM3")]
    gpu_product: String,
    /// Accelerator resource in capacity and allocatable.
    #[arg(long, default_value = "nvidia.com/gpu")]
    resource: String,
    /// Accelerators per node.
    #[arg(long, default_value_t = 8)]
    gpus: u32,
    /// Extra labels, k=v,k=v (override the generated ones, e.g. kelvin.dev/hall=b).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Taints, key=value:Effect,...
    #[arg(long, value_delimiter = ',')]
    taints: Vec<String>,
    #[arg(long, default_value_t = Layout::default().nodes_per_rack)]
    nodes_per_rack: usize,
    #[arg(long, default_value_t = Layout::default().racks_per_loop)]
    racks_per_loop: usize,
    #[arg(long, default_value_t = Layout::default().loops_per_hall)]
    loops_per_hall: usize,
    /// Concurrent API requests.
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// Dress the nodes as production GPU nodes (~100 NFD/GPU-feature-discovery labels,
    /// kubelet/CNI/CSI annotations, images: 10-20 KB each), for benchmarks.
    #[arg(long)]
    realistic: bool,
}

impl SetArgs {
    fn build(&self) -> Result<GpuNodes> {
        let mut set = GpuNodes::new(&self.prefix, self.count);
        set.start = self.start;
        set.digits = self.digits;
        set.sku.clone_from(&self.sku);
        set.gpu_product.clone_from(&self.gpu_product);
        set.resource.clone_from(&self.resource);
        set.gpus_per_node = self.gpus;
        set.parallelism = self.parallel;
        set.realistic = self.realistic;
        set.layout = Layout {
            nodes_per_rack: self.nodes_per_rack,
            racks_per_loop: self.racks_per_loop,
            loops_per_hall: self.loops_per_hall,
        };
        set.labels = self
            .labels
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .with_context(|| format!("label {kv:?} is not key=value"))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        set.taints = self
            .taints
            .iter()
            .map(|t| parse_taint(t))
            .collect::<Result<_>>()?;
        Ok(set)
    }
}

fn parse_taint(text: &str) -> Result<Taint> {
    let (kv, effect) = text
        .rsplit_once(':')
        .with_context(|| format!("taint {text:?} is not key[=value]:Effect"))?;
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        bail!("taint {text:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute");
    }
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

async fn client(kubeconfig: Option<&PathBuf>) -> Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => Config::infer()
            .await
            .context("no kubeconfig (set KUBECONFIG)")?,
    };
    Client::try_from(config).context("building a Kubernetes client")
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let client = client(cli.kubeconfig.as_ref()).await?;
    match cli.command {
        Cmd::Create { set, wait, timeout } => {
            let set = set.build()?;
            let started = Instant::now();
            let created = set.create(&client).await?;
            let took = started.elapsed().as_secs_f64();
            println!(
                "created {created} of {} nodes {}..{} in {took:.1} s ({:.0} nodes/s)",
                set.count,
                set.name(0),
                set.name(set.count.saturating_sub(1)),
                created as f64 / took.max(0.001)
            );
            if wait {
                let ready = set
                    .wait_ready(&client, Duration::from_secs(timeout))
                    .await?;
                println!(
                    "{} nodes Ready {:.1} s after creation finished ({:.1} s in all)",
                    set.count,
                    ready.as_secs_f64(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Cmd::FromSpec {
            spec,
            file,
            max_per_pool,
            delete,
            wait,
            timeout,
            parallel,
        } => {
            let file = file
                .or(spec)
                .context("name the spec file: from-spec FILE")?;
            let mut set = SpecNodes::from_file(&file, max_per_pool)?;
            set.parallelism = parallel;
            let (first, last) = match (set.nodes.first(), set.nodes.last()) {
                (Some(first), Some(last)) => (first.name.clone(), last.name.clone()),
                _ => bail!("{} simulates no nodes (expectedNodes is 0)", file.display()),
            };
            let started = Instant::now();
            if delete {
                set.delete(&client).await?;
                println!("deleted {} nodes {first}..{last}", set.nodes.len());
                return Ok(());
            }
            let created = set.create(&client).await?;
            println!(
                "created {created} of {} nodes {first}..{last} in {:.1} s",
                set.nodes.len(),
                started.elapsed().as_secs_f64()
            );
            if wait {
                set.wait_ready(&client, Duration::from_secs(timeout))
                    .await?;
                println!("all nodes Ready");
            }
        }
        Cmd::Count { set } => {
            let (total, ready) = set.build()?.count_ready(&client).await?;
            println!("{total} nodes, {ready} Ready");
        }
        Cmd::Delete { set } => {
            let set = set.build()?;
            let started = Instant::now();
            set.delete(&client).await?;
            println!(
                "deleted {} nodes in {:.1} s",
                set.count,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

//! `bench-load`: the measuring half of `tests/bench/converge.sh` (a program that prints
//! figures, not a test), against the cluster of $KUBECONFIG.
//!
//!   bench-load ceiling --selector S --labels k=v,...   the API server's node-PATCH ceiling
//!   bench-load converged --label k[=v] --count N -- CMD  time from CMD to N nodes carrying k
//!
//! `ceiling` sends label PATCHes to every node the selector matches, all nodes once per round,
//! at a concurrency that doubles each round (1, 2, 4, ...) until throughput stops growing,
//! and prints nodes/s per round and, last, one JSON line. `--patch apply` sends what Kelvin
//! sends (server-side apply of the labels, its own field manager), `--patch merge` what
//! `kubectl label` sends (a JSON merge patch). Every round changes each node (a round label),
//! so no write is a no-op the API server could skip. `--cleanup` removes what it wrote.
//!
//! `converged` watches nodes (from outside whatever CMD starts), runs CMD once its watch has
//! listed, and prints the seconds from CMD to the moment N nodes carry the label.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Node;
use kube::api::{ListParams, PartialObjectMeta, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Config};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Node-write ceiling and convergence timing for tests/bench/converge.sh")]
struct Cli {
    /// Kubeconfig of the cluster.
    #[arg(long, env = "KUBECONFIG", global = true)]
    kubeconfig: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum PatchKind {
    /// Server-side apply under field manager `kelvin-bench` (what Kelvin sends).
    Apply,
    /// JSON merge patch (what `kubectl label` sends).
    Merge,
}

#[derive(Subcommand)]
enum Cmd {
    /// The API server's throughput for label PATCHes of nodes, by concurrency.
    Ceiling {
        /// Label selector of the nodes to write.
        #[arg(long)]
        selector: String,
        /// Labels to set, `k=v,k=v` (the round label `bench.kelvin.dev/round` is added).
        #[arg(long, default_value = "")]
        labels: String,
        #[arg(long, value_enum, default_value = "apply")]
        patch: PatchKind,
        /// Highest concurrency tried.
        #[arg(long, default_value_t = 256)]
        max_concurrency: usize,
        /// Remove what the rounds wrote at the end.
        #[arg(long)]
        cleanup: bool,
        /// Write only the first N nodes the selector matches (throughput per request does not
        /// depend on how many nodes there are; rounds of 10,000 take minutes).
        #[arg(long)]
        sample: Option<usize>,
    },
    /// Removes label keys from every node the selector matches, fast (merge patches, many in
    /// flight): the clean-up after the `kubectl label` baseline.
    RemoveLabels {
        #[arg(long)]
        selector: String,
        /// Keys, `k,k,...`.
        #[arg(long)]
        keys: String,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Seconds from running CMD to COUNT nodes carrying LABEL, watched.
    Converged {
        /// `key=value` the nodes must carry, or `key` (any value).
        #[arg(long)]
        label: String,
        /// How many nodes.
        #[arg(long)]
        count: usize,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
        /// The command that starts the change (run once the watch has listed).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

const FIELD_MANAGER: &str = "kelvin-bench";
const ROUND_LABEL: &str = "bench.kelvin.dev/round";

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let client = client(cli.kubeconfig.as_deref()).await?;
    match cli.command {
        Cmd::Ceiling {
            selector,
            labels,
            patch,
            max_concurrency,
            cleanup,
            sample,
        } => {
            ceiling(
                client,
                &selector,
                &labels,
                patch,
                max_concurrency,
                cleanup,
                sample,
            )
            .await
        }
        Cmd::RemoveLabels {
            selector,
            keys,
            concurrency,
        } => {
            let api: Api<Node> = Api::all(client);
            let names = Arc::new(node_names(&api, &selector).await?);
            let labels: Vec<(String, String)> = keys
                .split(',')
                .filter(|k| !k.is_empty())
                .map(|k| (k.to_owned(), String::new()))
                .collect();
            let (secs, _) = round(
                &api,
                &names,
                PatchKind::Merge,
                &Arc::new(labels),
                None,
                concurrency,
            )
            .await?;
            eprintln!("remove-labels: {} nodes in {secs:.1} s", names.len());
            Ok(())
        }
        Cmd::Converged {
            label,
            count,
            timeout,
            command,
        } => {
            converged(
                client,
                &label,
                count,
                Duration::from_secs(timeout),
                &command,
            )
            .await
        }
    }
}

async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await?,
    };
    // Throughput is what is measured: no client-side limit, no retries hiding 429s.
    Client::try_from(config).context("building a client")
}

fn parse_labels(text: &str) -> Result<Vec<(String, String)>> {
    text.split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("label {kv:?} is not key=value"))
        })
        .collect()
}

async fn node_names(api: &Api<Node>, selector: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut params = ListParams::default().labels(selector).limit(500);
    loop {
        let page = api.list_metadata(&params).await?;
        names.extend(page.items.into_iter().filter_map(|n| n.metadata.name));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(names)
}

/// The body writing `labels` (+ the round label, when given) to `node`.
fn body(
    kind: PatchKind,
    node: &str,
    labels: &[(String, String)],
    round: Option<usize>,
) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (k, v) in labels {
        map.insert(k.clone(), json!(v));
    }
    match (kind, round) {
        (_, Some(r)) => {
            map.insert(ROUND_LABEL.to_owned(), json!(r.to_string()));
        }
        // Cleanup: apply without the labels gives them up; merge sets them null.
        (PatchKind::Apply, None) => map.clear(),
        (PatchKind::Merge, None) => {
            for value in map.values_mut() {
                *value = serde_json::Value::Null;
            }
            map.insert(ROUND_LABEL.to_owned(), serde_json::Value::Null);
        }
    }
    match kind {
        PatchKind::Apply => json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node, "labels": map},
        }),
        PatchKind::Merge => json!({"metadata": {"labels": map}}),
    }
}

/// One write of every node at `concurrency`: (seconds, throttled responses).
async fn round(
    api: &Api<Node>,
    names: &Arc<Vec<String>>,
    kind: PatchKind,
    labels: &Arc<Vec<(String, String)>>,
    round: Option<usize>,
    concurrency: usize,
) -> Result<(f64, usize)> {
    let started = Instant::now();
    let results: Vec<bool> = stream::iter(names.iter().cloned())
        .map(|name| {
            let (api, labels) = (api.clone(), labels.clone());
            async move {
                let body = body(kind, &name, &labels, round);
                let (params, patch) = match kind {
                    PatchKind::Apply => (
                        PatchParams::apply(FIELD_MANAGER).force(),
                        Patch::Apply(body),
                    ),
                    PatchKind::Merge => (PatchParams::default(), Patch::Merge(body)),
                };
                // A 429 is retried after a moment and counted: the ceiling is what gets through.
                let mut throttled = false;
                loop {
                    match api.patch(&name, &params, &patch).await {
                        Ok(_) => return Ok::<bool, anyhow::Error>(throttled),
                        Err(kube::Error::Api(s)) if s.code == 429 => {
                            throttled = true;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => return Err(e).with_context(|| format!("patching node {name}")),
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    Ok((
        started.elapsed().as_secs_f64(),
        results.into_iter().filter(|t| *t).count(),
    ))
}

async fn ceiling(
    client: Client,
    selector: &str,
    labels: &str,
    kind: PatchKind,
    max_concurrency: usize,
    cleanup: bool,
    sample: Option<usize>,
) -> Result<()> {
    let api: Api<Node> = Api::all(client);
    let labels = Arc::new(parse_labels(labels)?);
    let mut names = node_names(&api, selector).await?;
    if let Some(sample) = sample {
        names.truncate(sample);
    }
    let names = Arc::new(names);
    if names.is_empty() {
        bail!("no node matches {selector:?}");
    }
    let n = names.len();
    let mut best = (0.0_f64, 0_usize);
    let mut rounds = Vec::new();
    let mut not_growing = 0;
    let mut concurrency = 1;
    let mut r = 0;
    while concurrency <= max_concurrency {
        r += 1;
        let (secs, throttled) = round(&api, &names, kind, &labels, Some(r), concurrency).await?;
        let rate = n as f64 / secs;
        eprintln!(
            "ceiling: concurrency {concurrency:>4}: {n} nodes in {secs:6.2} s = {rate:7.0} nodes/s{}",
            if throttled > 0 {
                format!(" ({throttled} throttled)")
            } else {
                String::new()
            }
        );
        rounds.push(json!({"concurrency": concurrency, "seconds": secs, "nodes_per_s": rate, "throttled": throttled}));
        // Stop once two doublings in a row gained less than 5 %, but not before 64 requests
        // in flight (on a shared machine one slow round is noise, not the ceiling).
        if rate > best.0 * 1.05 {
            not_growing = 0;
        } else {
            not_growing += 1;
        }
        if rate > best.0 {
            best = (rate, concurrency);
        }
        if not_growing >= 2 && concurrency >= 64 {
            break;
        }
        concurrency *= 2;
    }
    if cleanup {
        round(&api, &names, kind, &labels, None, best.1).await?;
    }
    println!(
        "{}",
        json!({
            "nodes": n,
            "patch": match kind { PatchKind::Apply => "apply", PatchKind::Merge => "merge" },
            "best_nodes_per_s": best.0,
            "best_concurrency": best.1,
            "rounds": rounds,
        })
    );
    Ok(())
}

async fn converged(
    client: Client,
    label: &str,
    count: usize,
    timeout: Duration,
    command: &[String],
) -> Result<()> {
    // `key=value`, or `key` alone: any value.
    let (key, value) = match label.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (label, None),
    };
    let api: Api<PartialObjectMeta<Node>> = Api::all(client);
    // Metadata only (labels are metadata): the watcher must not compete with what it times.
    let carries = |node: &PartialObjectMeta<Node>| {
        node.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .is_some_and(|v| value.is_none_or(|value| v == value))
    };
    let mut events = std::pin::pin!(watcher::watcher(
        api,
        watcher::Config::default().page_size(500)
    ));
    let mut labelled: BTreeSet<String> = BTreeSet::new();
    let mut initial: BTreeSet<String> = BTreeSet::new();
    let mut started: Option<Instant> = None;
    let deadline = Instant::now() + timeout;
    loop {
        let next = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .with_context(|| {
                format!(
                    "{} of {count} nodes carry {label} after {timeout:?}",
                    labelled.len()
                )
            })?;
        let event = match next {
            None => bail!("the node watch ended"),
            Some(Err(e)) => {
                eprintln!("converged: watch error (retrying): {e}");
                continue;
            }
            Some(Ok(event)) => event,
        };
        match event {
            Event::Init => initial.clear(),
            Event::InitApply(node) => {
                if carries(&node) {
                    initial.insert(node.metadata.name.unwrap_or_default());
                }
            }
            Event::InitDone => {
                labelled = std::mem::take(&mut initial);
                if started.is_none() {
                    started = Some(Instant::now());
                    // Its output is not ours to print: stdout carries only the figure.
                    let status = std::process::Command::new(&command[0])
                        .args(&command[1..])
                        .stdout(std::process::Stdio::null())
                        .status()
                        .with_context(|| format!("running {command:?}"))?;
                    if !status.success() {
                        bail!("{command:?} failed: {status}");
                    }
                }
            }
            Event::Apply(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                if carries(&node) {
                    labelled.insert(name);
                } else {
                    labelled.remove(&name);
                }
            }
            Event::Delete(node) => {
                labelled.remove(&node.metadata.name.unwrap_or_default());
            }
        }
        if let Some(t0) = started
            && labelled.len() >= count
        {
            println!("{:.3}", t0.elapsed().as_secs_f64());
            return Ok(());
        }
    }
}

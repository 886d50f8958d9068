//! Finding the cluster as kubectl does (`--kubeconfig`, `$KUBECONFIG`, `~/.kube/config`,
//! in-cluster; `--context`) and making sure it answers before anything else is asked of it.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result, anyhow};
use kelvin_operator::{api_client::ApiClient, metrics::Metrics};
use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

/// Requests per second the CLI sends on average, and its burst (kubectl: 5 / 10; a live plan
/// of 70,000 nodes is ~140 list pages, so a little more than kubectl).
const QPS: f64 = 50.0;
const BURST: u32 = 100;
/// How long the first request may take before the cluster counts as unreachable.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Which cluster the command line asks for.
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
}

/// A cluster that answered.
pub struct Live {
    /// The rate-limited client (the operator's wrapper).
    pub api: ApiClient,
    /// The API server's URL.
    pub server: String,
    /// The kubeconfig context, when one was used.
    pub context: Option<String>,
}

impl Live {
    /// The cluster, for headings and the prompt: `https://… (context kind-lab)`.
    pub fn describe(&self) -> String {
        match &self.context {
            Some(context) => format!("{} (context {context})", self.server),
            None => self.server.clone(),
        }
    }

    /// The plain kube client.
    pub fn client(&self) -> Client {
        self.api.client.clone()
    }
}

/// Whether a kubeconfig is around: `$KUBECONFIG` or `~/.kube/config`.
fn kubeconfig_in_environment() -> bool {
    crate::input::kubeconfig_present()
}

fn in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty())
}

/// Whether the command line or the environment names a cluster at all.
pub fn configured(target: &Target) -> bool {
    target.kubeconfig.is_some()
        || target.context.is_some()
        || kubeconfig_in_environment()
        || in_cluster()
}

/// The client configuration `target` resolves to, with the context's name.
async fn config(target: &Target) -> Result<(Config, Option<String>)> {
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..KubeConfigOptions::default()
    };
    let fix = "  fix: name a kubeconfig with --kubeconfig FILE (or $KUBECONFIG), or plan without a cluster: kelvin plan --offline";
    if let Some(path) = &target.kubeconfig {
        let kubeconfig = Kubeconfig::read_from(path)
            .map_err(|e| anyhow!("reading kubeconfig {}: {e}\n{fix}", path.display()))?;
        let context = target
            .context
            .clone()
            .or(kubeconfig.current_context.clone());
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| anyhow!("loading kubeconfig {}: {e}\n{fix}", path.display()))?;
        return Ok((config, context));
    }
    if kubeconfig_in_environment() {
        let kubeconfig =
            Kubeconfig::read().map_err(|e| anyhow!("reading the kubeconfig: {e}\n{fix}"))?;
        let context = target
            .context
            .clone()
            .or(kubeconfig.current_context.clone());
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| anyhow!("loading the kubeconfig: {e}\n{fix}"))?;
        return Ok((config, context));
    }
    if let Some(context) = &target.context {
        anyhow::bail!(
            "--context {context}: no kubeconfig to find it in (no --kubeconfig, $KUBECONFIG or ~/.kube/config)\n{fix}"
        );
    }
    let config = Config::incluster().map_err(|e| {
        anyhow!(
            "no cluster to talk to: no --kubeconfig, $KUBECONFIG or ~/.kube/config, and not running in a pod ({e})\n{fix}"
        )
    })?;
    Ok((config, None))
}

/// Connects to the cluster `target` names and checks that its API server answers.
pub async fn connect(target: &Target) -> Result<Live> {
    let (mut config, context) = config(target).await?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(60));
    let server = config.cluster_url.to_string();
    let server = server.trim_end_matches('/').to_owned();
    let where_ = match &context {
        Some(context) => format!("{server} (context {context})"),
        None => server.clone(),
    };
    let client = Client::try_from(config)
        .with_context(|| format!("making a client for the Kubernetes API server at {where_}"))?;
    let unreachable = |cause: String| {
        anyhow!(
            "cannot reach the Kubernetes API server at {where_}: {cause}\n  fix: check that the cluster is up (`kubectl cluster-info`) and the context is the one meant, or plan without a cluster: kelvin plan --offline"
        )
    };
    match tokio::time::timeout(REACH_TIMEOUT, client.apiserver_version()).await {
        Err(_) => return Err(unreachable(format!("no answer within {REACH_TIMEOUT:?}"))),
        Ok(Err(error)) => return Err(unreachable(cause(&error))),
        Ok(Ok(_)) => {}
    }
    Ok(Live {
        api: ApiClient::new(client, Arc::new(Metrics::default()), QPS, BURST),
        server,
        context,
    })
}

/// The innermost cause of a client error, in one line ("Connection refused (os error 111)").
pub fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(kube::Error::Api(status)) = error.downcast_ref::<kube::Error>() {
        return format!("{} ({})", status.message, status.code);
    }
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

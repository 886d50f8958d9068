//! One control plane per test binary, started by `tests/cluster.sh up --lifeline`.
//!
//! Lifetime: the harness starts `cluster.sh up` with a pipe on its stdin and keeps the write end
//! in a `static` for the rest of the process, never writing to it. `up` hands the read end to
//! the supervisor it starts, which stops the control plane and deletes its directory when it
//! reads end-of-file. The kernel closes the write end when the test process exits, whether
//! the tests passed, a test panicked, or the process was killed with SIGKILL, so nothing is
//! left behind and no teardown hook is needed (Rust's test harness has none). The pipe is
//! created close-on-exec, so kubectl, helm and other children of the tests never hold it open.
//! The supervisor in turn starts each component with `PR_SET_PDEATHSIG` (via `setpriv`), so
//! the components die with it even if it is killed itself.

use std::collections::BTreeMap;
use std::env;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// Environment variable naming the kubeconfig of an existing cluster to test against instead of
/// starting one (e.g. a kind cluster; see `tests/kind/run.sh`).
pub const EXTERNAL_KUBECONFIG_ENV: &str = "KELVIN_E2E_KUBECONFIG";

/// Label put on namespaces the harness creates, so leftovers on a shared cluster can be found.
pub const TEST_LABEL: &str = "e2e.kelvin.dev/test";

/// The repository root (this crate lives at `tests/e2e`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// A name no other test of this run (and, on a shared external cluster, no other run) uses:
/// `PREFIX-PID-N`. Keep PREFIX short: the result must stay a DNS label (63 characters).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A running cluster the tests talk to: one this process started, or an external one.
pub struct Cluster {
    kubeconfig: PathBuf,
    /// Directory of the cached binaries (kubectl, helm, ...), when known.
    bin_dir: Option<PathBuf>,
    /// The cluster's directory (certificates, logs, etcd data) when this process started it.
    dir: Option<PathBuf>,
    /// Scratch space for helm's home directories and service-account kubeconfigs.
    scratch: PathBuf,
    /// Write end of the lifeline pipe. Never written, never closed by us: the kernel closes it
    /// when this process ends, and that stops the control plane.
    _lifeline: Option<Mutex<ChildStdin>>,
}

/// What a test binary's control plane runs besides etcd, the API server, the controller
/// manager, the scheduler and kwok.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Kueue's CRDs and the real Kueue controller manager with its webhooks
    /// (`tests/cluster.sh up --kueue`).
    pub kueue: bool,
}

static CLUSTER: OnceLock<(Options, std::result::Result<Cluster, String>)> = OnceLock::new();

/// The cluster of this test run: started on first use (tests calling this concurrently wait for
/// the one start), shared afterwards. If starting failed, every caller gets the same error.
///
/// A cold machine first builds the control-plane binaries (`tests/testbin/build.sh`), which
/// takes a long time; progress goes to stderr.
pub fn cluster() -> Result<&'static Cluster> {
    cluster_with(Options::default())
}

/// Like [`cluster`], with the real Kueue running too ([`Options::kueue`]). Every test of a
/// binary that wants Kueue calls this one: the binary's one control plane is started by its
/// first caller, and one started without Kueue is refused here. An external cluster
/// (`KELVIN_E2E_KUBECONFIG`) is taken as it is: install Kueue there yourself.
pub fn cluster_with_kueue() -> Result<&'static Cluster> {
    cluster_with(Options { kueue: true })
}

fn cluster_with(options: Options) -> Result<&'static Cluster> {
    let (started_with, result) = CLUSTER.get_or_init(|| {
        (
            options,
            Cluster::start(options).map_err(|e| format!("{e:#}")),
        )
    });
    let cluster = result
        .as_ref()
        .map_err(|e| anyhow!("no test cluster: {e}"))?;
    if options.kueue && !started_with.kueue && !cluster.is_external() {
        bail!(
            "this test binary's control plane was started without Kueue: every test of it that \
             needs Kueue must call cluster_with_kueue() (the first caller starts it)"
        );
    }
    Ok(cluster)
}

impl Cluster {
    fn start(options: Options) -> Result<Cluster> {
        match env::var_os(EXTERNAL_KUBECONFIG_ENV) {
            Some(path) if !path.is_empty() => Self::external(PathBuf::from(path)),
            _ => Self::start_own(options),
        }
    }

    fn external(kubeconfig: PathBuf) -> Result<Cluster> {
        if !kubeconfig.is_file() {
            bail!(
                "{EXTERNAL_KUBECONFIG_ENV}={} is not a file",
                kubeconfig.display()
            );
        }
        let scratch = env::temp_dir().join(format!("kelvin-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        // kubectl and helm: KELVIN_TESTBIN if set, else whatever is on PATH.
        let bin_dir = env::var_os("KELVIN_TESTBIN").map(PathBuf::from);
        Ok(Cluster {
            kubeconfig,
            bin_dir,
            dir: None,
            scratch,
            _lifeline: None,
        })
    }

    fn start_own(options: Options) -> Result<Cluster> {
        let dir = env::temp_dir().join(format!("kelvin-e2e-{}", std::process::id()));
        let script = repo_root().join("tests/cluster.sh");
        let started = Instant::now();
        let mut command = Command::new(&script);
        command
            .arg("up")
            .arg("--lifeline")
            // ServiceAccounts' requests go to DIR/audit.log (`Cluster::audit_log`).
            .arg("--audit");
        if options.kueue {
            command.arg("--kueue");
        }
        let mut child = command
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", script.display()))?;
        let lifeline = child
            .stdin
            .take()
            .context("cluster.sh started without a stdin pipe")?;
        // Pass the script's progress (a cold build takes long) straight to the terminal,
        // bypassing the test harness's output capture, and keep it for the error message.
        let stderr = child.stderr.take();
        let tee = thread::spawn(move || {
            let mut kept = String::new();
            if let Some(stderr) = stderr {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    let _ = writeln!(std::io::stderr(), "kelvin-e2e: {line}");
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
            kept
        });
        let out = child
            .wait_with_output()
            .context("waiting for tests/cluster.sh up")?;
        let log = tee.join().unwrap_or_default();
        if !out.status.success() {
            bail!("tests/cluster.sh up failed ({}):\n{log}", out.status);
        }
        let exports = parse_exports(&String::from_utf8_lossy(&out.stdout));
        let kubeconfig = exports
            .get("KUBECONFIG")
            .map(PathBuf::from)
            .with_context(|| format!("cluster.sh up printed no KUBECONFIG:\n{log}"))?;
        let bin_dir = exports.get("KELVIN_TESTBIN").map(PathBuf::from);
        let scratch = dir.join("scratch");
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        let _ = writeln!(
            std::io::stderr(),
            "kelvin-e2e: control plane up in {:.1} s ({})",
            started.elapsed().as_secs_f64(),
            dir.display()
        );
        Ok(Cluster {
            kubeconfig,
            bin_dir,
            dir: Some(dir),
            scratch,
            _lifeline: Some(Mutex::new(lifeline)),
        })
    }

    /// The API server's audit log of this process's own control plane (`cluster.sh up
    /// --audit`: every request a ServiceAccount outside kube-system makes, level Metadata, one
    /// JSON event per line); `None` for an external cluster.
    pub fn audit_log(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join("audit.log"))
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// True when the tests run against a cluster this process did not start
    /// (`KELVIN_E2E_KUBECONFIG`).
    pub fn is_external(&self) -> bool {
        self.dir.is_none()
    }

    /// The directory of the control plane this process started (logs under `logs/`).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// A scratch directory that lives as long as the cluster.
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// Path of a tool (`kubectl`, `helm`, `kube-apiserver`, ...): the cached build if there is
    /// one, else the bare name, found on PATH.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir
            .as_ref()
            .map(|d| d.join(name))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(name))
    }

    /// `kubectl` with this cluster's kubeconfig and a discovery cache of its own (not the
    /// user's `~/.kube/cache`).
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.scratch.join("kube-cache"));
        cmd
    }

    /// `helm` with this cluster's kubeconfig and its own cache/config/data directories, so
    /// tests neither read nor write the user's helm set-up.
    pub fn helm(&self) -> Command {
        let home = self.scratch.join("helm");
        let mut cmd = Command::new(self.bin("helm"));
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"));
        cmd
    }

    /// A client acting as the admin (group `system:masters`). Make one per test: a client
    /// belongs to the tokio runtime it was made in, and each `#[tokio::test]` has its own.
    pub async fn client(&self) -> Result<Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        client_from(kubeconfig).await
    }

    /// A client acting as ServiceAccount `namespace/name` (created if missing), with a
    /// one-hour token from the TokenRequest API, and the path of a kubeconfig for the same
    /// identity (for kubectl). It has only the permissions RBAC gives that ServiceAccount.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(Client, PathBuf)> {
        let admin = self.client().await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(admin, namespace);
        if accounts.get_opt(name).await?.is_none() {
            let sa = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            };
            accounts
                .create(&PostParams::default(), &sa)
                .await
                .with_context(|| format!("creating ServiceAccount {namespace}/{name}"))?;
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let token = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .with_context(|| format!("requesting a token for {namespace}/{name}"))?
            .status
            .map(|s| s.token)
            .context("TokenRequest returned no status")?;

        // The admin kubeconfig with the user swapped for the token. JSON is YAML, so both
        // kubectl and kube read the file.
        let text = std::fs::read_to_string(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        let mut config: serde_json::Value = serde_saphyr::from_str(&text)
            .with_context(|| format!("parsing {}", self.kubeconfig.display()))?;
        let current = config["current-context"]
            .as_str()
            .context("kubeconfig has no current-context")?
            .to_string();
        let cluster_name = config["contexts"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == current.as_str()))
            .and_then(|c| c["context"]["cluster"].as_str())
            .context("kubeconfig's current context names no cluster")?
            .to_string();
        let user = format!("sa-{namespace}-{name}");
        config["users"] = serde_json::json!([{"name": user, "user": {"token": token}}]);
        config["contexts"] = serde_json::json!([{
            "name": user,
            "context": {"cluster": cluster_name, "user": user, "namespace": namespace},
        }]);
        config["current-context"] = serde_json::json!(user);
        let json = serde_json::to_string_pretty(&config)?;
        let path = self.scratch.join(format!("{user}.kubeconfig"));
        std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
        let client = client_from(Kubeconfig::from_yaml(&json)?).await?;
        Ok((client, path))
    }

    /// Creates namespace `name` (labelled [`TEST_LABEL`]) and waits until its `default`
    /// ServiceAccount exists, as pods cannot be created before that.
    pub async fn create_namespace(&self, client: &Client, name: &str) -> Result<()> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some([(TEST_LABEL.to_string(), "true".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
        wait_for(
            &format!("ServiceAccount {name}/default"),
            Duration::from_secs(60),
            || async { Ok(accounts.get_opt("default").await?.map(|_| ())) },
        )
        .await
    }

    /// Deletes namespace `name` (without waiting for it to go).
    pub async fn delete_namespace(&self, client: &Client, name: &str) -> Result<()> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        match namespaces.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting namespace {name}")),
        }
    }

    /// Fault injection on this process's own control plane: `tests/cluster.sh apiserver
    /// stop` (the API server SIGKILLed) or `start` (started again on the same etcd; returns
    /// once `/readyz` answers). Fails on an external cluster.
    pub fn apiserver(&self, action: &str) -> Result<()> {
        self.cluster_sh(&["apiserver", action]).map(drop)
    }

    /// `tests/cluster.sh etcd compact`: one write to etcd, then compaction at that newest
    /// revision, so every watch resumed from an older resourceVersion gets 410 Gone. Returns
    /// the compacted revision.
    pub fn etcd_compact(&self) -> Result<u64> {
        let out = self.cluster_sh(&["etcd", "compact"])?;
        out.trim()
            .parse()
            .with_context(|| format!("cluster.sh etcd compact printed {out:?}"))
    }

    fn cluster_sh(&self, args: &[&str]) -> Result<String> {
        let dir = self
            .dir
            .as_ref()
            .context("fault injection needs the control plane this process started")?;
        crate::run(
            Command::new(repo_root().join("tests/cluster.sh"))
                .args(args)
                .arg("--dir")
                .arg(dir),
        )
    }

    /// Where to look when something failed: the components' logs, or the external kubeconfig.
    pub fn describe(&self) -> String {
        match &self.dir {
            Some(dir) => format!(
                "control plane in {} (logs in {}/logs; set KELVIN_E2E_KEEP=1 to keep them)",
                dir.display(),
                dir.display()
            ),
            None => format!("external cluster {}", self.kubeconfig.display()),
        }
    }
}

async fn client_from(kubeconfig: Kubeconfig) -> Result<Client> {
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("loading kubeconfig")?;
    Client::try_from(config).context("building a Kubernetes client")
}

/// Runs one API request again (up to 5 tries, 200 ms apart) when it failed before an answer
/// came back: the API server closes a keep-alive connection after 90 s idle (Go's
/// `IdleTimeout`), which is also hyper's pool timeout, so a request sent on it as it closes
/// fails with "connection closed before message completed". Answers (`kube::Error::Api`) are
/// returned as they are; callers make their requests idempotent (AlreadyExists/NotFound).
pub async fn retry_unanswered<T, F, Fut>(mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut tries = 1;
    loop {
        match request().await {
            Err(kube::Error::Service(_) | kube::Error::HyperError(_)) if tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            result => return result,
        }
    }
}

/// Polls `check` every 250 ms until it returns `Some`, an error that is not transient, or
/// `timeout` passes. Errors from `check` are retried until the deadline and then reported.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if Instant::now() >= deadline {
            return Err(match last {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reads `export NAME=VALUE` lines as printed by `cluster.sh` (bash `printf %q` quoting).
fn parse_exports(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), unquote(v)))
        .collect()
}

fn unquote(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.to_string();
    }
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exports_with_bash_quoting() {
        let out = "export KUBECONFIG=/tmp/a\\ b/kubeconfig\nexport KELVIN_TESTBIN='/x y'\n\
                   export PATH=/bin:\"$PATH\"\nnoise\n";
        let env = parse_exports(out);
        assert_eq!(env["KUBECONFIG"], "/tmp/a b/kubeconfig");
        assert_eq!(env["KELVIN_TESTBIN"], "/x y");
        assert!(!env.contains_key("noise"));
    }

    #[test]
    fn unique_names_differ_and_are_dns_labels() {
        let a = unique_name("t");
        let b = unique_name("t");
        assert_ne!(a, b);
        assert!(a.len() <= 63);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}

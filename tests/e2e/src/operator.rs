//! The real `kelvin-operator` binary as a child process of a test: its own port for
//! `/metrics` and the probes, its log in a file (shown when a test fails), SIGKILL or SIGTERM
//! on demand, and killed when the test ends however it ends.

use std::{
    fs::File,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::Cluster;

/// One operator process.
pub struct OperatorProcess {
    child: Child,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub address: SocketAddr,
    /// Its stderr.
    pub log: PathBuf,
}

static STARTED: AtomicUsize = AtomicUsize::new(0);

fn free_port() -> Result<SocketAddr> {
    // Bound then released: the operator binds it a moment later (a race only with another
    // process picking the same ephemeral port in between).
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

impl OperatorProcess {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_kelvin-operator")`) against `cluster`
    /// as its admin, with `args` added.
    pub fn start(cluster: &Cluster, binary: &Path, args: &[&str]) -> Result<Self> {
        Self::start_as(cluster, cluster.kubeconfig(), binary, args)
    }

    /// Like [`Self::start`], with the identity of `kubeconfig` (a ServiceAccount's, from
    /// [`Cluster::service_account_client`], to prove the RBAC Kelvin documents is enough).
    pub fn start_as(
        cluster: &Cluster,
        kubeconfig: &Path,
        binary: &Path,
        args: &[&str],
    ) -> Result<Self> {
        let address = free_port()?;
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let log = cluster
            .scratch()
            .join(format!("kelvin-operator-{}-{n}.log", std::process::id()));
        let stderr = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(binary)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kelvin_operator=debug")
            .arg("--http-address")
            .arg(address.to_string())
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            child,
            address,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// GET `path` on the operator's HTTP address: (status code, body).
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.address, Duration::from_secs(2))
            .with_context(|| format!("connecting to the operator on {}", self.address))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("no status line in {response:?}"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// The value of one sample of `/metrics` (`name{labels}` exactly as exported), 0 when
    /// the series does not exist yet.
    pub fn metric(&self, series: &str) -> Result<f64> {
        let (status, body) = self.get("/metrics")?;
        if status != 200 {
            bail!("/metrics answered {status}: {body}");
        }
        Ok(body
            .lines()
            .filter_map(|line| line.rsplit_once(' '))
            .find(|(name, _)| *name == series)
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0.0))
    }

    /// The sum of every sample whose series starts with `prefix` (`kelvin_api_writes_total`
    /// sums writes of every verb and kind).
    pub fn metric_sum(&self, prefix: &str) -> Result<f64> {
        let (_, body) = self.get("/metrics")?;
        Ok(body
            .lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum())
    }

    /// SIGKILL: no chance to finish a write or release the Lease.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill().context("killing kelvin-operator")?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit; its exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("sending SIGTERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.child.id());
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if std::time::Instant::now() > deadline {
                bail!("kelvin-operator did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The control plane must not outlive the process that owns it, even when that process is
//! killed with SIGKILL and runs no cleanup at all. This is the mechanism the harness relies on
//! (see `kelvin_e2e::cluster`), tested with a stand-in owner we can kill.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kelvin_e2e::cluster::EXTERNAL_KUBECONFIG_ENV;
use kelvin_e2e::repo_root;

/// Running, not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn read_pid(path: &Path) -> Result<u32> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .parse()
        .with_context(|| format!("{} holds no pid", path.display()))
}

#[test]
fn control_plane_stops_when_its_owner_is_sigkilled() -> Result<()> {
    if std::env::var_os(EXTERNAL_KUBECONFIG_ENV).is_some() {
        eprintln!("skipped: {EXTERNAL_KUBECONFIG_ENV} is set (no control plane of our own)");
        return Ok(());
    }
    let base = std::env::temp_dir().join(format!("kelvin-e2e-lifeline-{}", std::process::id()));
    let dir = base.join("cluster");
    std::fs::create_dir_all(&base)?;
    let owner_file = base.join("owner.pid");
    let log = std::fs::File::create(base.join("up.log"))?;

    // The owner is `sleep`: its stdout is the write end of the pipe that is the stdin of
    // `cluster.sh up --lifeline`, exactly as the test harness's pipe is.
    let mut shell = Command::new("bash")
        .arg("-c")
        .arg(r#"(echo $BASHPID > "$1"; exec sleep 600) | "$2" up --lifeline --dir "$3""#)
        .arg("owner")
        .arg(&owner_file)
        .arg(repo_root().join("tests/cluster.sh"))
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;

    let ready = wait_until("the control plane", Duration::from_secs(600), || {
        dir.join("ready").exists()
    });
    if let Err(e) = ready {
        let _ = shell.kill();
        let log = std::fs::read_to_string(base.join("up.log")).unwrap_or_default();
        return Err(e.context(log));
    }
    let mut pids = vec![read_pid(&dir.join("supervisor.pid"))?];
    for name in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ] {
        pids.push(read_pid(&dir.join("pids").join(name))?);
    }
    assert!(
        pids.iter().all(|p| alive(*p)),
        "not all components run: {pids:?}"
    );

    let owner = read_pid(&owner_file)?;
    let status = Command::new("kill")
        .args(["-KILL", &owner.to_string()])
        .status()?;
    assert!(status.success(), "kill -KILL {owner} failed");

    wait_until("every component to exit", Duration::from_secs(30), || {
        pids.iter().all(|p| !alive(*p))
    })
    .with_context(|| {
        let left: Vec<_> = pids.iter().filter(|p| alive(**p)).collect();
        format!("still running: {left:?}")
    })?;
    wait_until(
        "the cluster directory to go",
        Duration::from_secs(10),
        || !dir.exists(),
    )?;
    shell.wait()?;
    std::fs::remove_dir_all(&base)?;
    Ok(())
}

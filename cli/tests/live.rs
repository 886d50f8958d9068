//! `kelvin plan` / `apply` / `status` / `zone set` / `destroy` against the real control plane
//! (`kelvin_e2e::cluster()`, kwok nodes of `examples/small`, the real `kelvin-operator`), as a
//! person runs them: the `kelvin` binary, its stdout, stderr and exit code. One scenario, in
//! order (the commands act on one cluster-wide GpuCluster and one operator), with every
//! refusal on the way: no terminal to ask on, no operator, a stale saved plan, a facility's
//! zone state about to be overwritten, an answer other than `yes`.
//!
//! Golden files of the human output: `cli/tests/golden/live-*.txt`
//! (`UPDATE_GOLDEN=1 cargo test -p kelvin --test live` rewrites them).

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail, ensure};
use kelvin_e2e::{
    Cluster, OperatorProcess, SpecNodes, cluster, repo_root, third_party, wait_for,
    workspace_binary,
};
use serde_json::Value;

const KELVIN: &str = env!("CARGO_BIN_EXE_kelvin");

/// One run of `kelvin`.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn command(c: &Cluster, args: &[&str]) -> Command {
    let mut cmd = Command::new(KELVIN);
    cmd.args(args)
        .current_dir(repo_root())
        .env("KUBECONFIG", c.kubeconfig())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

fn kelvin(c: &Cluster, args: &[&str]) -> Result<Run> {
    let out = command(c, args).output().context("running kelvin")?;
    Ok(Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `kelvin ARGS` on a terminal (util-linux `script` gives it a pseudo-terminal), answering
/// `answer` to the prompt.
fn kelvin_on_terminal(c: &Cluster, args: &[&str], answer: &str) -> Result<Run> {
    let line = std::iter::once(KELVIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qefc", &line, "/dev/null"])
        .current_dir(repo_root())
        .env("KUBECONFIG", c.kubeconfig())
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kelvin under script(1)")?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("no stdin")?;
        // The prompt is read after the plan; the pty keeps what is typed ahead.
        stdin.write_all(format!("{answer}\n").as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok(Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn expect(run: &Run, code: i32, needles: &[&str]) -> Result<()> {
    ensure!(
        !run.stderr.contains("panicked"),
        "kelvin panicked:\n{run:?}"
    );
    ensure!(
        run.code == Some(code),
        "expected exit code {code}:\n{run:?}"
    );
    for needle in needles {
        ensure!(
            run.stdout.contains(needle) || run.stderr.contains(needle),
            "expected {needle:?} in the output:\n{run:?}"
        );
    }
    Ok(())
}

/// The API server's URL (random port) as a fixed word, for the golden files.
fn normalized(c: &Cluster, text: &str) -> Result<String> {
    let kubeconfig = std::fs::read_to_string(c.kubeconfig())?;
    let server = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .context("no server in the kubeconfig")?
        .trim_end_matches('/')
        .to_owned();
    Ok(text.replace(&server, "https://API-SERVER"))
}

fn golden(name: &str, actual: &str) -> Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual)?;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    ensure!(
        expected == actual,
        "{} differs; review and run UPDATE_GOLDEN=1 cargo test -p kelvin --test live\n--- actual ---\n{actual}",
        path.display()
    );
    Ok(())
}

fn kubectl_json(c: &Cluster, args: &[&str]) -> Result<Value> {
    let out = kelvin_e2e::run(c.kubectl().args(args).args(["-o", "json"]))?;
    Ok(serde_json::from_str(&out)?)
}

fn exists(c: &Cluster, args: &[&str]) -> Result<bool> {
    let out = kelvin_e2e::process::output(c.kubectl().args(args))?;
    Ok(out.status.success())
}

async fn wait_converged(c: &Cluster) -> Result<()> {
    wait_for(
        "GpuCluster lab to be Ready",
        Duration::from_secs(60),
        || async {
            let gpuc = kubectl_json(c, &["get", "gpuc", "lab"])?;
            let ready = gpuc["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            Ok(ready.then_some(()))
        },
    )
    .await
}

/// `plan -o json` against the cluster has one entry per document, in file order, as offline:
/// a schema-invalid spec and an unreadable file are entries with their errors, not dropped.
fn live_json_keeps_an_entry_per_document(c: &Cluster, spec: &str) -> Result<()> {
    let invalid = c.scratch().join("invalid.yaml");
    std::fs::write(
        &invalid,
        "apiVersion: kelvin.dev/v1alpha1\nkind: GpuCluster\nmetadata: {name: broken}\nspec: {site: {powerBudgetMW: 1, pue: 9}}\n",
    )?;
    let unreadable = c.scratch().join("unreadable.yaml");
    std::fs::write(&unreadable, "a: [unclosed\n")?;
    let (invalid, unreadable) = (invalid.to_string_lossy(), unreadable.to_string_lossy());
    let args = ["-f", &invalid, "-f", spec, "-f", &unreadable, "-o", "json"];
    let live = kelvin(c, &[&["plan"][..], &args].concat())?;
    expect(&live, 1, &[])?;
    let offline = kelvin(c, &[&["plan", "--offline"][..], &args].concat())?;
    let (live, offline): (Value, Value) = (
        serde_json::from_str(&live.stdout).with_context(|| format!("{live:?}"))?,
        serde_json::from_str(&offline.stdout).with_context(|| format!("{offline:?}"))?,
    );
    let shape = |plans: &Value| -> Vec<(Value, Value)> {
        plans
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (p["cluster"].clone(), p["valid"].clone()))
            .collect()
    };
    ensure!(
        shape(&live) == shape(&offline) && shape(&live).len() == 3,
        "live and offline JSON plans differ in shape:\nlive {:?}\noffline {:?}",
        shape(&live),
        shape(&offline)
    );
    ensure!(
        live[0]["cluster"] == "broken" && live[1]["valid"] == true,
        "{live}"
    );
    for index in [0, 2] {
        let mut entry = live[index].clone();
        ensure!(
            entry.as_object_mut().and_then(|e| e.remove("live")) == Some(Value::Null),
            "entry {index} of a document that did not load has a live section: {entry}"
        );
        ensure!(
            entry == offline[index] && !entry["errors"].as_array().is_none_or(Vec::is_empty),
            "entry {index}: live {entry}\noffline {}",
            offline[index]
        );
    }
    ensure!(live[1]["live"]["crd"] == "add", "{}", live[1]);
    Ok(())
}

#[tokio::test]
async fn plan_apply_status_zone_and_destroy_against_a_live_cluster() -> Result<()> {
    let started = std::time::Instant::now();
    let step = |what: &str| eprintln!("live: {:>5.1} s {what}", started.elapsed().as_secs_f64());
    let c = cluster()?;
    step("control plane up");
    let client = c.client().await?;
    let spec = "examples/small/cluster.yaml";
    let nodes = SpecNodes::from_file(&repo_root().join(spec), None)?;
    nodes.create(&client).await?;
    nodes.wait_ready(&client, Duration::from_secs(30)).await?;
    third_party::install_third_party_crds(c, &client).await?;
    let operator_binary = workspace_binary("kelvin-operator", "kelvin-operator")?;
    let scratch = c.scratch();
    let saved = scratch.join("lab.plan");
    let saved_arg = saved.to_string_lossy().into_owned();

    step("nodes, CRDs and operator binary ready");
    // A first plan: Kelvin's API and the GpuCluster are new, every node changes.
    let run = kelvin(c, &["plan", "-f", spec, "--detailed-exitcode"])?;
    expect(
        &run,
        2,
        &[
            "+ CustomResourceDefinition/gpuclusters.kelvin.dev",
            "Plan: 23 to add, 8 to change, 0 to destroy.",
        ],
    )?;
    // The snapshot waits for the node lifecycle controller's not-ready taint to be gone
    // (kwok marks the nodes Ready a moment after they are created).
    let run = wait_for(
        "a plan of untainted nodes",
        Duration::from_secs(30),
        || async {
            let run = kelvin(c, &["plan", "-f", spec])?;
            Ok((!run.stdout.contains("node.kubernetes.io/not-ready")).then_some(run))
        },
    )
    .await?;
    golden("live-plan-new.txt", &normalized(c, &run.stdout)?)?;
    let json: Value =
        serde_json::from_str(&kelvin(c, &["plan", "-f", spec, "-o", "json"])?.stdout)?;
    ensure!(
        json["live"]["gpuCluster"]["action"] == "add",
        "{}",
        json["live"]
    );
    ensure!(json["live"]["crd"] == "add", "{}", json["live"]);
    ensure!(json["live"]["nodes"] == 8, "{}", json["live"]);
    ensure!(json["summary"]["add"] == 23, "{}", json["summary"]);
    ensure!(
        json["live"]["blastRadius"]["unschedulableNodes"] == 4,
        "{}",
        json["live"]
    );
    live_json_keeps_an_entry_per_document(c, spec)?;

    step("first plans");
    // Refusals before anything is written: no terminal to ask on; no operator to act.
    let run = kelvin(c, &["apply", "-f", spec])?;
    expect(
        &run,
        1,
        &[
            "cannot ask for approval: standard input is not a terminal",
            "--auto-approve",
        ],
    )?;
    let run = kelvin(c, &["apply", "-f", spec, "--auto-approve"])?;
    expect(
        &run,
        1,
        &["no Kelvin operator is running", "helm install kelvin"],
    )?;
    ensure!(
        !exists(c, &["get", "crd", "gpuclusters.kelvin.dev"])?,
        "a refused apply installed the CRD"
    );

    step("refusals");
    // A saved plan goes stale when a node changes under it.
    let run = kelvin(c, &["plan", "-f", spec, "--out", &saved_arg])?;
    expect(&run, 0, &["Saved the plan to"])?;
    let mut operator = OperatorProcess::start(c, &operator_binary, &[])?;
    kelvin_e2e::run(
        c.kubectl()
            .args(["label", "node", "a100-mig-00001", "example.com/moved=1"]),
    )?;
    let run = kelvin(c, &["apply", &saved_arg])?;
    expect(
        &run,
        1,
        &[
            "is stale: the cluster changed since",
            "1 node changed: a100-mig-00001",
            "plan again",
        ],
    )?;
    ensure!(
        !exists(c, &["get", "crd", "gpuclusters.kelvin.dev"])?,
        "a stale plan was applied"
    );

    step("stale plan");
    // A fresh saved plan applies without a prompt and waits for the operator (plain lines
    // without a terminal).
    wait_for("the operator's Lease", Duration::from_secs(30), || async {
        Ok(exists(
            c,
            &[
                "get",
                "lease",
                "-A",
                "--field-selector",
                "metadata.name=kelvin-operator",
            ],
        )?
        .then_some(()))
    })
    .await?;
    expect(
        &kelvin(c, &["plan", "-f", spec, "--out", &saved_arg])?,
        0,
        &[],
    )?;
    let run = kelvin(c, &["apply", &saved_arg, "--timeout", "90s"])?;
    expect(
        &run,
        0,
        &[
            "CustomResourceDefinition/gpuclusters.kelvin.dev: installed and Established.",
            "GpuCluster/lab: created (generation 1).",
            "lab: a100-mig: 4/4 nodes labelled",
            "Apply complete: GpuCluster lab is Ready",
        ],
    )
    .with_context(|| operator.log_tail(30))?;
    let labelled = kubectl_json(c, &["get", "nodes", "-l", "kelvin.dev/pool"])?;
    ensure!(
        labelled["items"].as_array().map(Vec::len) == Some(8),
        "not every node is labelled"
    );

    step("applied and converged");
    // Converged: nothing to do.
    let run = kelvin(c, &["plan", "-f", spec, "--detailed-exitcode"])?;
    expect(
        &run,
        0,
        &[
            "No changes. The cluster matches the spec.",
            "Plan: 0 to add, 0 to change, 0 to destroy.",
        ],
    )?;
    let run = kelvin(c, &["apply", "-f", spec])?;
    expect(&run, 1, &["cannot ask for approval"])?;

    // Status, for people and machines.
    let run = kelvin(c, &["status", "lab"])?;
    expect(&run, 0, &["GpuCluster lab (generation 1): Ready=True"])?;
    golden("live-status.txt", &run.stdout)?;
    let status: Value = serde_json::from_str(&kelvin(c, &["status", "lab", "-o", "json"])?.stdout)?;
    ensure!(status["status"]["observedGeneration"] == 1, "{status}");
    ensure!(
        status["status"]["pools"][0]["labelledNodes"] == 4,
        "{status}"
    );
    expect(
        &kelvin(c, &["status", "-o", "yaml"])?,
        0,
        &["observedGeneration: 1"],
    )?;
    expect(
        &kelvin(c, &["status", "nope"])?,
        1,
        &["GpuCluster nope not found", "there are: lab"],
    )?;

    step("status");
    // Drift: someone edits a quota Kelvin owns while no operator runs to put it back.
    let code = operator.terminate(Duration::from_secs(10))?;
    ensure!(code.success(), "the operator exited {code}");
    kelvin_e2e::run(c.kubectl().args([
        "-n",
        "research",
        "patch",
        "resourcequota",
        "kelvin-gpu-quota",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"hard":{"requests.nvidia.com/gpu":"50k"}}}"#,
    ]))?;
    let run = kelvin(c, &["plan", "-f", spec, "--detailed-exitcode"])?;
    expect(&run, 2, &["Drift (changed outside Kelvin"])?;
    golden("live-plan-drift.txt", &normalized(c, &run.stdout)?)?;
    let mut operator = OperatorProcess::start(c, &operator_binary, &[])?;

    step("drift");
    // A facility reports a CDU failure: only that zone's state, as kelvin-facility.
    let run = kelvin(
        c,
        &[
            "zone",
            "set",
            "lab-row-1",
            "--state",
            "Degraded",
            "--auto-approve",
        ],
    )?;
    expect(
        &run,
        1,
        &[
            "degradedCapacityKW is required when state is Degraded",
            "--capacity-kw",
        ],
    )?;
    // A plan saved before the facility's report goes stale with it: the spec's generation moved.
    expect(
        &kelvin(c, &["plan", "-f", spec, "--out", &saved_arg])?,
        0,
        &["Saved the plan to"],
    )?;
    let run = kelvin(
        c,
        &[
            "zone",
            "set",
            "lab-row-1",
            "--state",
            "Degraded",
            "--capacity-kw",
            "30",
            "--auto-approve",
        ],
    )?;
    expect(
        &run,
        0,
        &[
            "+label kelvin.dev/gpu-power-cap-watts",
            "is reported Degraded",
        ],
    )?;
    let run = kelvin(c, &["apply", &saved_arg])?;
    expect(
        &run,
        1,
        &[
            "is stale: the cluster changed since",
            "the GpuCluster's spec changed since: generation",
            "plan again",
        ],
    )?;
    let gpuc = kubectl_json(c, &["get", "gpuc", "lab", "--show-managed-fields"])?;
    ensure!(
        gpuc["spec"]["coolingZones"][0]["state"] == "Degraded",
        "{}",
        gpuc["spec"]
    );
    let facility = gpuc["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["manager"] == "kelvin-facility")
        .context("no kelvin-facility field manager")?;
    let owned = facility["fieldsV1"].to_string();
    ensure!(
        owned.contains("f:state")
            && owned.contains("f:degradedCapacityKW")
            && !owned.contains("f:capacityKW\""),
        "kelvin-facility owns more or less than the zone's state: {owned}"
    );
    // A spec file that says nothing of the state leaves the facility's word alone...
    let run = kelvin(c, &["plan", "-f", spec, "-o", "json"])?;
    let plan: Value = serde_json::from_str(&run.stdout).with_context(|| format!("{run:?}"))?;
    ensure!(
        plan["live"]["gpuCluster"]["action"] == "none",
        "{}",
        plan["live"]
    );
    // ... one that says Normal would overwrite it: refused, naming the zone and the manager.
    let normal = scratch.join("lab-normal.yaml");
    let text = std::fs::read_to_string(repo_root().join(spec))?.replace(
        "    cooling: Air\n",
        "    cooling: Air\n    state: Normal\n",
    );
    ensure!(
        text.contains("state: Normal"),
        "the copy of the spec says no state"
    );
    std::fs::write(&normal, text)?;
    let normal = normal.to_string_lossy().into_owned();
    let run = kelvin(c, &["apply", "-f", &normal, "--auto-approve"])?;
    expect(
        &run,
        1,
        &[
            "would overwrite what kelvin-facility reported",
            "lab-row-1",
            "nothing was applied",
        ],
    )?;
    let gpuc = kubectl_json(c, &["get", "gpuc", "lab"])?;
    ensure!(
        gpuc["spec"]["coolingZones"][0]["state"] == "Degraded",
        "the refused apply wrote the state"
    );
    let run = kelvin(
        c,
        &[
            "zone",
            "set",
            "lab-row-1",
            "--state",
            "Normal",
            "--auto-approve",
        ],
    )?;
    expect(&run, 0, &["-label kelvin.dev/gpu-power-cap-watts"])?;
    wait_converged(c)
        .await
        .with_context(|| operator.log_tail(30))?;

    step("zone set");
    // Destroy: asked on a terminal, only `yes` approves.
    let run = kelvin(c, &["destroy", "lab"])?;
    expect(&run, 1, &["cannot ask for approval"])?;
    let run = kelvin_on_terminal(c, &["destroy", "lab"], "y")?;
    expect(
        &run,
        1,
        &[
            "Do you really want to destroy GpuCluster lab?",
            "Only 'yes' will be accepted to confirm.",
            "Destroy cancelled.",
        ],
    )?;
    ensure!(
        exists(c, &["get", "gpuc", "lab"])?,
        "a cancelled destroy deleted the GpuCluster"
    );
    let run = kelvin_on_terminal(c, &["destroy", "lab"], "yes")?;
    expect(
        &run,
        0,
        &[
            "- DaemonSet/kelvin-system/kelvin-device-plugin-a100-mig",
            "Namespace/research",
            "Destroy complete",
        ],
    )
    .with_context(|| operator.log_tail(30))?;
    ensure!(
        !exists(c, &["get", "gpuc", "lab"])?,
        "the GpuCluster is still there"
    );
    ensure!(
        exists(c, &["get", "namespace", "research"])?,
        "a tenant namespace was deleted"
    );
    let left = kubectl_json(c, &["get", "nodes", "-l", "kelvin.dev/pool"])?;
    ensure!(
        left["items"].as_array().map(Vec::len) == Some(0),
        "nodes still carry Kelvin's pool label"
    );
    let run = kelvin(c, &["destroy", "lab", "--auto-approve"])?;
    expect(&run, 1, &["GpuCluster lab not found", "nothing to destroy"])?;

    let code = operator.terminate(Duration::from_secs(10))?;
    if !code.success() {
        bail!("the operator exited {code}:\n{}", operator.log_tail(30));
    }
    nodes.delete(&client).await?;
    step("destroyed");
    Ok(())
}

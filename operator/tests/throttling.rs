//! The API server sheds the operator's load (issue 8 §2): API Priority and Fairness puts the
//! operator's ServiceAccount's node requests in a priority level of its own with the smallest
//! share there is and no queue, so most of its concurrent node writes are answered 429 at once.
//! The operator must back off and converge anyway, without an error storm: every 429 it got
//! and every write it sent are read from the API server's audit log, not from the operator.
//!
//! 240 kwok nodes, two pools (labels only: one write per node), `--write-concurrency 32`
//! against the 3 or so seats the priority level gets (600 seats shared by shares: 1 of ~246).
//!
//! A file of its own: its FlowSchema would throttle other tests' operators.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test: a failure is the report

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{
    Baseline, Operator,
    audit::{calls_of, service_account_user},
    baselines, check_exact, grant_access_rules, kubectl_apply, list_nodes, plan_live,
    wait_converged, wait_nodes_settled, write_spec,
};
use kelvin_e2e::{
    GpuNodes, cluster,
    crd::{gpucluster_crd, install_crd},
    run,
};

const NODES: usize = 240;

const SPEC: &str = r#"apiVersion: kelvin.dev/v1alpha1
kind: GpuCluster
metadata:
  name: throttled
spec:
  site: {powerBudgetMW: 8, pue: 1.2}
  coolingZones:
  - name: hall-a
    cooling: Liquid
    capacityKW: 3000
    nodeSelector: {matchLabels: {kelvin.dev/hall: a}}
  fabrics:
  - name: ib
    type: InfiniBand
    linkGbps: 400
    railsPerNode: 8
    switchRadix: 64
    nodesPerLeaf: 32
    nvlinkDomainSize: 8
  gpuPools:
  - name: train
    nodeSelector: {matchLabels: {example.com/role: train}}
    expectedNodes: 120
    accelerator: {vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}
    hostPowerWatts: 4600
    fabric: ib
    labels: {example.com/purpose: training}
  - name: infer
    nodeSelector: {matchLabels: {example.com/role: infer}}
    expectedNodes: 120
    accelerator: {vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}
    hostPowerWatts: 4600
    fabric: ib
    labels: {example.com/purpose: inference}
"#;

/// A priority level with one nominal share, nothing to lend and no queue (Reject), and a
/// FlowSchema sending the operator's node requests there. Its Lease and its other calls stay
/// in the default schemas: leader election is not what is throttled here.
fn flow_control(user_namespace: &str, user_name: &str) -> String {
    format!(
        r#"apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {{name: kelvin-e2e-tiny}}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    limitResponse: {{type: Reject}}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {{name: kelvin-e2e-tiny}}
spec:
  priorityLevelConfiguration: {{name: kelvin-e2e-tiny}}
  matchingPrecedence: 500
  distinguisherMethod: {{type: ByUser}}
  rules:
  - subjects:
    - kind: ServiceAccount
      serviceAccount: {{namespace: {user_namespace}, name: {user_name}}}
    resourceRules:
    - verbs: ["*"]
      apiGroups: [""]
      resources: [nodes]
      clusterScope: true
"#
    )
}

#[tokio::test]
async fn a_throttled_operator_backs_off_and_converges_without_an_error_storm() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let (crd, _) = gpucluster_crd()?;
    install_crd(&client, &crd).await?;
    for (prefix, role) in [("tt", "train"), ("ti", "infer")] {
        let set = GpuNodes::new(prefix, NODES / 2).label("example.com/role", role);
        set.create(&client).await?;
        set.wait_ready(&client, Duration::from_secs(60))
            .await
            .with_context(|| c.describe())?;
    }
    let before: std::collections::BTreeMap<String, Baseline> =
        baselines(&wait_nodes_settled(&client, Duration::from_secs(60)).await?);

    let (_, kubeconfig) = c
        .service_account_client("default", "kelvin-operator")
        .await?;
    grant_access_rules(&client, "default", "kelvin-operator").await?;
    let user = service_account_user("default", "kelvin-operator");
    let flow = write_spec(
        c,
        "flow-control.yaml",
        &flow_control("default", "kelvin-operator"),
    )?;
    run(c
        .kubectl()
        .args(["apply", "--server-side", "-f"])
        .arg(&flow))?;

    let mut args = common::LEASE.to_vec();
    args.extend(["--write-concurrency", "32", "--kube-api-qps", "0"]);
    let mut operator = Operator::start_with(c, "throttled", &kubeconfig, &args)?;
    let spec = write_spec(c, "throttled.yaml", SPEC)?;
    let started = Instant::now();
    kubectl_apply(c, &spec)?;
    wait_converged(c, &client, "throttled", &operator, Duration::from_secs(180)).await?;
    let took = started.elapsed();
    operator.check_running()?;
    let (_, live) = plan_live(&client, "throttled").await?;
    ensure!(live.rollout.writes.is_empty(), "{:?}", live.rollout.writes);
    check_exact(&list_nodes(&client).await?, &before, &live)?;

    // From the audit log: the API server did throttle, and the operator did not storm it.
    let log = c.audit_log().context("this test reads the audit log")?;
    let calls = calls_of(&log, &user)?;
    let node_writes: Vec<_> = calls
        .iter()
        .filter(|call| call.resource == "nodes" && call.verb == "patch")
        .collect();
    let throttled = node_writes.iter().filter(|call| call.code == 429).count();
    let written = node_writes.iter().filter(|call| call.code == 200).count();
    let refused = calls
        .iter()
        .filter(|call| call.code >= 400 && call.code != 429 && call.code != 404)
        .count();
    // `+ 0.0`: an empty sum is -0.0.
    let reconcile_errors = operator.metric_sum("kelvin_reconcile_errors_total")? + 0.0;
    let reported = operator.metric(r#"kelvin_api_throttled_total{verb="apply",kind="Node"}"#)?;
    eprintln!(
        "throttling: converged in {took:?}: {written} node writes answered 200, {throttled} answered 429 \
         ({:.1} per node), {reconcile_errors} failed reconciles, the operator counted {reported} of its node applies throttled",
        throttled as f64 / NODES as f64
    );
    ensure!(
        throttled > 0,
        "the API server never throttled the operator: the test proves nothing"
    );
    ensure!(
        written == NODES,
        "{written} node writes succeeded, expected one per node ({NODES})"
    );
    // Back-off, not a storm: a throttled write waits and is tried again a few times at most,
    // not hammered; the reconcile itself rarely fails for it.
    ensure!(
        throttled <= 4 * NODES,
        "{throttled} writes answered 429 for {NODES} nodes: the operator hammered the API server"
    );
    ensure!(
        reconcile_errors <= 2.0,
        "{reconcile_errors} reconciles failed: throttling became errors"
    );
    ensure!(
        refused == 0,
        "requests refused for reasons other than throttling: {refused}"
    );
    ensure!(
        reported == throttled as f64,
        "the operator's kelvin_api_throttled_total for node applies ({reported}) differs from the audit log's {throttled}"
    );
    Ok(())
}

//! The Helm chart (`charts/kelvin`) on the real control plane: lint, values schema, a
//! server-side dry-run of everything it renders, install / upgrade / uninstall, and its RBAC
//! proven both sufficient and minimal.
//!
//! RBAC: kwok plays the chart's pods without running them, so the real `kelvin-operator`
//! binary runs here as a child process with a TokenRequest token of the chart's
//! ServiceAccount, through a whole scenario (converge with Kueue's API, a selector change with
//! a tenant removed, a switch to Volcano and a zone in maintenance, deletion clean-up). The
//! API server's audit log (`tests/cluster.sh up --audit`) records every call that identity
//! made: none may be refused, and every verb the chart grants must be among them, but for the
//! three in [`GRANTED_FOR_PATHS_THE_SCENARIO_CANNOT_FORCE`] (paths that depend on timing or
//! on the API server's version), each with the code path it is for. So a verb nobody uses fails the test, and so does a verb
//! that is used but not granted.
//!
//! A file of its own: its control plane holds the GpuCluster `lab` and its nodes alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failure is the report

mod common;

use std::{collections::BTreeSet, path::PathBuf, process::Stdio, time::Duration};

use anyhow::{Context, Result, bail};
use common::audit::{Call, calls_of};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Node, Pod, ServiceAccount},
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kelvin_core::{constants::POOL_LABEL, ownership::access_rules};
use kelvin_crds::v1alpha1::GpuCluster;
use kelvin_e2e::{
    Cluster, GpuNodes, OperatorProcess, SpecNodes, cluster,
    crd::{install_crd, read_crd, read_yaml_documents},
    process::output,
    repo_root, run,
    third_party::install_third_party_crds,
    unique_name, wait_for,
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

fn chart() -> PathBuf {
    repo_root().join("charts/kelvin")
}

/// The Kubernetes version `helm template` renders for offline (the control plane's).
const KUBE_VERSION: &str = "1.36.3";

/// Verbs the chart grants that the scenario cannot make the operator use on demand (it may or
/// may not, depending on timing), each with the code that uses it. Only these may go unused;
/// the test fails if one of them is no longer granted.
const GRANTED_FOR_PATHS_THE_SCENARIO_CANNOT_FORCE: &[(&str, &str, &str, &str)] = &[
    (
        "",
        "nodes",
        "get",
        "operator/src/apply.rs write_node: a taint write answered 409 Conflict (the node changed \
         between Kelvin's label apply and its taint patch) reads the node again",
    ),
    (
        "",
        "nodes",
        "list",
        "operator/src/controller.rs Context::nodes: the node watch lags Kelvin's own writes by more \
         than 10 s (or is listing again), so the nodes are listed; and operator/src/node_cache.rs: \
         an API server without streaming lists (WatchList) is listed in pages",
    ),
    (
        "events.k8s.io",
        "events",
        "patch",
        "kube-runtime's Recorder::publish: an Event equal to one sent before for the same \
         object version is sent again as a patch of its series",
    ),
];

// --- the chart's files: version and RBAC ---------------------------------------------------

#[test]
fn the_charts_version_and_app_version_are_the_workspace_version() {
    let chart = read_yaml_documents(&chart().join("Chart.yaml"))
        .unwrap()
        .remove(0);
    let workspace = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["version"], workspace, "Chart.yaml version");
    assert_eq!(chart["appVersion"], workspace, "Chart.yaml appVersion");
}

/// Paths of `values` missing from `readme`'s table: a value is documented when its whole path
/// is (`` `resources` ``), else each of its keys must be.
fn undocumented(values: &Value, path: &str, readme: &str, out: &mut Vec<String>) {
    if !path.is_empty() && readme.contains(&format!("| `{path}` |")) {
        return;
    }
    match values.as_object() {
        Some(map) if !map.is_empty() => {
            for (key, value) in map {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                undocumented(value, &child, readme, out);
            }
        }
        _ => out.push(path.to_owned()),
    }
}

#[test]
fn the_charts_readme_documents_every_value() {
    let values = read_yaml_documents(&chart().join("values.yaml"))
        .unwrap()
        .remove(0);
    let readme = std::fs::read_to_string(chart().join("README.md")).unwrap();
    let mut missing = Vec::new();
    undocumented(&values, "", &readme, &mut missing);
    assert!(
        missing.is_empty(),
        "charts/kelvin/README.md has no row for {missing:?}"
    );
}

const BEGIN: &str = "# access-rules:begin";
const END: &str = "# access-rules:end";

/// Whether a rule is granted in the release namespace only (role.yaml), not cluster-wide.
fn is_namespaced_rule(group: &str, resource: &str) -> bool {
    group == "coordination.k8s.io" && resource == "leases"
}

fn rules_yaml(namespaced: bool) -> String {
    let mut out = String::new();
    for rule in access_rules() {
        if is_namespaced_rule(rule.group, &rule.resource) != namespaced {
            continue;
        }
        out.push_str(&format!(
            "  # {}\n  - apiGroups: [\"{}\"]\n    resources: [\"{}\"]\n    verbs: [{}]\n",
            rule.why,
            rule.group,
            rule.resource,
            rule.verbs
                .iter()
                .map(|v| format!("\"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

#[test]
fn the_charts_cluster_role_and_role_are_the_access_rules() {
    for (file, namespaced) in [
        ("templates/clusterrole.yaml", false),
        ("templates/role.yaml", true),
    ] {
        let path = chart().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let begin = text.find(BEGIN).expect("the access-rules:begin marker");
        let body_start = begin + text[begin..].find('\n').unwrap() + 1;
        let end = text.find(END).expect("the access-rules:end marker");
        let wanted = rules_yaml(namespaced);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(
                &path,
                format!("{}{wanted}{}", &text[..body_start], &text[end..]),
            )
            .unwrap();
            continue;
        }
        assert_eq!(
            &text[body_start..end],
            wanted,
            "{file} differs from access_rules(): UPDATE_GOLDEN=1 cargo test -p kelvin-operator --test helm"
        );
    }
}

// --- helm, kubectl -------------------------------------------------------------------------

/// `helm template` of the chart with `args` added (values files, --set), offline.
fn template(c: &Cluster, namespace: &str, args: &[&str]) -> Result<String> {
    run(c
        .helm()
        .args(["template", "kelvin"])
        .arg(chart())
        .args(["--namespace", namespace, "--kube-version", KUBE_VERSION])
        .args(args))
}

/// The rendered documents (multi-document YAML), as JSON values.
fn documents(c: &Cluster, yaml: &str) -> Result<Vec<Value>> {
    let path = c
        .scratch()
        .join(format!("{}.yaml", unique_name("rendered")));
    std::fs::write(&path, yaml)?;
    read_yaml_documents(&path)
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or("?"),
                d["metadata"]["name"]
            )
        })
        .collect()
}

/// A values file in the scratch directory.
fn values_file(c: &Cluster, name: &str, values: &Value) -> Result<PathBuf> {
    let path = c
        .scratch()
        .join(format!("{}-{name}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_string_pretty(values)?)?;
    Ok(path)
}

/// The spec of `examples/small/cluster.yaml`, as values take it.
fn small_spec() -> Result<Value> {
    let docs = read_yaml_documents(&repo_root().join("examples/small/cluster.yaml"))?;
    Ok(docs[0]["spec"].clone())
}

/// `kubectl apply --server-side --dry-run=server` of `yaml`: (success, stdout + stderr).
fn server_dry_run(c: &Cluster, yaml: &str) -> Result<(bool, String)> {
    use std::io::Write;
    let mut child = c
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=helm-dry-run",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("kubectl's stdin")?
        .write_all(yaml.as_bytes())?;
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// A namespace whose Pod Security admission enforces and warns at `level`.
async fn namespace_with_pod_security(
    c: &Cluster,
    client: &kube::Client,
    prefix: &str,
    level: &str,
) -> Result<String> {
    let name = unique_name(prefix);
    c.create_namespace(client, &name).await?;
    let patch = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/warn": level,
    }}});
    Api::<Namespace>::all(client.clone())
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(name)
}

// --- lint and schema -----------------------------------------------------------------------

#[test]
fn helm_lint_is_clean_and_the_schema_refuses_bad_values_by_name() -> Result<()> {
    let c = cluster()?;
    let lint = output(c.helm().args(["lint", "--strict"]).arg(chart()))?;
    let text =
        String::from_utf8_lossy(&lint.stdout).to_string() + &String::from_utf8_lossy(&lint.stderr);
    assert!(lint.status.success(), "helm lint --strict failed:\n{text}");
    assert!(text.contains("0 chart(s) failed"), "{text}");
    assert!(
        !text.contains("[WARNING]") && !text.contains("[ERROR]"),
        "helm lint has findings:\n{text}"
    );

    // Each bad value is refused before anything renders, naming what is wrong.
    let refused: &[(&[&str], &str)] = &[
        (&["--set", "replicaCount=two"], "replicaCount"),
        (&["--set", "logFormat=xml"], "logFormat"),
        (&["--set", "replicas=2"], "replicas"),
        (
            &["--set", "leaderElection.leaseDuration=15"],
            "leaseDuration",
        ),
        (&["--set", "kubeApi.burst=0"], "burst"),
        (&["--set", "image.digest=latest"], "digest"),
        (
            &[
                "--set",
                "gpuCluster.enabled=true",
                "--set",
                "gpuCluster.name=lab",
            ],
            "gpuCluster.enabled needs gpuCluster.spec",
        ),
        (
            &["--set", "metrics.serviceMonitor.enabled=true"],
            "needs the monitoring.coreos.com/v1 ServiceMonitor API",
        ),
        (
            &["--set", "serviceAccount.create=false"],
            "serviceAccount.name is required",
        ),
    ];
    for (args, wanted) in refused {
        let out = output(
            c.helm()
                .args(["template", "kelvin"])
                .arg(chart())
                .args(["--kube-version", KUBE_VERSION])
                .args(*args),
        )?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
    }
    Ok(())
}

// --- everything rendered is accepted -------------------------------------------------------

#[tokio::test]
async fn every_object_the_chart_renders_is_accepted_by_a_server_side_dry_run() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let crd = read_crd(&chart().join("crds/gpuclusters.kelvin.dev.yaml"))?;
    install_crd(&client, &crd).await?;

    // The defaults, in a namespace enforcing the restricted Pod Security Standard: the API
    // server warns (and refuses pods) for anything the operator's pods do beyond it.
    let restricted = namespace_with_pod_security(c, &client, "helm-dry", "restricted").await?;
    let defaults = template(c, &restricted, &[])?;
    let docs = documents(c, &defaults)?;
    assert_eq!(
        kinds(&docs),
        [
            "PodDisruptionBudget/\"kelvin\"",
            "ServiceAccount/\"kelvin\"",
            "ClusterRole/\"kelvin\"",
            "ClusterRoleBinding/\"kelvin\"",
            "Role/\"kelvin-leader-election\"",
            "RoleBinding/\"kelvin-leader-election\"",
            "Service/\"kelvin-metrics\"",
            "Deployment/\"kelvin\"",
        ]
    );
    let (ok, text) = server_dry_run(c, &defaults)?;
    assert!(ok, "{text}");
    assert!(!text.to_lowercase().contains("warning"), "{text}");
    assert_eq!(
        text.matches("serverside-applied (server dry run)").count(),
        8,
        "{text}"
    );

    // Everything on: the power agent (baseline: it runs as root), a GpuCluster from values.
    let baseline = namespace_with_pod_security(c, &client, "helm-all", "baseline").await?;
    let values = values_file(
        c,
        "all",
        &json!({
            "replicaCount": 3,
            "powerAgent": {"enabled": true},
            "gpuCluster": {"enabled": true, "name": unique_name("dry"), "spec": small_spec()?},
            "extraArgs": ["--leader-elect-name=kelvin-b"],
            "extraEnv": [{"name": "NO_COLOR", "value": "1"}],
            "podDisruptionBudget": {"enabled": true, "maxUnavailable": "50%"},
        }),
    )?;
    let everything = template(c, &baseline, &["--values", values.to_str().unwrap()])?;
    let docs = documents(c, &everything)?;
    let names = kinds(&docs);
    for kind in ["DaemonSet/", "GpuCluster/"] {
        assert!(names.iter().any(|n| n.starts_with(kind)), "{names:?}");
    }
    let (ok, text) = server_dry_run(c, &everything)?;
    assert!(ok, "{text}");
    assert!(!text.to_lowercase().contains("warning"), "{text}");
    assert_eq!(
        text.matches("serverside-applied (server dry run)").count(),
        docs.len(),
        "{text}"
    );
    let gpu_cluster = docs.iter().find(|d| d["kind"] == "GpuCluster").unwrap();
    assert_eq!(
        gpu_cluster["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );

    // The ServiceMonitor (Prometheus Operator's CRDs are not installed here): it selects the
    // metrics Service by its labels and scrapes its named port.
    let with_monitor = template(
        c,
        &restricted,
        &[
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--api-versions",
            "monitoring.coreos.com/v1/ServiceMonitor",
        ],
    )?;
    let docs = documents(c, &with_monitor)?;
    let monitor = docs.iter().find(|d| d["kind"] == "ServiceMonitor").unwrap();
    let service = docs.iter().find(|d| d["kind"] == "Service").unwrap();
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][key], value, "{key}");
    }
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
    c.delete_namespace(&client, &restricted).await?;
    c.delete_namespace(&client, &baseline).await
}

// --- install, upgrade, uninstall; RBAC proven ----------------------------------------------

/// Waits until `lab` converged at its current generation with its scheduling objects written.
async fn wait_converged(
    c: &Cluster,
    clusters: &Api<GpuCluster>,
    operator: &OperatorProcess,
    what: &str,
) -> Result<()> {
    wait_for(what, Duration::from_secs(90), || async {
        let lab = clusters.get("lab").await?;
        let status = lab.status.clone().unwrap_or_default();
        let is = |type_: &str, value: &str, reason: Option<&str>| {
            status.conditions.iter().any(|c| {
                c.type_ == type_ && c.status == value && reason.is_none_or(|r| c.reason == r)
            })
        };
        Ok((status.observed_generation == lab.metadata.generation
            && is("Progressing", "False", Some("Converged"))
            && is("SchedulingPolicies", "True", None))
        .then_some(()))
    })
    .await
    .with_context(|| {
        let conditions =
            run(c
                .kubectl()
                .args(["get", "gpuc", "lab", "-o", "jsonpath={.status.conditions}"]));
        format!(
            "{}\nconditions: {conditions:?}\noperator log:\n{}",
            c.describe(),
            operator.log_tail(40)
        )
    })
}

/// Names of Kelvin's objects of `resource` (`kubectl get` form) for GpuCluster lab.
fn kelvins(c: &Cluster, resource: &str) -> Result<Vec<String>> {
    let out = run(c.kubectl().args([
        "get",
        resource,
        "-A",
        "-l",
        "kelvin.dev/cluster=lab",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    ]))?;
    Ok(out.lines().map(str::to_owned).collect())
}

/// What a failed `helm --wait` needs to be understood: the namespace's pods and Events.
fn pods_and_events(c: &Cluster, namespace: &str) -> String {
    let pods = run(c
        .kubectl()
        .args(["get", "pods", "-o", "wide", "-n", namespace]));
    let events = run(c.kubectl().args(["get", "events", "-n", namespace]));
    format!("pods: {pods:?}\nevents: {events:?}")
}

fn deployment_args(deployment: &Deployment) -> Vec<String> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.args.clone())
        .unwrap_or_default()
}

fn pool_of(node: &Node) -> Option<String> {
    node.metadata.labels.as_ref()?.get(POOL_LABEL).cloned()
}

/// The (group, resource, verb) triples RBAC checked for `calls`: a patch that created its
/// object (server-side apply of a new object, answered 201) was also authorized as create.
fn authorized(calls: &[Call]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for call in calls {
        out.insert((call.group.clone(), call.resource.clone(), call.verb.clone()));
        if call.verb == "patch" && call.code == 201 {
            out.insert((call.group.clone(), call.resource.clone(), "create".into()));
        }
    }
    out
}

/// The (group, resource, verb) triples the rendered ClusterRole and Role grant.
fn granted(docs: &[Value]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for doc in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        for rule in doc["rules"].as_array().into_iter().flatten() {
            for group in rule["apiGroups"].as_array().into_iter().flatten() {
                for resource in rule["resources"].as_array().into_iter().flatten() {
                    for verb in rule["verbs"].as_array().into_iter().flatten() {
                        out.insert((
                            group.as_str().unwrap_or("").to_owned(),
                            resource.as_str().unwrap_or("").to_owned(),
                            verb.as_str().unwrap_or("").to_owned(),
                        ));
                    }
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn helm_install_upgrade_uninstall_and_the_operator_needs_every_verb_the_chart_grants()
-> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let Some(audit_log) = c.audit_log() else {
        bail!("this test reads the API server's audit log: it needs the harness's own cluster");
    };
    install_third_party_crds(c, &client).await?;
    let spec_nodes = SpecNodes::from_file(&repo_root().join("examples/small/cluster.yaml"), None)?;
    spec_nodes.create(&client).await?;
    spec_nodes
        .wait_ready(&client, Duration::from_secs(30))
        .await
        .with_context(|| c.describe())?;
    let nodes: Api<Node> = Api::all(client.clone());
    // Two nodes of no pool for the operator's pods (nodeSelector kubernetes.io/os: linux).
    let infra = GpuNodes::new(&unique_name("infra"), 2);
    infra.create(&client).await?;
    infra.wait_ready(&client, Duration::from_secs(30)).await?;

    // --- install: the operator's pods meet the restricted Pod Security Standard
    let ns = namespace_with_pod_security(c, &client, "kelvin", "restricted").await?;
    let values = json!({"gpuCluster": {"enabled": true, "name": "lab", "spec": small_spec()?}});
    let install = values_file(c, "install", &values)?;
    let notes = run(c
        .helm()
        .args(["install", "kelvin"])
        .arg(chart())
        .args(["--namespace", &ns, "--wait", "--timeout", "90s", "--values"])
        .arg(&install))
    .with_context(|| pods_and_events(c, &ns))?;
    assert!(notes.contains("STATUS: deployed"), "{notes}");
    assert!(notes.contains("kubectl get gpuc lab"), "NOTES.txt: {notes}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment = deployments.get("kelvin").await?;
    assert_eq!(deployment.status.and_then(|s| s.ready_replicas), Some(2));
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let operator_pods = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=operator"))
        .await?;
    assert_eq!(operator_pods.items.len(), 2);
    for pod in &operator_pods.items {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        assert!(node.is_some(), "{:?} not scheduled", pod.metadata.name);
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(crds.get_opt("gpuclusters.kelvin.dev").await?.is_some());

    // --- the real operator as the chart's ServiceAccount (a TokenRequest token)
    let account = format!("system:serviceaccount:{ns}:kelvin");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    assert!(
        accounts.get_opt("kelvin").await?.is_some(),
        "the chart made the ServiceAccount"
    );
    let (_, kubeconfig) = c.service_account_client(&ns, "kelvin").await?;
    // With the Deployment's own arguments (but the port, which OperatorProcess picks): the
    // chart's flags are the binary's. The Lease's namespace comes from the kubeconfig's
    // context here, from POD_NAMESPACE in a pod: the release namespace either way.
    let chart_args: Vec<String> = deployment_args(&deployments.get("kelvin").await?)
        .into_iter()
        .filter(|a| !a.starts_with("--http-address"))
        .collect();
    assert!(
        chart_args.contains(&"--leader-elect=true".to_owned()),
        "{chart_args:?}"
    );
    let chart_args: Vec<&str> = chart_args.iter().map(String::as_str).collect();
    let mut operator = OperatorProcess::start_as(
        c,
        &kubeconfig,
        env!("CARGO_BIN_EXE_kelvin-operator").as_ref(),
        &chart_args,
    )?;
    let clusters: Api<GpuCluster> = Api::all(client.clone());
    wait_converged(c, &clusters, &operator, "lab to converge with Kueue's API").await?;
    let holder = run(c.kubectl().args([
        "get",
        "lease",
        "kelvin-operator",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]))?;
    assert!(
        !holder.trim().is_empty(),
        "the operator holds the Lease in {ns}"
    );
    for (resource, wanted) in [
        ("clusterqueues.kueue.x-k8s.io", 2),
        ("localqueues.kueue.x-k8s.io", 3),
        ("resourceflavors.kueue.x-k8s.io", 2),
        ("topologies.kueue.x-k8s.io", 2), // one per fabric
        ("hypernodes.topology.volcano.sh", 0),
    ] {
        assert_eq!(kelvins(c, resource)?.len(), wanted, "{resource}");
    }

    // --- upgrade: new values for the operator and a changed GpuCluster. Two L40S nodes stay
    // in their pool (selector change), tenant ci goes (its quota and queues are orphans),
    // Volcano instead of Kueue, and one A100 node moves to a row in maintenance, where a pod
    // that does not tolerate it must be evicted.
    let by_pool = |pool: &str| -> Vec<String> {
        spec_nodes
            .nodes
            .iter()
            .filter(|n| n.name.starts_with(pool))
            .map(|n| n.name.to_string())
            .collect()
    };
    let (l40s, a100) = (by_pool("l40s-shared"), by_pool("a100-mig"));
    assert_eq!((l40s.len(), a100.len()), (4, 4), "{:?}", spec_nodes.nodes);
    for name in &l40s[..2] {
        let patch = json!({"metadata": {"labels": {"lab.example.com/keep": "yes"}}});
        nodes
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let maintained = &a100[0];
    let patch = json!({"metadata": {"labels": {"kelvin.dev/row": "2"}}});
    nodes
        .patch(maintained, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let workloads = unique_name("jobs");
    c.create_namespace(&client, &workloads).await?;
    let job: Pod = serde_json::from_value(json!({
        "metadata": {"name": "notebook"},
        "spec": {
            "nodeName": maintained,
            "containers": [{"name": "main", "image": "registry.example.com/notebook:1"}],
        },
    }))?;
    let job_pods: Api<Pod> = Api::namespaced(client.clone(), &workloads);
    job_pods.create(&PostParams::default(), &job).await?;

    let mut spec = small_spec()?;
    spec["gpuPools"][1]["nodeSelector"]["matchLabels"]["lab.example.com/keep"] = json!("yes");
    spec["gpuPools"][1]["expectedNodes"] = json!(2);
    spec["scheduling"]["tenants"]
        .as_array_mut()
        .unwrap()
        .retain(|t| t["name"] != "ci");
    spec["scheduling"]["topologyAwareScheduling"] = json!("Volcano");
    spec["coolingZones"].as_array_mut().unwrap().push(json!({
        "name": "lab-row-2",
        "cooling": "Air",
        "capacityKW": 20,
        "state": "Maintenance",
        "nodeSelector": {"matchLabels": {"kelvin.dev/row": "2"}},
    }));
    let upgrade = values_file(
        c,
        "upgrade",
        &json!({
            "replicaCount": 3,
            "logFormat": "text",
            "gpuCluster": {"enabled": true, "name": "lab", "spec": spec},
        }),
    )?;
    let notes = run(c
        .helm()
        .args(["upgrade", "kelvin"])
        .arg(chart())
        .args(["--namespace", &ns, "--wait", "--timeout", "90s", "--values"])
        .arg(&upgrade))
    .with_context(|| pods_and_events(c, &ns))?;
    assert!(notes.contains("REVISION: 2"), "{notes}");
    let deployment = deployments.get("kelvin").await?;
    assert_eq!(
        deployment.status.as_ref().and_then(|s| s.ready_replicas),
        Some(3)
    );
    let args = deployment_args(&deployment);
    assert!(args.contains(&"--log-format=text".to_owned()), "{args:?}");
    wait_converged(c, &clusters, &operator, "lab to converge after the upgrade").await?;

    for name in &l40s[2..] {
        let node = nodes.get(name).await?;
        assert_eq!(pool_of(&node), None, "{name} left its pool");
    }
    for name in &l40s[..2] {
        assert_eq!(
            pool_of(&nodes.get(name).await?).as_deref(),
            Some("l40s-shared")
        );
    }
    let taints = nodes.get(maintained).await?.spec.and_then(|s| s.taints);
    assert!(
        taints
            .unwrap_or_default()
            .iter()
            .any(|t| t.key == "kelvin.dev/out-of-service" && t.effect == "NoSchedule"),
        "{maintained} is out of service"
    );
    wait_for(
        "the pod on the node in maintenance to be evicted",
        Duration::from_secs(30),
        || async { Ok(job_pods.get_opt("notebook").await?.is_none().then_some(())) },
    )
    .await
    .with_context(|| operator.log_tail(40))?;
    for (resource, wanted) in [
        ("clusterqueues.kueue.x-k8s.io", 0),
        ("localqueues.kueue.x-k8s.io", 0),
        ("resourceflavors.kueue.x-k8s.io", 0),
        ("topologies.kueue.x-k8s.io", 0),
        ("resourcequotas", 1),
    ] {
        assert_eq!(kelvins(c, resource)?.len(), wanted, "{resource}");
    }
    assert!(!kelvins(c, "hypernodes.topology.volcano.sh")?.is_empty());

    // --- deletion clean-up before uninstalling (the GpuCluster is kept by Helm)
    clusters.delete("lab", &Default::default()).await?;
    wait_for("lab to be gone", Duration::from_secs(60), || async {
        Ok(clusters.get_opt("lab").await?.is_none().then_some(()))
    })
    .await
    .with_context(|| operator.log_tail(40))?;
    for node in nodes.list(&ListParams::default()).await?.items {
        assert_eq!(pool_of(&node), None, "{:?}", node.metadata.name);
    }
    for resource in [
        "daemonsets",
        "configmaps",
        "priorityclasses",
        "resourcequotas",
    ] {
        assert_eq!(kelvins(c, resource)?, Vec::<String>::new(), "{resource}");
    }
    assert!(kelvins(c, "hypernodes.topology.volcano.sh")?.is_empty());
    let status = operator.terminate(Duration::from_secs(15))?;
    assert!(status.success(), "SIGTERM: {status}");

    // --- uninstall: the release's objects go, the CRD stays (Helm never deletes crds/)
    run(c
        .helm()
        .args(["uninstall", "kelvin", "--namespace", &ns, "--wait"]))?;
    assert!(deployments.get_opt("kelvin").await?.is_none());
    assert!(accounts.get_opt("kelvin").await?.is_none());
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt("kelvin")
            .await?
            .is_none()
    );
    assert!(
        Api::<ClusterRoleBinding>::all(client.clone())
            .get_opt("kelvin")
            .await?
            .is_none()
    );
    assert!(crds.get_opt("gpuclusters.kelvin.dev").await?.is_some());

    // --- RBAC: nothing refused, every granted verb used (or one of the documented paths)
    let calls = calls_of(&audit_log, &account)?;
    assert!(
        calls.len() > 20,
        "the audit log holds the operator's calls: {calls:?}"
    );
    let refused: Vec<&Call> = calls.iter().filter(|c| c.code == 403).collect();
    assert!(refused.is_empty(), "refused by RBAC: {refused:?}");
    let used = authorized(&calls);
    let grants = granted(&documents(c, &template(c, &ns, &[])?)?);
    let wanted: BTreeSet<(String, String, String)> = access_rules()
        .into_iter()
        .flat_map(|r| {
            r.verbs
                .into_iter()
                .map(move |v| (r.group.to_owned(), r.resource.clone(), v.to_owned()))
        })
        .collect();
    assert_eq!(grants, wanted, "the chart grants access_rules()");
    let not_granted: Vec<_> = used.difference(&grants).collect();
    assert!(
        not_granted.is_empty(),
        "used but not granted: {not_granted:?}"
    );
    let unforced: BTreeSet<(String, String, String)> = GRANTED_FOR_PATHS_THE_SCENARIO_CANNOT_FORCE
        .iter()
        .map(|(g, r, v, _)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
        .collect();
    let unused: BTreeSet<_> = grants.difference(&used).cloned().collect();
    let unexplained: Vec<_> = unused.difference(&unforced).collect();
    assert!(
        unexplained.is_empty(),
        "granted but never used by the scenario (drop them from access_rules()): {unexplained:?}"
    );
    let stale: Vec<_> = unforced.difference(&grants).collect();
    assert!(stale.is_empty(), "no longer granted: {stale:?}");

    infra.delete(&client).await?;
    spec_nodes.delete(&client).await?;
    c.delete_namespace(&client, &workloads).await?;
    c.delete_namespace(&client, &ns).await
}

//! Smoke tests against a real control plane: the API server, RBAC, CRDs and CEL admission,
//! kubectl, helm, the DaemonSet controller and the scheduler on kwok's fake GPU nodes.
//!
//! All tests of this file share one control plane (see `kelvin_e2e::cluster`), each in its own
//! namespace and with its own object names.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kelvin_e2e::crd::{
    GPUCLUSTER_CRD, gpucluster_crd, install_crd, is_established, read_yaml_documents,
    rejection_messages,
};
use kelvin_e2e::process::output;
use kelvin_e2e::{GpuNodes, cluster, repo_root, run, unique_name, wait_for, workspace_binary};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// Installs the GpuCluster CRD (idempotent; several tests call it) and returns a client.
async fn with_gpucluster_crd() -> Result<Client> {
    let client = cluster()?.client().await?;
    let (crd, _) = gpucluster_crd()?;
    install_crd(&client, &crd).await?;
    Ok(client)
}

fn gpucluster_api(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kelvin.dev", "v1alpha1", "GpuCluster");
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

/// Kubernetes objects (documents with apiVersion and kind) in the YAML files under
/// `examples/`, by file.
fn example_objects() -> Result<Vec<(PathBuf, Vec<serde_json::Value>)>> {
    let mut files = Vec::new();
    let mut dirs = vec![repo_root().join("examples")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let objects: Vec<_> = read_yaml_documents(&path)?
            .into_iter()
            .filter(|d| d["apiVersion"].is_string() && d["kind"].is_string())
            .collect();
        if !objects.is_empty() {
            out.push((path, objects));
        }
    }
    Ok(out)
}

/// The first GpuCluster found under examples/small (then anywhere under examples/).
fn an_example_gpucluster() -> Result<serde_json::Value> {
    let examples = example_objects()?;
    let small = repo_root().join("examples/small");
    let mut ordered: Vec<&(PathBuf, Vec<serde_json::Value>)> = examples
        .iter()
        .filter(|(p, _)| p.starts_with(&small))
        .collect();
    ordered.extend(examples.iter().filter(|(p, _)| !p.starts_with(&small)));
    ordered
        .iter()
        .flat_map(|(_, objects)| objects.iter())
        .find(|o| o["kind"] == "GpuCluster")
        .cloned()
        .context("no GpuCluster under examples/ (expected examples/small/*.yaml)")
}

#[tokio::test]
async fn api_server_serves_the_pinned_version() -> Result<()> {
    let c = cluster()?;
    let out = run(c.kubectl().args(["version", "-o", "json"]))?;
    let version: serde_json::Value = serde_json::from_str(&out)?;
    let server = version["serverVersion"]["gitVersion"]
        .as_str()
        .context("kubectl version printed no serverVersion.gitVersion")?;
    if c.is_external() {
        assert!(server.starts_with("v1."), "server version {server}");
    } else {
        // The ldflags of tests/testbin/build.sh must reach /version (Helm's kubeVersion reads it).
        let pinned = std::fs::read_to_string(repo_root().join("tests/testbin/versions.env"))?
            .lines()
            .find_map(|l| l.strip_prefix("K8S_VERSION=").map(str::to_string))
            .context("versions.env has no K8S_VERSION")?;
        assert_eq!(server, format!("v{pinned}"), "{}", c.describe());
    }
    Ok(())
}

#[tokio::test]
async fn gpucluster_crd_installs_and_becomes_established() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let (crd, path) = gpucluster_crd()?;
    assert_eq!(crd.metadata.name.as_deref(), Some(GPUCLUSTER_CRD));
    install_crd(&client, &crd).await?;

    // It installs cleanly: no warnings from the API server (e.g. unknown `format`s, which it
    // ignores), as every `kubectl apply` and `helm install` of it would show them to users.
    // The API server only warns about what an update adds, so dry-run a *create* of the same
    // schema under a group of its own.
    let mut copy = serde_json::to_value(&crd)?;
    let group = format!("{}.kelvin.dev", unique_name("warncheck"));
    copy["metadata"] = json!({"name": format!("gpuclusters.{group}")});
    copy["spec"]["group"] = json!(group);
    let stderr = create_dry_run_stderr(c.kubectl(), &copy)?;
    assert!(
        !stderr.contains("Warning"),
        "the API server warns about {}:\n{stderr}",
        path.display()
    );

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let stored = crds.get(GPUCLUSTER_CRD).await?;
    assert!(is_established(&stored), "CRD not Established: {stored:?}");
    assert_eq!(stored.spec.scope, "Cluster");
    assert_eq!(
        stored.spec.names.short_names.as_deref(),
        Some(&["gpuc".to_string()][..])
    );
    // The API is served: the short name resolves and listing works.
    let out = run(c.kubectl().args(["get", "gpuc", "-o", "name"]))?;
    assert!(!out.contains("error"), "{out}");
    gpucluster_api(&client).list(&ListParams::default()).await?;
    Ok(())
}

#[tokio::test]
async fn examples_are_accepted_by_kubectl_apply() -> Result<()> {
    let c = cluster()?;
    let client = with_gpucluster_crd().await?;
    let examples = example_objects()?;
    let clusters: Vec<String> = examples
        .iter()
        .flat_map(|(_, objects)| objects.iter())
        .filter(|o| o["kind"] == "GpuCluster")
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    assert!(
        !clusters.is_empty(),
        "no GpuCluster in examples/ (expected examples/cortex and examples/small)"
    );
    for (path, objects) in &examples {
        // Files holding only Kubernetes objects are applied as they are; others (with, e.g.,
        // an inventory document) get their objects applied from stdin.
        let all_objects = read_yaml_documents(path)?.len() == objects.len();
        let out = if all_objects {
            run(c.kubectl().arg("apply").arg("-f").arg(path))
        } else {
            apply_stdin(
                c.kubectl(),
                &json!({"apiVersion": "v1", "kind": "List", "items": objects}),
            )
        }
        .with_context(|| format!("kubectl apply of {}", path.display()))?;
        eprintln!("{}: {}", path.display(), out.trim());
    }
    let api = gpucluster_api(&client);
    for name in &clusters {
        let stored = api.get(name).await?;
        assert!(
            stored.data["spec"].is_object(),
            "GpuCluster {name} has no spec"
        );
    }
    for (path, _) in &examples {
        let _ = output(
            c.kubectl()
                .args(["delete", "--ignore-not-found", "-f"])
                .arg(path),
        );
    }
    Ok(())
}

/// `kubectl create --dry-run=server -f -` of `object`; fails unless accepted, returns stderr.
fn create_dry_run_stderr(
    mut kubectl: std::process::Command,
    object: &serde_json::Value,
) -> Result<String> {
    use std::io::Write;
    let mut child = kubectl
        .args(["create", "--dry-run=server", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(object.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "kubectl create --dry-run=server failed: {stderr}"
    );
    Ok(stderr)
}

fn apply_stdin(mut kubectl: std::process::Command, list: &serde_json::Value) -> Result<String> {
    use std::io::Write;
    let mut child = kubectl
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(list.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "kubectl apply -f - failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn cel_violation_is_rejected_with_the_message_kelvin_validate_prints() -> Result<()> {
    let c = cluster()?;
    let client = with_gpucluster_crd().await?;
    let kelvin = workspace_binary("kelvin", "kelvin")?;

    // A valid example with one reference broken at a time. The messages are the rules'
    // messageExpressions (naming what dangles), not their static fallbacks.
    let example = an_example_gpucluster()?;
    let pool = example["spec"]["gpuPools"][0]["name"]
        .as_str()
        .context("examples/small's first pool has no name")?;
    let tenant = example["spec"]["scheduling"]["tenants"][0]["name"]
        .as_str()
        .context("examples/small's first tenant has no name")?;
    // (what, how it breaks the spec, the message expected from both).
    type Case<'a> = (&'a str, fn(&mut serde_json::Value), String);
    let cases: [Case; 5] = [
        (
            "a pool naming a missing fabric",
            |spec| spec["spec"]["gpuPools"][0]["fabric"] = json!("no-such-fabric"),
            format!(
                "spec.gpuPools[0] ({pool}) names fabric no-such-fabric, which is not in \
                 spec.fabrics: add it or fix the pool's fabric"
            ),
        ),
        (
            "a quota naming a missing pool",
            |spec| {
                spec["spec"]["scheduling"]["tenants"][0]["gpuQuota"] = json!({"no-such-pool": 1})
            },
            format!(
                "spec.scheduling.tenants[0] ({tenant}) has a gpuQuota for pool no-such-pool, \
                 which is not in spec.gpuPools: add the pool or fix the quota's pool name"
            ),
        ),
        (
            // Either side could pick either key; both count them instead.
            "a quota naming two missing pools",
            |spec| {
                spec["spec"]["scheduling"]["tenants"][0]["gpuQuota"] = json!({"no-a": 1, "no-b": 1})
            },
            format!(
                "spec.scheduling.tenants[0] ({tenant}) has a gpuQuota for 2 pools that are not in \
                 spec.gpuPools: add the pools or fix the quota's pool names"
            ),
        ),
        (
            // The CRD's root rule: the name is the value of the label kelvin.dev/cluster.
            "a name of 64 characters",
            |spec| {
                let name = spec["metadata"]["name"].as_str().unwrap_or_default();
                let padded = format!("{name}-{}", "x".repeat(63 - name.len()));
                spec["metadata"]["name"] = json!(padded);
            },
            "a GpuCluster's name is at most 63 characters, and this one has 64: every object \
             Kelvin creates carries it in the label kelvin.dev/cluster, whose values are at \
             most 63 characters; shorten metadata.name"
                .to_owned(),
        ),
        (
            // Each pool within its maximum, the site over it.
            "pools adding up to more nodes than a site may have",
            |spec| {
                for pool in spec["spec"]["gpuPools"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    pool["expectedNodes"] = json!(150_000);
                }
            },
            "spec.gpuPools[].expectedNodes add up to 300000 nodes; a site is at most 200000 (the \
             largest Kubernetes clusters run 65,000-130,000): expectedNodes counts servers, not \
             GPUs; lower it, or describe one site per GpuCluster"
                .to_owned(),
        ),
    ];
    for (what, breaks, expected) in cases {
        let mut spec = example.clone();
        spec["metadata"] = json!({"name": unique_name("cel")});
        breaks(&mut spec);
        let name = spec["metadata"]["name"]
            .as_str()
            .context("no metadata.name")?
            .to_owned();

        let object: DynamicObject = serde_json::from_value(spec.clone())?;
        let err = gpucluster_api(&client)
            .create(&PostParams::default(), &object)
            .await
            .expect_err(&format!("the API server accepted {what}"));
        let kube::Error::Api(status) = err else {
            panic!("expected an API error for {what}, got {err:?}");
        };
        assert_eq!(status.code, 422, "{what}: {status:?}");
        assert_eq!(
            rejection_messages(&status),
            std::slice::from_ref(&expected),
            "{what}: the API server's messages"
        );
        assert!(
            gpucluster_api(&client).get_opt(&name).await?.is_none(),
            "{what}: rejected object was stored"
        );

        // `kelvin validate` rejects the same file with the same message: a line
        // `error: FILE:LINE:COL: PATH: MESSAGE`.
        let file = c.scratch().join(format!("{name}.yaml"));
        std::fs::write(&file, serde_json::to_string_pretty(&spec)?)?;
        let out = output(
            std::process::Command::new(&kelvin)
                .args(["validate", "-f"])
                .arg(&file),
        )?;
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "kelvin validate: {printed}");
        assert!(
            printed
                .lines()
                .any(|l| l.starts_with("error: ") && l.ends_with(&format!(": {expected}"))),
            "{what}: kelvin validate does not print the API server's message {expected:?}:\n{printed}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn kubectl_and_helm_reach_the_cluster() -> Result<()> {
    let c = cluster()?;
    assert_eq!(
        run(c.kubectl().args(["get", "--raw", "/readyz"]))?.trim(),
        "ok"
    );
    assert_eq!(
        run(c.kubectl().args(["auth", "can-i", "*", "*"]))?.trim(),
        "yes"
    );

    let version = run(c.helm().args(["version", "--short"]))?;
    assert!(version.starts_with("v3."), "helm version: {version}");
    let releases: serde_json::Value =
        serde_json::from_str(&run(c.helm().args(["list", "-A", "-o", "json"]))?)?;
    assert!(releases.is_array(), "helm list: {releases}");

    // A tiny chart, installed and removed. Its kubeVersion constraint fails against a server
    // reporting v0.0.0-master (binaries built without version ldflags).
    let chart = c.scratch().join(unique_name("chart"));
    std::fs::create_dir_all(chart.join("templates"))?;
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: kelvin-smoke\nversion: 0.1.0\nkubeVersion: \">=1.30.0-0\"\n",
    )?;
    std::fs::write(chart.join("values.yaml"), "greeting: hello\n")?;
    std::fs::write(
        chart.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n\
         data:\n  greeting: {{ .Values.greeting | quote }}\n",
    )?;
    let release = unique_name("smoke");
    let namespace = unique_name("helm");
    run(c
        .helm()
        .args(["install", &release])
        .arg(&chart)
        .args([
            "-n",
            &namespace,
            "--create-namespace",
            "--wait",
            "--timeout",
            "60s",
        ])
        .args(["--set", "greeting=from-helm"]))?;
    let client = c.client().await?;
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .get(&release)
        .await?;
    assert_eq!(
        cm.data
            .unwrap_or_default()
            .get("greeting")
            .map(String::as_str),
        Some("from-helm")
    );
    let listed: serde_json::Value = serde_json::from_str(&run(c
        .helm()
        .args(["list", "-n", &namespace, "-o", "json"]))?)?;
    assert_eq!(listed[0]["name"], release.as_str(), "{listed}");
    assert_eq!(listed[0]["status"], "deployed", "{listed}");
    run(c
        .helm()
        .args(["uninstall", &release, "-n", &namespace, "--wait"]))?;
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get_opt(&release)
            .await?
            .is_none(),
        "helm uninstall left the ConfigMap"
    );
    c.delete_namespace(&client, &namespace).await
}

#[tokio::test]
async fn rbac_limits_a_service_account_to_what_it_is_granted() -> Result<()> {
    let c = cluster()?;
    let admin = c.client().await?;
    let namespace = unique_name("rbac");
    c.create_namespace(&admin, &namespace).await?;
    let (sa, kubeconfig) = c.service_account_client(&namespace, "reader").await?;

    let pods: Api<Pod> = Api::namespaced(sa.clone(), &namespace);
    let err = pods
        .list(&ListParams::default())
        .await
        .expect_err("a ServiceAccount with no roles listed pods");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "expected 403, got {err:?}"
    );

    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "pod-reader", "namespace": namespace},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "pod-reader", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
    });
    apply_stdin(
        c.kubectl(),
        &json!({"apiVersion": "v1", "kind": "List", "items": [role, binding]}),
    )?;
    wait_for(
        "the RoleBinding to take effect",
        Duration::from_secs(30),
        || async { Ok(pods.list(&ListParams::default()).await.ok().map(|_| ())) },
    )
    .await?;

    // Still nothing cluster-wide; kubectl with the ServiceAccount's kubeconfig agrees.
    let nodes: Api<Node> = Api::all(sa);
    assert!(nodes.list(&ListParams::default()).await.is_err());
    let out = output(
        c.kubectl()
            .env("KUBECONFIG", &kubeconfig)
            .args(["auth", "can-i", "list", "pods"]),
    )?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "yes");
    let out = output(
        c.kubectl()
            .env("KUBECONFIG", &kubeconfig)
            .args(["auth", "can-i", "delete", "pods"]),
    )?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    c.delete_namespace(&admin, &namespace).await
}

#[tokio::test]
async fn fake_gpu_nodes_come_up_ready_with_their_gpus() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let mut set = GpuNodes::new(&unique_name("e2e-node"), 5).label("team", "fsd");
    set.start = 40;
    set.create(&client).await?;
    set.wait_ready(&client, Duration::from_secs(60))
        .await
        .with_context(|| c.describe())?;

    let node = Api::<Node>::all(client.clone()).get(&set.name(2)).await?;
    assert!(
        node.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.ends_with("-00042"))
    );
    let labels = node.metadata.labels.clone().unwrap_or_default();
    for key in [
        "kelvin.dev/hall",
        "kelvin.dev/loop",
        "kelvin.dev/rack",
        "kelvin.dev/sku",
    ] {
        assert!(
            labels.contains_key(key),
            "node lacks label {key}: {labels:?}"
        );
    }
    assert_eq!(labels["kelvin.dev/rack"], "10");
    assert_eq!(labels["team"], "fsd");
    // kwok's node-initialize stage kept the capacity we created the node with.
    let status = node.status.clone().unwrap_or_default();
    assert_eq!(
        status.allocatable.unwrap_or_default()["nvidia.com/gpu"].0,
        "8"
    );
    assert_eq!(status.capacity.unwrap_or_default()["nvidia.com/gpu"].0, "8");

    set.delete(&client).await?;
    let (left, _) = set.count_ready(&client).await?;
    assert_eq!(left, 0, "nodes left after delete");
    Ok(())
}

#[tokio::test]
async fn daemonset_gets_ready_pods_on_fake_gpu_nodes() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let set = GpuNodes::new(&unique_name("e2e-ds"), 3);
    set.create(&client).await?;
    set.wait_ready(&client, Duration::from_secs(60)).await?;

    let namespace = unique_name("ds");
    c.create_namespace(&client, &namespace).await?;
    let (key, value) = set
        .selector()
        .split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .context("selector")?;
    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "gpu-plugin", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "gpu-plugin"}},
            "template": {
                "metadata": {"labels": {"app": "gpu-plugin"}},
                "spec": {
                    "nodeSelector": {key.as_str(): value},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{
                        "name": "plugin",
                        // kwok never pulls or runs images.
                        "image": "registry.invalid/device-plugin:v0",
                        "resources": {"limits": {"nvidia.com/gpu": "1"}},
                    }],
                },
            },
        },
    }))?;
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), &namespace);
    daemonsets.create(&PostParams::default(), &ds).await?;
    wait_for(
        "3 Ready DaemonSet pods",
        Duration::from_secs(120),
        || async {
            let status = daemonsets
                .get("gpu-plugin")
                .await?
                .status
                .unwrap_or_default();
            Ok((status.desired_number_scheduled == 3 && status.number_ready == 3).then_some(()))
        },
    )
    .await
    .with_context(|| c.describe())?;

    let pods = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await?;
    let nodes: BTreeSet<String> = pods
        .items
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    let expected: BTreeSet<String> = (0..3).map(|i| set.name(i)).collect();
    assert_eq!(nodes, expected, "one pod per fake GPU node");
    for pod in &pods.items {
        let status = pod.status.clone().unwrap_or_default();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.is_some(), "kwok gave the pod no IP");
    }

    c.delete_namespace(&client, &namespace).await?;
    set.delete(&client).await
}

#[tokio::test]
async fn scheduler_counts_fake_gpus() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let set = GpuNodes::new(&unique_name("e2e-sched"), 1);
    set.create(&client).await?;
    set.wait_ready(&client, Duration::from_secs(60)).await?;
    let namespace = unique_name("sched");
    c.create_namespace(&client, &namespace).await?;

    let pod = |name: &str, gpus: u32| -> Result<Pod> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": {"e2e.kelvin.dev/node-set": set.prefix},
                "containers": [{
                    "name": "train", "image": "registry.invalid/train:v0",
                    "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}},
                }],
            },
        }))?)
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    pods.create(&PostParams::default(), &pod("fits", 8)?)
        .await?;
    pods.create(&PostParams::default(), &pod("too-big", 9)?)
        .await?;
    wait_for("pod `fits` Running", Duration::from_secs(60), || async {
        let p = pods.get("fits").await?;
        Ok((p.status.and_then(|s| s.phase).as_deref() == Some("Running")).then_some(()))
    })
    .await?;
    let reason = wait_for(
        "pod `too-big` Unschedulable",
        Duration::from_secs(60),
        || async {
            let p = pods.get("too-big").await?;
            Ok(p.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                .and_then(|c| c.message))
        },
    )
    .await?;
    assert!(
        reason.contains("Insufficient nvidia.com/gpu"),
        "unexpected scheduling message: {reason}"
    );

    c.delete_namespace(&client, &namespace).await?;
    set.delete(&client).await
}

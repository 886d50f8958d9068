//! Hostile and huge input (issue 11): lists far over their limits, names and labels the API
//! server refuses, two GpuClusters wanting one object, the JSON plan's shape, messages in
//! Kubernetes' words, and real `kubectl get nodes -o json` inventories. Each case runs the
//! built `kelvin` binary, like tests/bad_input.rs.

// Helpers of a test crate fail the test by panicking (clippy exempts only #[test] functions).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;

const KELVIN: &str = env!("CARGO_BIN_EXE_kelvin");

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

fn kelvin(args: &[&str]) -> Run {
    let output = Command::new(KELVIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .env("HOME", env!("CARGO_TARGET_TMPDIR"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "kelvin panicked:\n{run:?}"
    );
    run
}

fn write(name: &str, bytes: impl AsRef<[u8]>) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile_input");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

fn small() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/small/cluster.yaml");
    std::fs::read_to_string(path).unwrap()
}

fn small_with(name: &str, from: &str, to: &str) -> String {
    let text = small();
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} once in the example"
    );
    write(name, text.replacen(from, to, 1))
}

fn errors(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Defect 3: lists far over maxItems.

#[test]
fn four_thousand_pools_are_one_error_not_four_thousand() {
    let pool = small()
        .split("  gpuPools:\n")
        .nth(1)
        .unwrap()
        .split("  scheduling:")
        .next()
        .unwrap()
        .to_owned();
    let mut text = small().replace(&pool, "");
    // The same two pools again and again: duplicates and far over maxItems (64).
    let pools = pool.repeat(2_000);
    text = text.replace("  gpuPools:\n", &format!("  gpuPools:\n{pools}"));
    let file = write("four-thousand-pools.yaml", &text);
    let run = kelvin(&["validate", "-f", &file]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(errors(&run).len(), 1, "{run:?}");
    assert!(
        run.stderr
            .contains("spec.gpuPools: Too many: 4000: must have at most 64 items"),
        "{run:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Node counts no site has: refused before any node is simulated.

/// examples/small with 62 more pools (64, the most a spec has), every one of `nodes` nodes.
fn sixty_four_pools_of(name: &str, nodes: u32) -> String {
    let text = small().replace("expectedNodes: 4\n", &format!("expectedNodes: {nodes}\n"));
    let extra: String = (0..62)
        .map(|i| {
            format!(
                "  - name: extra-{i}\n    nodeSelector:\n      matchLabels: {{kelvin.dev/sku: extra-{i}}}\n    expectedNodes: {nodes}\n    accelerator: {{vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}}\n    hostPowerWatts: 4600\n    fabric: lab-ib\n"
            )
        })
        .collect();
    write(
        name,
        text.replacen("  scheduling:", &format!("{extra}  scheduling:"), 1),
    )
}

/// `kelvin ARGS` with at most 256 MiB of address space (prlimit, util-linux, when there): a
/// refusal must not have simulated the nodes first. And how long it took.
fn bounded(args: &[&str]) -> (Run, std::time::Duration) {
    let start = std::time::Instant::now();
    let prlimit = Path::new("/usr/bin/prlimit");
    let output = if prlimit.exists() {
        Command::new(prlimit)
            .arg(format!("--as={}", 256 << 20))
            .arg(KELVIN)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .env("HOME", env!("CARGO_TARGET_TMPDIR"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    } else {
        eprintln!("no /usr/bin/prlimit: memory not bounded, only the time checked");
        return (kelvin(args), start.elapsed());
    };
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    (run, start.elapsed())
}

#[test]
fn a_million_nodes_per_pool_is_refused_at_once_naming_each_pool() {
    let file = sixty_four_pools_of("64-pools-of-a-million.yaml", 1_000_000);
    let (run, took) = bounded(&["plan", "--offline", "-f", &file]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    // One error per pool, each naming its field, the limit and the fix.
    assert_eq!(errors(&run).len(), 64, "{run:?}");
    for pool in [0, 63] {
        assert!(
            run.stderr.contains(&format!(
                "spec.gpuPools[{pool}].expectedNodes: Invalid value: 1000000: should be less than or equal to 200000"
            )),
            "pool {pool}: {run:?}"
        );
    }
    assert!(run.stderr.contains("fix: use at most 200000"), "{run:?}");
    // Debug builds included: reading and checking the spec is all it does.
    assert!(took.as_millis() < 1_000, "took {took:?}");
}

#[test]
fn pools_within_their_limit_but_over_the_site_total_are_refused_with_the_total() {
    let file = sixty_four_pools_of("64-pools-of-200k.yaml", 200_000);
    let (run, took) = bounded(&["plan", "--offline", "-f", &file]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(errors(&run).len(), 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "spec: spec.gpuPools[].expectedNodes add up to 12800000 nodes; a site is at most 200000"
        ),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("expectedNodes counts servers, not GPUs"),
        "{run:?}"
    );
    assert!(took.as_millis() < 1_000, "took {took:?}");
}

// ---------------------------------------------------------------------------------------------
// Defect 7: names and labels the API server refuses.

#[test]
fn a_name_longer_than_a_label_value_is_refused() {
    let long = "a".repeat(64);
    let file = small_with(
        "long-name.yaml",
        "  name: lab\n",
        &format!("  name: {long}\n"),
    );
    let run = kelvin(&["validate", "-f", &file]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(
            "metadata.name: a GpuCluster's name is at most 63 characters, and this one has 64:"
        ),
        "{run:?}"
    );
    assert!(run.stderr.contains("kelvin.dev/cluster"), "{run:?}");
}

#[test]
fn metadata_labels_with_an_invalid_key_or_value_are_refused() {
    let file = small_with(
        "bad-labels.yaml",
        "  name: lab\n",
        "  name: lab\n  labels: {\"bad key\": x, team: \"a b\", rack: 5}\n",
    );
    let run = kelvin(&["validate", "-f", &file]);
    assert_eq!(run.code, Some(1), "{run:?}");
    for needle in [
        "metadata.labels.bad key: \"bad key\" is not a valid label key",
        "metadata.labels.team: \"a b\" is not a valid label value",
        "metadata.labels.rack: Invalid value: 5: must be of type string",
    ] {
        assert!(run.stderr.contains(needle), "{needle}\n{run:?}");
    }
}

#[test]
fn a_node_selector_value_no_label_can_have_is_refused() {
    let file = small_with(
        "selector-with-space.yaml",
        "matchLabels: {kelvin.dev/sku: dgx-a100}",
        "matchLabels: {kelvin.dev/sku: dgx a100}",
    );
    let run = kelvin(&["validate", "-f", &file]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(
            "spec.gpuPools[0].nodeSelector.matchLabels.kelvin.dev/sku: \"dgx a100\" is not a valid label value: no node can carry it"
        ),
        "{run:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Defect 10: the JSON plan's shape follows the documents, never their validity.

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

#[test]
fn a_schema_invalid_spec_is_one_invalid_plan_object() {
    let file = small_with("invalid-for-json.yaml", "pue: 1.5", "pue: 0.5");
    let run = kelvin(&["plan", "--offline", "-f", &file, "-o", "json"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let plan = json(&run);
    assert_eq!(plan["cluster"], "lab", "{run:?}");
    assert_eq!(plan["valid"], false);
    assert_eq!(plan["errors"][0]["path"], "spec.site.pue", "{run:?}");
}

#[test]
fn an_invalid_file_and_a_valid_one_are_an_array_of_two() {
    let invalid = write("not-yaml.yaml", "spec: [unclosed\n");
    let run = kelvin(&[
        "plan",
        "--offline",
        "-f",
        &invalid,
        "-f",
        "../examples/small/cluster.yaml",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let plans = json(&run);
    let plans = plans.as_array().unwrap_or_else(|| panic!("{run:?}"));
    assert_eq!(plans.len(), 2);
    assert_eq!(plans[0]["valid"], false);
    assert_eq!(plans[0]["cluster"], "");
    assert_eq!(plans[1]["cluster"], "lab");
    assert_eq!(plans[1]["valid"], true);
}

// ---------------------------------------------------------------------------------------------
// Defect 11: one object, two owners.

#[test]
fn the_same_file_twice_is_a_conflict() {
    for command in ["plan", "render"] {
        let mut args = vec![command];
        if command == "plan" {
            args.push("--offline");
        }
        args.extend([
            "-f",
            "../examples/small/cluster.yaml",
            "-f",
            "../examples/small/cluster.yaml",
        ]);
        let run = kelvin(&args);
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(
            run.stderr.contains(
                "metadata.name: GpuCluster lab is given twice: also in ../examples/small/cluster.yaml (document 1)"
            ),
            "{run:?}"
        );
        if command == "render" {
            assert!(run.stdout.is_empty(), "nothing rendered: {run:?}");
        }
    }
}

#[test]
fn two_clusters_wanting_one_namespace_are_a_conflict() {
    let other = small_with("other-lab.yaml", "  name: lab\n", "  name: lab-two\n");
    let run = kelvin(&[
        "render",
        "-f",
        "../examples/small/cluster.yaml",
        "-f",
        &other,
    ]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("GpuCluster lab-two wants ")
            && run.stderr.contains(
                "that GpuCluster lab (../examples/small/cluster.yaml (document 1)) wants too: "
            )
            && run.stderr.contains("Namespace/research"),
        "{run:?}"
    );
    assert!(run.stdout.is_empty(), "{run:?}");
}

// ---------------------------------------------------------------------------------------------
// Defect 12: messages name the field, in Kubernetes' words.

#[test]
fn a_whole_number_written_as_a_float_is_that_number() {
    let file = small_with(
        "float-count.yaml",
        "expectedNodes: 4\n    accelerator:\n      vendor: nvidia\n      model: A100",
        "expectedNodes: 4.0\n    accelerator:\n      vendor: nvidia\n      model: A100",
    );
    let run = kelvin(&["validate", "-f", &file]);
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[test]
fn not_a_number_names_its_field() {
    let file = small_with(
        "nan-budget.yaml",
        "powerBudgetMW: 0.2",
        "powerBudgetMW: .nan",
    );
    let run = kelvin(&["validate", "-f", &file]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("spec.site.powerBudgetMW: Invalid value: .nan: must be a finite number"),
        "{run:?}"
    );
}

#[test]
fn a_file_of_comments_is_not_called_an_alias_bomb() {
    let file = write(
        "comments.yaml",
        "# a comment line of forty characters ..\n".repeat(1_700_000),
    );
    let run = kelvin(&["validate", "-f", &file]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(!run.stderr.contains("alias"), "{run:?}");
    assert!(
        run.stderr.contains("is larger than the read limit"),
        "{run:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Defect 6 and deliverable 1: `kubectl get nodes -o json` inventories.

#[test]
fn a_kubectl_json_inventory_is_planned() {
    let nodes: Vec<Value> = (1..=4)
        .map(|n| {
            serde_json::json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": format!("dgx-{n:02}"), "labels": {"kelvin.dev/sku": "dgx-a100", "kelvin.dev/row": "1"},
                             "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}]},
                "status": {"capacity": {"nvidia.com/gpu": "8"}, "conditions": [{"type": "Ready", "status": "True"}],
                           "images": [{"names": ["nvcr.io/nvidia/pytorch:24.01-py3"], "sizeBytes": 1}]}})
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "items": nodes, "kind": "List", "metadata": {"resourceVersion": ""}});
    let file = write("nodes.json", serde_json::to_string_pretty(&list).unwrap());
    let run = kelvin(&[
        "plan",
        "--offline",
        "-f",
        "../examples/small/cluster.yaml",
        "--inventory",
        &file,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("planned against 4 nodes from inventory {file}")),
        "{run:?}"
    );
}

#[test]
fn a_json_list_of_pods_is_not_an_inventory() {
    let file = write(
        "pods.json",
        r#"{"apiVersion": "v1", "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "trainer-0"}}], "kind": "List"}"#,
    );
    let run = kelvin(&[
        "plan",
        "--offline",
        "-f",
        "../examples/small/cluster.yaml",
        "--inventory",
        &file,
    ]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "error: {file}:1:32: items[0].kind: Pod trainer-0 is not a Node"
        )),
        "{run:?}"
    );
}

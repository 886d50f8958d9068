//! Reading real inventories: `kubectl get nodes -o json` files of realistic nodes (labels of
//! kubelet, NFD and GPU feature discovery; managedFields, images, conditions, annotations; about
//! 11 KB per node, as DESIGN.md §7 says a real Node is 5-50 KB), read by Kelvin's streaming
//! JSON reader. Prints time, CPU time and peak memory per size, each in a fresh child process.
//!
//! Run: `cargo bench -p kelvin-core --bench inventory` (or `tests/bench/inventory.sh`, which
//! also plans the files with the release `kelvin`). `-- --write NODES SPEC INVENTORY` only
//! writes a spec and its inventory; `-- --read FILE` reads one file.

// A program like a main: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use common::{cpu_ms, peak_rss_mib, spec};
use kelvin_core::observed::simulate;
use kelvin_crds::{inventory::read_json_inventory, load, node::NodeInfo};
use serde_json::{Value, json};

const SIZES: [u64; 2] = [8_750, 70_000];

/// Images a GPU node has pulled (CUDA, PyTorch, NeMo, the device plugins, ...).
const IMAGES: usize = 12;

/// `node` as the API server returns it in `kubectl get nodes -o json`.
fn kube_node(index: usize, node: &NodeInfo) -> Value {
    let mut labels = serde_json::Map::new();
    for (key, value) in &node.labels {
        labels.insert(key.to_string(), json!(value));
    }
    let name = &node.name;
    for (key, value) in [
        ("beta.kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/hostname", name.as_str()),
        ("node.kubernetes.io/instance-type", "dgx-h100"),
        ("topology.kubernetes.io/region", "us-central"),
        ("topology.kubernetes.io/zone", "hall-a"),
        ("nvidia.com/gpu.present", "true"),
        ("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),
        ("nvidia.com/gpu.memory", "81559"),
        ("nvidia.com/gpu.count", "8"),
        ("nvidia.com/gpu.family", "hopper"),
        ("nvidia.com/cuda.driver.major", "550"),
        ("nvidia.com/cuda.driver.minor", "54"),
        ("nvidia.com/cuda.runtime.major", "12"),
        ("nvidia.com/mig.capable", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AVX512F", "true"),
        (
            "feature.node.kubernetes.io/kernel-version.full",
            "5.15.0-105-generic",
        ),
        ("feature.node.kubernetes.io/pci-10de.present", "true"),
        ("feature.node.kubernetes.io/network-sriov.capable", "true"),
    ] {
        labels.insert(key.to_owned(), json!(value));
    }
    let label_fields: serde_json::Map<String, Value> = labels
        .keys()
        .map(|key| (format!("f:{key}"), json!({})))
        .collect();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"lastHeartbeatTime": "2026-12-01T10:00:00Z", "lastTransitionTime": "2026-11-20T08:12:44Z",
               "message": message, "reason": reason, "status": status, "type": kind})
    };
    let images: Vec<Value> = (0..IMAGES)
        .map(|image| {
            json!({"names": [
                format!("nvcr.io/nvidia/pytorch@sha256:{:064x}", image * 7919 + 13),
                format!("nvcr.io/nvidia/pytorch:24.{:02}-py3", image % 12 + 1)],
                "sizeBytes": 9_876_543_210u64 + image as u64})
        })
        .collect();
    let condition_fields = |kind: &str| {
        (
            format!("k:{{\"type\":\"{kind}\"}}"),
            json!({".": {}, "f:lastHeartbeatTime": {}, "f:lastTransitionTime": {}, "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}}),
        )
    };
    let conditions = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": {
                "csi.volume.kubernetes.io/nodeid": format!("{{\"csi.tigera.io\":\"{name}\"}}"),
                "node.alpha.kubernetes.io/ttl": "0",
                "nfd.node.kubernetes.io/feature-labels": "cpu-cpuid.ADX,cpu-cpuid.AESNI,cpu-cpuid.AVX,cpu-cpuid.AVX2,cpu-cpuid.AVX512BW,cpu-cpuid.AVX512CD,cpu-cpuid.AVX512DQ,cpu-cpuid.AVX512F,cpu-cpuid.AVX512VL,cpu-cpuid.FMA3,kernel-version.full,pci-10de.present,network-sriov.capable",
                "projectcalico.org/IPv4Address": format!("10.{}.{}.{}/16", index / 65536 % 256, index / 256 % 256, index % 256),
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "kelvin.dev/owned-taints": "example.com/dedicated:NoSchedule"
            },
            "creationTimestamp": "2026-11-20T08:12:44Z",
            "labels": labels,
            "managedFields": [
                {"apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kubelet", "operation": "Update", "time": "2026-11-20T08:12:44Z",
                 "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:node.alpha.kubernetes.io/ttl": {}, "f:volumes.kubernetes.io/controller-managed-attach-detach": {}}, "f:labels": label_fields}}},
                {"apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kubelet", "operation": "Update", "subresource": "status", "time": "2026-12-01T10:00:00Z",
                 "fieldsV1": {"f:status": {
                    "f:allocatable": {"f:cpu": {}, "f:ephemeral-storage": {}, "f:memory": {}, "f:nvidia.com/gpu": {}, "f:rdma/ib": {}},
                    "f:capacity": {"f:cpu": {}, "f:ephemeral-storage": {}, "f:memory": {}, "f:nvidia.com/gpu": {}, "f:rdma/ib": {}},
                    "f:conditions": conditions.iter().map(|c| condition_fields(c)).collect::<serde_json::Map<_, _>>(),
                    "f:images": {}, "f:nodeInfo": {"f:bootID": {}, "f:containerRuntimeVersion": {}, "f:kernelVersion": {}, "f:kubeProxyVersion": {}, "f:kubeletVersion": {}, "f:machineID": {}, "f:osImage": {}, "f:systemUUID": {}}}}},
                {"apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kelvin", "operation": "Apply", "time": "2026-12-01T09:00:00Z",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:kelvin.dev/pool": {}, "f:kelvin.dev/cooling-zone": {}, "f:kelvin.dev/fabric": {}, "f:network.topology.nvidia.com/leaf": {}, "f:network.topology.nvidia.com/spine": {}}}}},
                {"apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "nfd-worker", "operation": "Update", "time": "2026-11-20T08:14:02Z",
                 "fieldsV1": {"f:metadata": {"f:annotations": {"f:nfd.node.kubernetes.io/feature-labels": {}}}}}
            ],
            "name": name,
            "resourceVersion": format!("{}", 48_000_000 + index),
            "uid": format!("{:08x}-6f1e-4c4b-9a51-{:012x}", index, index * 2_654_435_761 % (1 << 48))
        },
        "spec": {
            "podCIDR": format!("10.{}.{}.0/24", 64 + index / 256 % 64, index % 256),
            "podCIDRs": [format!("10.{}.{}.0/24", 64 + index / 256 % 64, index % 256)],
            "providerID": format!("baremetal://{name}"),
            "taints": node.taints.iter().map(|t| json!({"key": t.key, "value": t.value, "effect": t.effect})).collect::<Vec<_>>()
        },
        "status": {
            "addresses": [{"address": format!("10.1.{}.{}", index / 256 % 256, index % 256), "type": "InternalIP"}, {"address": name, "type": "Hostname"}],
            "allocatable": {"cpu": "220", "ephemeral-storage": "28Ti", "hugepages-1Gi": "0", "memory": "2011Gi", "nvidia.com/gpu": "8", "pods": "110", "rdma/ib": "64"},
            "capacity": {"cpu": "224", "ephemeral-storage": "30Ti", "hugepages-1Gi": "0", "memory": "2063Gi", "nvidia.com/gpu": "8", "pods": "110", "rdma/ib": "64"},
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": images,
            "nodeInfo": {"architecture": "amd64", "bootID": format!("{index:08x}-b0c1-4d2e-8f3a-5b6c7d8e9f00"), "containerRuntimeVersion": "containerd://1.7.13",
                "kernelVersion": "5.15.0-105-generic", "kubeProxyVersion": "v1.36.3", "kubeletVersion": "v1.36.3", "machineID": format!("{index:032x}"),
                "operatingSystem": "linux", "osImage": "Ubuntu 22.04.4 LTS", "systemUUID": format!("{index:08x}-0000-0000-0000-000000000000")}
        }
    })
}

/// Writes the spec of `nodes` nodes and its `kubectl get nodes -o json` inventory (pretty, as
/// kubectl prints it).
fn write(nodes: u64, spec_path: &Path, inventory_path: &Path) {
    let text = spec(nodes);
    std::fs::write(spec_path, &text).unwrap();
    let (mut clusters, diagnostics) = load::load_gpu_clusters("bench.yaml", text.as_bytes());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let simulated = simulate(&clusters.remove(0).0.spec);
    let mut out = BufWriter::new(std::fs::File::create(inventory_path).unwrap());
    out.write_all(b"{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n")
        .unwrap();
    for (index, node) in simulated.iter().enumerate() {
        if index > 0 {
            out.write_all(b",\n").unwrap();
        }
        serde_json::to_writer_pretty(&mut out, &kube_node(index, node)).unwrap();
    }
    out.write_all(b"\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n")
        .unwrap();
    out.flush().unwrap();
}

/// Reads `file` as `kelvin plan --inventory` does, and prints the figures.
fn read(file: &Path) {
    let bytes = std::fs::metadata(file).unwrap().len();
    let start = Instant::now();
    let cpu_start = cpu_ms();
    let reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(file).unwrap());
    let nodes = read_json_inventory(&file.display().to_string(), reader).unwrap();
    let elapsed = start.elapsed();
    let cpu = cpu_ms() - cpu_start;
    println!(
        "read {:>6} nodes  {:>6.1} MB of JSON ({:>4.1} KB/node)  wall {:>6.0} ms  cpu {:>6.0} ms  {:>5.0} MB/s  peak RSS {:>6.1} MiB",
        nodes.len(),
        bytes as f64 / 1e6,
        bytes as f64 / 1e3 / nodes.len() as f64,
        elapsed.as_secs_f64() * 1000.0,
        cpu,
        bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        peak_rss_mib()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--write") {
        write(
            args[at + 1].parse().unwrap(),
            Path::new(&args[at + 2]),
            Path::new(&args[at + 3]),
        );
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "--read") {
        read(Path::new(&args[at + 1]));
        return;
    }
    let dir = std::env::var_os("KELVIN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("kelvin-bench-inventory"));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    println!("kubectl get nodes -o json inventories, streamed; one child process per row");
    for size in SIZES {
        let inventory = dir.join(format!("nodes-{size}.json"));
        if !inventory.exists() {
            write(size, &dir.join(format!("spec-{size}.yaml")), &inventory);
        }
        let status = Command::new(&exe)
            .args(["--read", &inventory.display().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

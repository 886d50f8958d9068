//! What a production GPU node carries besides what Kelvin reads, so that benchmarks measure
//! objects of a real size (a Node of a DGX/HGX H100 site is 10-20 KB of JSON): the labels of
//! node-feature-discovery and NVIDIA's GPU feature discovery (names as those projects document
//! them), the annotations kubelet, NFD, the CSI node plugin and the CNI write, and
//! `status.images` (kubelet reports up to 50 images; a GPU node holds the GPU Operator's,
//! the CNI's and a few training images), `status.nodeInfo`. Only status fields kwok's
//! node-initialize stage does not overwrite are set.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerImage, Node, NodeSystemInfo};

/// Adds production-like labels, annotations, images and system info to `node` (the
/// `index`-th of its set: some values vary per node, as machine IDs and driver builds do).
pub fn dress(node: &mut Node, index: usize) {
    let name = node.metadata.name.clone().unwrap_or_default();
    let labels = node.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (key, value) in feature_labels() {
        labels.entry(key).or_insert(value);
    }
    let annotations = node.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let features: Vec<String> = feature_labels()
        .into_iter()
        .filter_map(|(k, _)| {
            k.strip_prefix("feature.node.kubernetes.io/")
                .map(str::to_owned)
        })
        .collect();
    for (key, value) in [
        ("node.alpha.kubernetes.io/ttl", "0".to_owned()),
        (
            "volumes.kubernetes.io/controller-managed-attach-detach",
            "true".to_owned(),
        ),
        ("nfd.node.kubernetes.io/feature-labels", features.join(",")),
        (
            "nfd.node.kubernetes.io/master.version",
            "v0.17.3".to_owned(),
        ),
        (
            "csi.volume.kubernetes.io/nodeid",
            format!(r#"{{"csi.weka.io":"{name}","nfs.csi.k8s.io":"{name}"}}"#),
        ),
        (
            "projectcalico.org/IPv4Address",
            format!(
                "10.{}.{}.{}/16",
                16 + index / 65536 % 16,
                index / 256 % 256,
                index % 256
            ),
        ),
        (
            "projectcalico.org/IPv4VXLANTunnelAddr",
            format!("192.168.{}.{}", index / 256 % 256, index % 256),
        ),
        ("nvidia.com/gpu-driver-upgrade-enabled", "true".to_owned()),
        (
            "kubeadm.alpha.kubernetes.io/cri-socket",
            "unix:///run/containerd/containerd.sock".to_owned(),
        ),
    ] {
        annotations.entry(key.to_owned()).or_insert(value);
    }
    let status = node.status.get_or_insert_with(Default::default);
    status.images = Some(images());
    status.node_info = Some(NodeSystemInfo {
        architecture: "amd64".into(),
        boot_id: format!("{:08x}-1f2e-4d3c-9b8a-{:012x}", index, index * 7919),
        container_runtime_version: "containerd://1.7.27".into(),
        kernel_version: "5.15.0-1063-nvidia".into(),
        kube_proxy_version: String::new(),
        kubelet_version: "v1.34.2".into(),
        // Never all digits: kwok's templates would render it as a YAML number.
        machine_id: format!("{:031x}e", index as u128 * 0x9e37_79b9_7f4a_7c15),
        operating_system: "linux".into(),
        os_image: "Ubuntu 22.04.5 LTS".into(),
        system_uuid: format!("4c4c4544-0042-{:04x}-8051-{:012x}", index % 65536, index),
        swap: None,
    });
}

/// NFD's and GPU feature discovery's labels of an HGX H100 node (a subset of the ~100 a
/// real one carries; names from kubernetes-sigs/node-feature-discovery docs and
/// NVIDIA/gpu-feature-discovery's README).
fn feature_labels() -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = [
        ("nvidia.com/cuda.driver.major", "550"),
        ("nvidia.com/cuda.driver.minor", "127"),
        ("nvidia.com/cuda.driver.rev", "08"),
        ("nvidia.com/cuda.runtime.major", "12"),
        ("nvidia.com/cuda.runtime.minor", "4"),
        ("nvidia.com/gfd.timestamp", "1733000000"),
        ("nvidia.com/gpu.compute.major", "9"),
        ("nvidia.com/gpu.compute.minor", "0"),
        ("nvidia.com/gpu.deploy.container-toolkit", "true"),
        ("nvidia.com/gpu.deploy.dcgm", "true"),
        ("nvidia.com/gpu.deploy.dcgm-exporter", "true"),
        ("nvidia.com/gpu.deploy.device-plugin", "true"),
        ("nvidia.com/gpu.deploy.driver", "pre-installed"),
        ("nvidia.com/gpu.deploy.gpu-feature-discovery", "true"),
        ("nvidia.com/gpu.deploy.node-status-exporter", "true"),
        ("nvidia.com/gpu.deploy.operator-validator", "true"),
        ("nvidia.com/gpu.family", "hopper"),
        ("nvidia.com/gpu.machine", "DGXH100"),
        ("nvidia.com/gpu.memory", "81559"),
        ("nvidia.com/gpu.mode", "compute"),
        ("nvidia.com/gpu.present", "true"),
        ("nvidia.com/gpu.replicas", "1"),
        ("nvidia.com/gpu.sharing-strategy", "none"),
        ("nvidia.com/mig.capable", "true"),
        ("nvidia.com/mig.config.state", "success"),
        ("nvidia.com/mig.strategy", "single"),
        ("nvidia.com/mps.capable", "false"),
        ("feature.node.kubernetes.io/cpu-cpuid.ADX", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AESNI", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AMXBF16", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AMXINT8", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AMXTILE", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AVX", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AVX2", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AVX512BF16", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AVX512BW", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AVX512CD", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AVX512DQ", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AVX512F", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AVX512FP16", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.AVX512VNNI", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.FMA3", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.SHA", "true"),
        ("feature.node.kubernetes.io/cpu-cpuid.VMX", "true"),
        (
            "feature.node.kubernetes.io/cpu-hardware_multithreading",
            "true",
        ),
        ("feature.node.kubernetes.io/cpu-model.family", "6"),
        ("feature.node.kubernetes.io/cpu-model.id", "143"),
        ("feature.node.kubernetes.io/cpu-model.vendor_id", "Intel"),
        ("feature.node.kubernetes.io/cpu-pstate.status", "active"),
        ("feature.node.kubernetes.io/cpu-pstate.turbo", "true"),
        (
            "feature.node.kubernetes.io/kernel-config.NO_HZ_IDLE",
            "true",
        ),
        (
            "feature.node.kubernetes.io/kernel-version.full",
            "5.15.0-1063-nvidia",
        ),
        ("feature.node.kubernetes.io/kernel-version.major", "5"),
        ("feature.node.kubernetes.io/kernel-version.minor", "15"),
        ("feature.node.kubernetes.io/memory-numa", "true"),
        ("feature.node.kubernetes.io/network-sriov.capable", "true"),
        ("feature.node.kubernetes.io/pci-10de.present", "true"),
        ("feature.node.kubernetes.io/pci-15b3.present", "true"),
        ("feature.node.kubernetes.io/pci-15b3.sriov.capable", "true"),
        ("feature.node.kubernetes.io/rdma.available", "true"),
        ("feature.node.kubernetes.io/rdma.capable", "true"),
        (
            "feature.node.kubernetes.io/storage-nonrotationaldisk",
            "true",
        ),
        ("feature.node.kubernetes.io/system-os_release.ID", "ubuntu"),
        (
            "feature.node.kubernetes.io/system-os_release.VERSION_ID",
            "22.04",
        ),
        ("node.kubernetes.io/instance-type", "dgx-h100"),
        ("topology.kubernetes.io/region", "us-central"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    labels.push((
        "nvidia.com/gpu.product.full".into(),
        "NVIDIA-H100-80GB-HBM3".into(),
    ));
    labels
}

/// Images kubelet reports on a GPU node: the GPU Operator's, the CNI's, storage, and training
/// images (sizes in bytes, as `status.images[].sizeBytes`).
fn images() -> Vec<ContainerImage> {
    [
        ("nvcr.io/nvidia/pytorch:24.10-py3", 10_941_000_000_i64),
        ("nvcr.io/nvidia/nemo:24.09", 18_120_000_000),
        ("nvcr.io/nvidia/tritonserver:24.10-py3", 7_880_000_000),
        (
            "nvcr.io/nvidia/cloud-native/k8s-driver-manager:v0.6.10",
            190_000_000,
        ),
        ("nvcr.io/nvidia/k8s-device-plugin:v0.17.0", 130_000_000),
        (
            "nvcr.io/nvidia/k8s/container-toolkit:v1.17.0-ubuntu20.04",
            140_000_000,
        ),
        (
            "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.8-3.6.0-ubuntu22.04",
            350_000_000,
        ),
        (
            "nvcr.io/nvidia/cloud-native/gpu-operator-validator:v24.9.0",
            250_000_000,
        ),
        ("nvcr.io/nvidia/gpu-feature-discovery:v0.8.2", 120_000_000),
        (
            "nvcr.io/nvidia/cloud-native/k8s-mig-manager:v0.10.0-ubuntu20.04",
            160_000_000,
        ),
        (
            "registry.k8s.io/nfd/node-feature-discovery:v0.17.3",
            90_000_000,
        ),
        ("docker.io/calico/node:v3.29.1", 380_000_000),
        ("docker.io/calico/cni:v3.29.1", 210_000_000),
        ("docker.io/calico/pod2daemon-flexvol:v3.29.1", 14_000_000),
        ("registry.k8s.io/kube-proxy:v1.34.2", 30_000_000),
        (
            "ghcr.io/mellanox/network-operator-init-container:v0.0.3",
            40_000_000,
        ),
        (
            "nvcr.io/nvidia/mellanox/doca-driver:24.10-0.7.0.0-0",
            1_200_000_000,
        ),
        ("ghcr.io/k8snetworkplumbingwg/multus-cni:v4.1.0", 70_000_000),
        (
            "ghcr.io/k8snetworkplumbingwg/sriov-network-device-plugin:v3.7.0",
            60_000_000,
        ),
        ("quay.io/prometheus/node-exporter:v1.8.2", 25_000_000),
        ("docker.io/fluent/fluent-bit:3.1.9", 85_000_000),
        (
            "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.12.0",
            12_000_000,
        ),
        ("registry.k8s.io/sig-storage/nfsplugin:v4.9.0", 110_000_000),
        ("registry.k8s.io/pause:3.10", 320_000),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (name, size))| {
        let (repo, _) = name.rsplit_once(':').unwrap_or((name, ""));
        ContainerImage {
            names: Some(vec![
                format!(
                    "{repo}@sha256:{:064x}",
                    (i as u128 + 1) * 0x517c_c1b7_2722_0a95
                ),
                name.to_owned(),
            ]),
            size_bytes: Some(size),
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GpuNodes;

    #[test]
    fn a_dressed_node_is_the_size_of_a_production_gpu_node() {
        let set = GpuNodes::new("r", 2);
        let mut node = set.node(1);
        let plain = serde_json::to_vec(&node).unwrap().len();
        dress(&mut node, 1);
        let dressed = serde_json::to_vec(&node).unwrap().len();
        // Plain kwok nodes are a few hundred bytes; production GPU nodes 10-20 KB (managedFields,
        // which the API server adds, are not counted here).
        assert!(plain < 2_000, "{plain}");
        assert!((8_000..20_000).contains(&dressed), "{dressed}");
        let labels = node.metadata.labels.unwrap();
        assert!(labels.len() > 60, "{}", labels.len());
        assert_eq!(
            labels["kelvin.dev/sku"], "hgx-h100",
            "the set's own labels stay"
        );
    }
}

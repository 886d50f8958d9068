use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A rail-optimized, non-blocking fat-tree fabric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.switchRadix % 2 == 0")
        .message("switchRadix must be even: a switch uses half its ports down and half up")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("self.type != 'Ethernet' || !has(self.rdma)")
        .message("rdma needs an RDMA-capable fabric: use type InfiniBand or RoCE, or remove rdma")
        .reason(Reason::FieldValueInvalid),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fabric {
    /// Fabric name, a DNS label. Nodes on the fabric get the label `kelvin.dev/fabric=<name>`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Link layer of the fabric.
    #[serde(rename = "type")]
    pub fabric_type: FabricType,

    /// Speed of one link, in Gb/s (400 for NDR InfiniBand).
    #[schemars(range(min = 1, max = 3200))]
    pub link_gbps: u32,

    /// NICs per node, one per rail (8 on an HGX H100 server).
    #[schemars(range(min = 1, max = 32))]
    pub rails_per_node: u32,

    /// Ports per switch (64 on an NVIDIA Quantum-2 switch).
    #[schemars(range(min = 4, max = 1024))]
    pub switch_radix: u32,

    /// Nodes under one leaf group, a scalable unit (32 in a DGX SuperPOD). Each leaf group has
    /// one leaf switch per rail, so this must fit in switchRadix / 2 down-ports.
    #[schemars(range(min = 1, max = 512))]
    pub nodes_per_leaf: u32,

    /// GPUs sharing one NVLink domain: 8 for HGX, 72 for NVL72. A domain spans whole nodes,
    /// so this is a multiple of each attached pool's accelerator.perNode.
    #[serde(default = "default_nvlink_domain_size")]
    #[schemars(range(min = 1, max = 1152))]
    pub nvlink_domain_size: u32,

    /// RDMA shared device plugin for this fabric's NICs. Omit to run none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdma: Option<Rdma>,

    /// Where a node's position in the fabric comes from, and which labels carry its topology.
    #[serde(default)]
    pub topology: FabricTopology,
}

fn default_nvlink_domain_size() -> u32 {
    8
}

/// Link layer of a fabric.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FabricType {
    /// InfiniBand (e.g. NVIDIA Quantum-2 NDR).
    InfiniBand,
    /// RDMA over Converged Ethernet.
    RoCE,
    /// Plain Ethernet, no RDMA.
    Ethernet,
}

/// The RDMA shared device plugin's settings for one fabric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rdma {
    /// Extended resource pods request, as `<prefix>/<name>` (e.g. `rdma/ib`).
    #[schemars(
        length(min = 3, max = 253),
        regex(pattern = r"^[a-z0-9.-]+/[A-Za-z0-9._-]+$")
    )]
    pub resource_name: String,

    /// Network interface names (or `prefix*` patterns) the plugin exposes.
    #[schemars(length(min = 1, max = 32))]
    pub interfaces: Vec<String>,

    /// How many pods may share one HCA.
    #[serde(default = "default_hca_shared_pods")]
    #[schemars(range(min = 1, max = 1000))]
    pub hca_shared_pods: u32,

    /// Plugin image; defaults to the Mellanox RDMA shared device plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
}

fn default_hca_shared_pods() -> u32 {
    64
}

/// Where node positions come from and which labels carry the computed topology.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FabricTopology {
    /// Node label whose integer value is the node's position in the fabric (set by the
    /// provisioning system, e.g. a rack slot index). Without it, the number at the end of the
    /// node's name is its position. leaf = position / nodesPerLeaf; spine and core likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 317))]
    pub position_label: Option<String>,

    /// Label keys Kelvin writes for the topology. Defaults are NVIDIA Topograph's, so Kueue
    /// and Volcano set-ups written for Topograph work unchanged.
    #[serde(default)]
    pub labels: TopologyLabels,
}

/// Label keys carrying a node's place in the fabric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologyLabels {
    /// NVLink domain of the node.
    #[serde(default = "default_accelerator_label")]
    #[schemars(length(min = 1, max = 317))]
    pub accelerator: String,
    /// Leaf group (scalable unit) of the node.
    #[serde(default = "default_leaf_label")]
    #[schemars(length(min = 1, max = 317))]
    pub leaf: String,
    /// Spine group (block) of the node; written when the fabric has a spine tier.
    #[serde(default = "default_spine_label")]
    #[schemars(length(min = 1, max = 317))]
    pub spine: String,
    /// Core group of the node; written when the fabric has a core tier.
    #[serde(default = "default_core_label")]
    #[schemars(length(min = 1, max = 317))]
    pub core: String,
}

impl Default for TopologyLabels {
    fn default() -> Self {
        Self {
            accelerator: default_accelerator_label(),
            leaf: default_leaf_label(),
            spine: default_spine_label(),
            core: default_core_label(),
        }
    }
}

fn default_accelerator_label() -> String {
    "network.topology.nvidia.com/accelerator".into()
}
fn default_leaf_label() -> String {
    "network.topology.nvidia.com/leaf".into()
}
fn default_spine_label() -> String {
    "network.topology.nvidia.com/spine".into()
}
fn default_core_label() -> String {
    "network.topology.nvidia.com/core".into()
}

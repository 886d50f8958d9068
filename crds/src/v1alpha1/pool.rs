use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A pool of identical GPU servers, selected by node labels.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.devicePlugin.managedBy != 'GpuOperator' || self.accelerator.vendor == 'nvidia'")
        .message("devicePlugin.managedBy GpuOperator needs accelerator.vendor nvidia: use Kelvin or None for other vendors")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("self.accelerator.vendor != 'custom' || self.devicePlugin.managedBy != 'Kelvin' || has(self.devicePlugin.image)")
        .message("devicePlugin.image is required for a custom accelerator managed by Kelvin: Kelvin ships no default plugin for it")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.sharing.strategy != 'MIG' || self.accelerator.vendor == 'nvidia'")
        .message("sharing.strategy MIG needs accelerator.vendor nvidia")
        .reason(Reason::FieldValueInvalid),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuPool {
    /// Pool name, a DNS label. Member nodes get the label `kelvin.dev/pool=<name>`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Selects the pool's nodes. A node matched by two pools is left alone (never touched) and
    /// reported by name; the other nodes still converge.
    pub node_selector: LabelSelector,

    /// Design capacity in nodes (servers, not GPUs), used for power, cooling and fabric
    /// planning (and for simulated nodes when planning offline without an inventory). At most
    /// 200,000 per pool and for the whole site: the largest Kubernetes clusters run 65,000-130,000
    /// nodes.
    #[schemars(range(min = 0, max = super::MAX_SITE_NODES))]
    pub expected_nodes: u32,

    /// The GPUs (or other accelerators) in each node.
    pub accelerator: Accelerator,

    /// Power of everything in a node but its accelerators (CPUs, NICs, fans, drives), in watts.
    #[schemars(range(min = 0, max = 100000))]
    pub host_power_watts: u32,

    /// Name of the fabric (in spec.fabrics) the pool's nodes attach to.
    #[schemars(length(min = 1, max = 63))]
    pub fabric: String,

    /// How pods share the pool's GPUs.
    #[serde(default)]
    pub sharing: Sharing,

    /// Who runs the device plugin on the pool's nodes.
    #[serde(default)]
    pub device_plugin: DevicePlugin,

    /// Extra labels Kelvin puts on every node of the pool.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Taints Kelvin puts on every node of the pool, merged with the node's other taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub taints: Vec<PoolTaint>,

    /// Most nodes of the pool that may be unavailable at once (NotReady, or in a disruptive
    /// change Kelvin started: a new NoSchedule taint, out of service, a MIG layout): a count
    /// or a percentage of the pool's nodes, rounded up, at least 1.
    #[serde(
        default = "default_max_unavailable",
        deserialize_with = "max_unavailable_or_default"
    )]
    // Bounds the CEL rule's cost (the API server rejects unbounded strings); "100%" is 4.
    #[schemars(extend("maxLength" = 4))]
    #[x_kube(validation = Rule::new("string(self).matches('^([1-9][0-9]*|(100|[1-9][0-9]?)%)$')")
        .message("maxUnavailable must be a count of at least 1 or a percentage from 1% to 100%")
        .reason(Reason::FieldValueInvalid))]
    pub max_unavailable: IntOrString,
}

fn default_max_unavailable() -> IntOrString {
    IntOrString::String("5%".into())
}

/// The schema lets `maxUnavailable: null` through (IntOrString is nullable); read it as unset.
fn max_unavailable_or_default<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<IntOrString, D::Error> {
    Ok(Option::<IntOrString>::deserialize(deserializer)?.unwrap_or_else(default_max_unavailable))
}

/// The accelerators in each node of a pool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.minPowerWatts <= self.tdpWatts")
        .message("minPowerWatts must not exceed tdpWatts")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("self.vendor != 'custom' || has(self.resourceName)")
        .message("resourceName is required when vendor is custom: name the extended resource the device plugin advertises")
        .reason(Reason::FieldValueRequired),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Accelerator {
    /// Vendor; selects the default device plugin and resource name.
    pub vendor: Vendor,

    /// Model, e.g. `H100-SXM5-80GB`. MIG profiles are checked against it.
    #[schemars(length(min = 1, max = 63))]
    pub model: String,

    /// Accelerators per node (8 on an HGX board).
    #[schemars(range(min = 1, max = 128))]
    pub per_node: u32,

    /// Thermal design power of one accelerator, in watts (700 for H100 SXM5).
    #[schemars(range(min = 1, max = 5000))]
    pub tdp_watts: u32,

    /// Lowest power cap the part accepts, in watts (200 for H100 SXM5).
    #[schemars(range(min = 1, max = 5000))]
    pub min_power_watts: u32,

    /// Extended resource the device plugin advertises. Defaults per vendor: nvidia.com/gpu,
    /// amd.com/gpu, gpu.intel.com/i915. Required for custom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 3, max = 253),
        regex(pattern = r"^[a-z0-9.-]+/[A-Za-z0-9._-]+$")
    )]
    pub resource_name: Option<String>,
}

/// Accelerator vendor.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// NVIDIA GPUs; device plugin nvidia/k8s-device-plugin.
    Nvidia,
    /// AMD Instinct GPUs; device plugin rocm/k8s-device-plugin.
    Amd,
    /// Intel GPUs; device plugin intel/intel-gpu-plugin.
    Intel,
    /// Anything else: resourceName and devicePlugin.image are yours to set.
    Custom,
}

/// How pods share a pool's GPUs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("(self.strategy == 'TimeSlicing' || self.strategy == 'MPS') == has(self.replicas)")
        .message("replicas is required for TimeSlicing and MPS, and only allowed with them")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("(self.strategy == 'MIG') == has(self.profile)")
        .message("profile is required for MIG, and only allowed with it")
        .reason(Reason::FieldValueInvalid),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sharing {
    /// Exclusive (one pod per GPU), TimeSlicing, MPS or MIG.
    pub strategy: SharingStrategy,

    /// Pods per GPU for TimeSlicing and MPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub replicas: Option<u32>,

    /// MIG profile every GPU is split into, e.g. `1g.10gb` (checked against accelerator.model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub profile: Option<String>,
}

impl Default for Sharing {
    fn default() -> Self {
        Self {
            strategy: SharingStrategy::Exclusive,
            replicas: None,
            profile: None,
        }
    }
}

/// GPU sharing strategy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharingStrategy {
    /// One pod per GPU.
    Exclusive,
    /// The device plugin advertises each GPU `replicas` times; no isolation.
    TimeSlicing,
    /// CUDA MPS with `replicas` clients per GPU.
    #[serde(rename = "MPS")]
    Mps,
    /// Multi-Instance GPU: every GPU split into `profile` instances.
    #[serde(rename = "MIG")]
    Mig,
}

/// Who runs the device plugin on a pool's nodes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DevicePlugin {
    /// Kelvin (a DaemonSet per pool), GpuOperator (NVIDIA GPU Operator's per-node config
    /// label and ConfigMap), or None (someone else does).
    #[serde(default)]
    pub managed_by: DevicePluginManager,

    /// Image of the plugin Kelvin runs; defaults per vendor. Required for custom accelerators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Namespace of the GPU Operator, where its device-plugin ConfigMap lives
    /// (managedBy GpuOperator only).
    #[serde(default = "default_gpu_operator_namespace")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub gpu_operator_namespace: String,
}

impl Default for DevicePlugin {
    fn default() -> Self {
        Self {
            managed_by: DevicePluginManager::default(),
            image: None,
            gpu_operator_namespace: default_gpu_operator_namespace(),
        }
    }
}

fn default_gpu_operator_namespace() -> String {
    "gpu-operator".into()
}

/// Who manages a pool's device plugin.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DevicePluginManager {
    /// Kelvin runs a device-plugin DaemonSet pinned to the pool.
    #[default]
    Kelvin,
    /// The NVIDIA GPU Operator runs it; Kelvin writes its config and per-node config label.
    GpuOperator,
    /// Someone else runs it.
    None,
}

/// A taint on every node of a pool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolTaint {
    /// Taint key, a qualified name.
    #[schemars(
        length(min = 1, max = 317),
        regex(
            pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
        )
    )]
    pub key: String,
    /// Taint value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: TaintEffect,
}

/// Effect of a taint.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum TaintEffect {
    /// New pods without a toleration are not scheduled.
    NoSchedule,
    /// The scheduler avoids the node.
    PreferNoSchedule,
    /// Running pods without a toleration are evicted.
    NoExecute,
}

impl TaintEffect {
    /// The effect as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSchedule => "NoSchedule",
            Self::PreferNoSchedule => "PreferNoSchedule",
            Self::NoExecute => "NoExecute",
        }
    }
}

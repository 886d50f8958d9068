//! Names Kelvin writes into the cluster. They are API: change them only with a migration.

/// The one field manager for every server-side apply Kelvin makes.
pub const FIELD_MANAGER: &str = "kelvin";
/// Namespace of Kelvin's per-pool and per-fabric workloads (device plugins).
pub const NAMESPACE: &str = "kelvin-system";

/// `app.kubernetes.io/managed-by` on everything Kelvin creates.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "kelvin";
/// The GpuCluster an object belongs to.
pub const CLUSTER_LABEL: &str = "kelvin.dev/cluster";
/// `app.kubernetes.io/name` of Kelvin's workloads.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";

/// A node's pool.
pub const POOL_LABEL: &str = "kelvin.dev/pool";
/// A node's cooling zone.
pub const ZONE_LABEL: &str = "kelvin.dev/cooling-zone";
/// A node's fabric.
pub const FABRIC_LABEL: &str = "kelvin.dev/fabric";
/// GPU power cap a node must apply (Degraded cooling), in watts.
pub const POWER_CAP_LABEL: &str = "kelvin.dev/gpu-power-cap-watts";
/// A tenant's namespaces.
pub const TENANT_LABEL: &str = "kelvin.dev/tenant";
/// Taint on nodes Kelvin takes out of service (cooling); value says why.
pub const OUT_OF_SERVICE_TAINT: &str = "kelvin.dev/out-of-service";
/// NVIDIA GPU Operator: which device-plugin config a node uses.
pub const GPU_OPERATOR_CONFIG_LABEL: &str = "nvidia.com/device-plugin.config";
/// NVIDIA GPU Operator (mig-manager): the MIG layout of a node.
pub const MIG_CONFIG_LABEL: &str = "nvidia.com/mig.config";
/// Label the node agent sets once a node's GPUs run at the cap (value: the watts applied).
pub const POWER_CAP_APPLIED_LABEL: &str = "kelvin.dev/gpu-power-cap-applied";
/// Node annotation: the taints Kelvin added (`key:effect`, comma-separated), so it removes only
/// those — never a foreign taint with the same key — and removes one the spec dropped.
pub const OWNED_TAINTS_ANNOTATION: &str = "kelvin.dev/owned-taints";
/// Node annotation: a disruptive change Kelvin started and that has not settled
/// (`<what>@<RFC3339 time>`). It lives on the node so a restarted operator counts it.
pub const TRANSITION_ANNOTATION: &str = "kelvin.dev/transition";
/// Finalizer on the GpuCluster: removing it means Kelvin cleaned its nodes and objects.
pub const FINALIZER: &str = "kelvin.dev/cleanup";

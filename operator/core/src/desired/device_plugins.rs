//! Per pool: the device plugin's ConfigMap (sharing strategy) and a DaemonSet pinned to the
//! pool, or, with `managedBy: GpuOperator`, one GPU Operator config entry per pool.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::{DaemonSet, DaemonSetUpdateStrategy, RollingUpdateDaemonSet},
    core::v1::{Capabilities, ConfigMap, SecurityContext, Toleration},
};
use kelvin_crds::v1alpha1::{
    DevicePluginManager, GpuClusterSpec, GpuPool, SharingStrategy, Vendor,
};
use serde_json::json;

use super::{BuildError, Owner, node_agent::NodeAgent};
use crate::{
    constants::{NAMESPACE, OUT_OF_SERVICE_TAINT, POOL_LABEL},
    model::devices,
};

pub(super) struct Built {
    pub config_maps: Vec<ConfigMap>,
    pub daemon_sets: Vec<DaemonSet>,
}

/// Name of the pool's device-plugin ConfigMap and DaemonSet.
pub fn plugin_name(pool: &str) -> String {
    format!("kelvin-device-plugin-{pool}")
}

/// Name of the ConfigMap holding every GpuOperator-managed pool's config.
pub const GPU_OPERATOR_CONFIG_MAP: &str = "kelvin-device-plugin-configs";

const CONFIG_DIR: &str = "/etc/kelvin/device-plugin";

pub(super) fn build(spec: &GpuClusterSpec, owner: &Owner) -> Result<Built, BuildError> {
    let mut built = Built {
        config_maps: Vec::new(),
        daemon_sets: Vec::new(),
    };
    let mut operator_configs: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for pool in &spec.gpu_pools {
        let config = plugin_config(pool)?;
        match pool.device_plugin.managed_by {
            DevicePluginManager::None => {}
            DevicePluginManager::GpuOperator => {
                operator_configs
                    .entry(&pool.device_plugin.gpu_operator_namespace)
                    .or_default()
                    .insert(pool.name.clone(), config);
            }
            DevicePluginManager::Kelvin => {
                let Some(image) = devices::plugin_image(pool) else {
                    continue;
                };
                let name = plugin_name(&pool.name);
                built.config_maps.push(ConfigMap {
                    metadata: owner.meta(&name, Some(NAMESPACE)),
                    data: Some(BTreeMap::from([("config.yaml".to_owned(), config)])),
                    ..ConfigMap::default()
                });
                built
                    .daemon_sets
                    .push(daemon_set(pool, &name, image, owner));
            }
        }
    }
    for (namespace, data) in operator_configs {
        built.config_maps.push(ConfigMap {
            metadata: owner.meta(GPU_OPERATOR_CONFIG_MAP, Some(namespace)),
            data: Some(data),
            ..ConfigMap::default()
        });
    }
    Ok(built)
}

/// The plugin's config file. NVIDIA's format (k8s-device-plugin `config.yaml`, also read by
/// the GPU Operator); other vendors get the same facts, which their args carry too.
fn plugin_config(pool: &GpuPool) -> Result<String, BuildError> {
    let resource = devices::resource_name(&pool.accelerator);
    let sharing = &pool.sharing;
    let replicas = sharing.replicas.unwrap_or(1);
    let document = match (pool.accelerator.vendor, sharing.strategy) {
        (Vendor::Nvidia, SharingStrategy::Exclusive) => {
            json!({"version": "v1", "flags": {"migStrategy": "none"}})
        }
        (Vendor::Nvidia, SharingStrategy::Mig) => {
            json!({"version": "v1", "flags": {"migStrategy": "single"}})
        }
        (Vendor::Nvidia, SharingStrategy::TimeSlicing) => json!({
            "version": "v1", "flags": {"migStrategy": "none"},
            "sharing": {"timeSlicing": {"resources": [{"name": resource, "replicas": replicas}]}}
        }),
        (Vendor::Nvidia, SharingStrategy::Mps) => json!({
            "version": "v1", "flags": {"migStrategy": "none"},
            "sharing": {"mps": {"resources": [{"name": resource, "replicas": replicas}]}}
        }),
        (_, strategy) => {
            json!({"resourceName": resource, "sharing": format!("{strategy:?}"), "replicas": replicas})
        }
    };
    serde_saphyr::to_string(&document).map_err(|source| BuildError::SerializeYaml {
        what: format!("the device-plugin config of pool {}", pool.name),
        source,
    })
}

fn args(pool: &GpuPool) -> Vec<String> {
    match pool.accelerator.vendor {
        Vendor::Nvidia => vec![format!("--config-file={CONFIG_DIR}/config.yaml")],
        Vendor::Intel => match pool.sharing.strategy {
            SharingStrategy::TimeSlicing => vec![format!(
                "-shared-dev-num={}",
                pool.sharing.replicas.unwrap_or(1)
            )],
            _ => Vec::new(),
        },
        Vendor::Amd | Vendor::Custom => Vec::new(),
    }
}

/// Tolerations that let a pool's node agents run on its tainted and out-of-service nodes.
pub(super) fn agent_tolerations<'a>(pools: impl Iterator<Item = &'a GpuPool>) -> Vec<Toleration> {
    let mut keys: Vec<(String, String)> = pools
        .flat_map(|pool| {
            pool.taints
                .iter()
                .map(|t| (t.key.clone(), t.effect.as_str().to_owned()))
        })
        .collect();
    keys.push((OUT_OF_SERVICE_TAINT.to_owned(), "NoSchedule".to_owned()));
    keys.push(("CriticalAddonsOnly".to_owned(), String::new()));
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|(key, effect)| Toleration {
            key: Some(key),
            operator: Some("Exists".into()),
            effect: (!effect.is_empty()).then_some(effect),
            ..Toleration::default()
        })
        .collect()
}

fn daemon_set(pool: &GpuPool, name: &str, image: &str, owner: &Owner) -> DaemonSet {
    NodeAgent {
        name: name.to_owned(),
        app: "kelvin-device-plugin",
        pinned_to: (POOL_LABEL, pool.name.clone()),
        tolerations: agent_tolerations(std::iter::once(pool)),
        container: "device-plugin",
        image: image.to_owned(),
        args: args(pool),
        security_context: SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        },
        config_dir: CONFIG_DIR,
        host_network: false,
        // A plugin restart briefly hides a node's GPUs: roll at the pool's disruption budget.
        update_strategy: Some(DaemonSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDaemonSet {
                max_unavailable: Some(pool.max_unavailable.clone()),
                max_surge: None,
            }),
        }),
    }
    .daemon_set(owner)
}

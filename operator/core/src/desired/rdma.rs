//! Per fabric with `rdma`: the RDMA shared device plugin's ConfigMap and DaemonSet, pinned to
//! the fabric's nodes.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::DaemonSet,
    core::v1::{ConfigMap, SecurityContext},
};
use kelvin_crds::v1alpha1::GpuClusterSpec;
use serde_json::json;

use super::{BuildError, Owner, device_plugins::agent_tolerations, node_agent::NodeAgent};
use crate::{
    constants::{FABRIC_LABEL, NAMESPACE},
    model::devices::images,
};

pub(super) struct Built {
    pub config_maps: Vec<ConfigMap>,
    pub daemon_sets: Vec<DaemonSet>,
}

/// Name of the fabric's RDMA plugin ConfigMap and DaemonSet.
pub fn rdma_name(fabric: &str) -> String {
    format!("kelvin-rdma-{fabric}")
}

pub(super) fn build(spec: &GpuClusterSpec, owner: &Owner) -> Result<Built, BuildError> {
    let mut built = Built {
        config_maps: Vec::new(),
        daemon_sets: Vec::new(),
    };
    for fabric in &spec.fabrics {
        let Some(rdma) = &fabric.rdma else { continue };
        let name = rdma_name(&fabric.name);
        let (prefix, resource) = rdma
            .resource_name
            .split_once('/')
            .unwrap_or(("rdma", &rdma.resource_name));
        let config = json!({
            "periodicUpdateInterval": 300,
            "configList": [{
                "resourcePrefix": prefix,
                "resourceName": resource,
                "rdmaHcaMax": rdma.hca_shared_pods,
                "selectors": {"ifNames": rdma.interfaces},
            }]
        });
        built.config_maps.push(ConfigMap {
            metadata: owner.meta(&name, Some(NAMESPACE)),
            data: Some(BTreeMap::from([(
                "config.json".to_owned(),
                serde_json::to_string_pretty(&config).map_err(|source| BuildError::Serialize {
                    what: format!("ConfigMap {name} config.json"),
                    source,
                })?,
            )])),
            ..ConfigMap::default()
        });
        let pools = spec.gpu_pools.iter().filter(|p| p.fabric == fabric.name);
        built.daemon_sets.push(
            NodeAgent {
                name,
                app: "kelvin-rdma-shared-device-plugin",
                pinned_to: (FABRIC_LABEL, fabric.name.clone()),
                tolerations: agent_tolerations(pools),
                container: "rdma-shared-device-plugin",
                image: rdma
                    .image
                    .clone()
                    .unwrap_or_else(|| images::RDMA_SHARED.to_owned()),
                args: Vec::new(),
                // The plugin opens the HCAs' character devices on the host.
                security_context: SecurityContext {
                    privileged: Some(true),
                    ..SecurityContext::default()
                },
                config_dir: "/k8s-rdma-shared-dev-plugin",
                host_network: true,
                update_strategy: None,
            }
            .daemon_set(owner),
        );
    }
    Ok(built)
}

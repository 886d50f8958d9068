//! Per fabric with `rdma`: the RDMA shared device plugin's ConfigMap and DaemonSet, pinned to
//! the fabric's nodes.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, DaemonSetSpec},
        core::v1::{
            ConfigMap, ConfigMapVolumeSource, Container, HostPathVolumeSource, PodSpec,
            PodTemplateSpec, SecurityContext, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta},
};
use kelvin_crds::{model::devices::images, v1alpha1::GpuClusterSpec};
use serde_json::json;

use super::{Owner, device_plugins::agent_tolerations};
use crate::constants::{FABRIC_LABEL, NAME_LABEL, NAMESPACE};

pub(super) struct Built {
    pub config_maps: Vec<ConfigMap>,
    pub daemon_sets: Vec<DaemonSet>,
}

/// Name of the fabric's RDMA plugin ConfigMap and DaemonSet.
pub fn rdma_name(fabric: &str) -> String {
    format!("kelvin-rdma-{fabric}")
}

pub(super) fn build(spec: &GpuClusterSpec, owner: &Owner) -> Built {
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
                serde_json::to_string_pretty(&config).unwrap_or_default(),
            )])),
            ..ConfigMap::default()
        });
        let selector_labels = BTreeMap::from([
            (
                NAME_LABEL.to_owned(),
                "kelvin-rdma-shared-device-plugin".to_owned(),
            ),
            (FABRIC_LABEL.to_owned(), fabric.name.clone()),
        ]);
        let mut pod_labels = owner.labels();
        pod_labels.extend(selector_labels.clone());
        let mut metadata = owner.meta(&name, Some(NAMESPACE));
        if let Some(labels) = metadata.labels.as_mut() {
            labels.extend(selector_labels.clone());
        }
        let pools = spec.gpu_pools.iter().filter(|p| p.fabric == fabric.name);
        built.daemon_sets.push(DaemonSet {
            metadata,
            spec: Some(DaemonSetSpec {
                selector: LabelSelector {
                    match_labels: Some(selector_labels),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(pod_labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        host_network: Some(true),
                        node_selector: Some(BTreeMap::from([(
                            FABRIC_LABEL.to_owned(),
                            fabric.name.clone(),
                        )])),
                        tolerations: Some(agent_tolerations(pools)),
                        priority_class_name: Some("system-node-critical".into()),
                        containers: vec![Container {
                            name: "rdma-shared-device-plugin".into(),
                            image: Some(
                                rdma.image
                                    .clone()
                                    .unwrap_or_else(|| images::RDMA_SHARED.to_owned()),
                            ),
                            // The plugin opens the HCAs' character devices on the host.
                            security_context: Some(SecurityContext {
                                privileged: Some(true),
                                ..SecurityContext::default()
                            }),
                            volume_mounts: Some(vec![
                                VolumeMount {
                                    name: "device-plugins".into(),
                                    mount_path: "/var/lib/kubelet/device-plugins".into(),
                                    ..VolumeMount::default()
                                },
                                VolumeMount {
                                    name: "config".into(),
                                    mount_path: "/k8s-rdma-shared-dev-plugin".into(),
                                    read_only: Some(true),
                                    ..VolumeMount::default()
                                },
                            ]),
                            ..Container::default()
                        }],
                        volumes: Some(vec![
                            Volume {
                                name: "device-plugins".into(),
                                host_path: Some(HostPathVolumeSource {
                                    path: "/var/lib/kubelet/device-plugins".into(),
                                    type_: None,
                                }),
                                ..Volume::default()
                            },
                            Volume {
                                name: "config".into(),
                                config_map: Some(ConfigMapVolumeSource {
                                    name: name.clone(),
                                    items: Some(vec![k8s_openapi::api::core::v1::KeyToPath {
                                        key: "config.json".into(),
                                        path: "config.json".into(),
                                        mode: None,
                                    }]),
                                    ..ConfigMapVolumeSource::default()
                                }),
                                ..Volume::default()
                            },
                        ]),
                        ..PodSpec::default()
                    }),
                },
                ..DaemonSetSpec::default()
            }),
            ..DaemonSet::default()
        });
    }
    built
}

//! The DaemonSet shape every node agent Kelvin runs shares (device plugins per pool, RDMA
//! plugins per fabric): pinned by one node label, tolerating the nodes' taints, registering
//! with the kubelet's device-plugin socket directory, configured by a ConfigMap.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy},
        core::v1::{
            ConfigMapVolumeSource, Container, HostPathVolumeSource, PodSpec, PodTemplateSpec,
            SecurityContext, Toleration, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta},
};

use super::Owner;
use crate::constants::{NAME_LABEL, NAMESPACE};

/// Where the kubelet expects device plugins' sockets.
const KUBELET_PLUGINS: &str = "/var/lib/kubelet/device-plugins";

/// What differs between node agents.
pub(super) struct NodeAgent {
    /// DaemonSet (and ConfigMap) name.
    pub name: String,
    /// `app.kubernetes.io/name` of the pods.
    pub app: &'static str,
    /// The node label (key, value) the agent is pinned to; also selects its pods.
    pub pinned_to: (&'static str, String),
    /// Tolerations for the nodes' taints.
    pub tolerations: Vec<Toleration>,
    /// Container name.
    pub container: &'static str,
    /// Image.
    pub image: String,
    /// Arguments (none when empty).
    pub args: Vec<String>,
    /// Container security context.
    pub security_context: SecurityContext,
    /// Where the ConfigMap is mounted.
    pub config_dir: &'static str,
    /// Whether pods use the host's network namespace.
    pub host_network: bool,
    /// Rollout strategy (None: the default).
    pub update_strategy: Option<DaemonSetUpdateStrategy>,
}

impl NodeAgent {
    pub(super) fn daemon_set(self, owner: &Owner) -> DaemonSet {
        let Self {
            name,
            app,
            pinned_to,
            tolerations,
            container,
            image,
            args,
            security_context,
            config_dir,
            host_network,
            update_strategy,
        } = self;
        let (pin_key, pin_value) = pinned_to;
        let selector_labels = BTreeMap::from([
            (NAME_LABEL.to_owned(), app.to_owned()),
            (pin_key.to_owned(), pin_value.clone()),
        ]);
        let mut pod_labels = owner.labels();
        pod_labels.extend(selector_labels.clone());
        let mut metadata = owner.meta(&name, Some(NAMESPACE));
        if let Some(labels) = metadata.labels.as_mut() {
            labels.extend(selector_labels.clone());
        }
        DaemonSet {
            metadata,
            spec: Some(DaemonSetSpec {
                selector: LabelSelector {
                    match_labels: Some(selector_labels),
                    match_expressions: None,
                },
                update_strategy,
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(pod_labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        host_network: host_network.then_some(true),
                        node_selector: Some(BTreeMap::from([(pin_key.to_owned(), pin_value)])),
                        tolerations: Some(tolerations),
                        priority_class_name: Some("system-node-critical".into()),
                        containers: vec![Container {
                            name: container.into(),
                            image: Some(image),
                            args: Some(args).filter(|a| !a.is_empty()),
                            security_context: Some(security_context),
                            volume_mounts: Some(vec![
                                VolumeMount {
                                    name: "device-plugins".into(),
                                    mount_path: KUBELET_PLUGINS.into(),
                                    ..VolumeMount::default()
                                },
                                VolumeMount {
                                    name: "config".into(),
                                    mount_path: config_dir.into(),
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
                                    path: KUBELET_PLUGINS.into(),
                                    type_: None,
                                }),
                                ..Volume::default()
                            },
                            Volume {
                                name: "config".into(),
                                config_map: Some(ConfigMapVolumeSource {
                                    name,
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
        }
    }
}

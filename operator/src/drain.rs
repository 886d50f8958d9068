//! Drains of nodes taken out of service: every pod the drain must move (not finished, not a
//! DaemonSet's or a mirror pod, not tolerating `kelvin.dev/out-of-service`) is evicted through
//! the Eviction API, so PodDisruptionBudgets are respected: an eviction a budget forbids is
//! answered 429 and left for the next pass, never forced. The node's transition settles when no
//! such pod is left, or when the drain timeout passed (kelvin-core decides; it is reported).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Mutex,
};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::EvictParams};

use crate::{
    api_client::{ApiClient, Request},
    observe::PodRef,
};

/// What one pass of drains did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Evictions the API server accepted.
    pub evicted: usize,
    /// Pods a PodDisruptionBudget kept (the API server's message), newly so since the last pass.
    pub newly_blocked: Vec<(PodRef, String)>,
    /// Pods kept by a budget in this pass, newly or not.
    pub blocked: usize,
}

/// Why draining failed.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// An eviction failed otherwise than by a disruption budget.
    #[error("evicting pod {namespace}/{name} from node {node}")]
    Evict {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Node.
        node: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

impl DrainError {
    /// Short, stable label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Evict { .. } => "evict_pod",
        }
    }
}

/// Per GpuCluster, pods already reported as held by a disruption budget, so each is reported
/// once (an Event) and not on every pass while it stays held.
#[derive(Default)]
pub struct BlockedPods(Mutex<BTreeMap<String, BTreeSet<(String, String)>>>);

/// Evicts every pod of `pods` (on nodes of GpuCluster `cluster`) that is not terminating
/// already.
pub async fn evict(
    client: &ApiClient,
    cluster: &str,
    pods: &[PodRef],
    reported: &BlockedPods,
) -> Result<Drained, DrainError> {
    let mut drained = Drained::default();
    let mut still_blocked = BTreeSet::new();
    let params = EvictParams::default();
    for pod in pods.iter().filter(|p| !p.terminating) {
        let api: Api<Pod> = Api::namespaced(client.client.clone(), &pod.namespace);
        let write = Request::Write {
            verb: "create",
            kind: "Pod/eviction",
        };
        // One attempt per pass: a 429 here is a disruption budget, not the API server's load.
        match client.call_once(write, api.evict(&pod.name, &params)).await {
            Ok(_) => {
                drained.evicted += 1;
                tracing::info!(pod = %format!("{}/{}", pod.namespace, pod.name), node = %pod.node, "evicted");
            }
            Err(kube::Error::Api(status)) if status.code == 429 => {
                drained.blocked += 1;
                let key = (pod.namespace.clone(), pod.name.clone());
                still_blocked.insert(key.clone());
                let mut seen = reported.0.lock().unwrap_or_else(|e| e.into_inner());
                if seen.entry(cluster.to_owned()).or_default().insert(key) {
                    drained
                        .newly_blocked
                        .push((pod.clone(), status.message.clone()));
                }
            }
            // Gone already: nothing to move.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(DrainError::Evict {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    node: pod.node.clone(),
                    source,
                });
            }
        }
    }
    // A pod no longer held (evicted, gone, or its node settled) may be reported again later.
    let mut seen = reported.0.lock().unwrap_or_else(|e| e.into_inner());
    if still_blocked.is_empty() {
        seen.remove(cluster);
    } else {
        seen.insert(cluster.to_owned(), still_blocked);
    }
    Ok(drained)
}

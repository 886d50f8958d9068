//! Ownership: what Kelvin owns and the API access it needs. Every kind comes from the
//! desired-state type ([`Desired::kinds`]), so orphan clean-up and the chart's RBAC cannot miss
//! one; the node, GpuCluster, event, pod and lease rules are the operator's own I/O.

use serde::Serialize;

use crate::desired::{Desired, KindInfo};

/// One RBAC rule: verbs on resources of a group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessRule {
    /// API group ("" for core).
    pub group: &'static str,
    /// Resources (plural names, with `/subresource` where one is meant).
    pub resource: String,
    /// Verbs, sorted.
    pub verbs: Vec<&'static str>,
    /// What Kelvin does with it.
    pub why: &'static str,
}

/// Kinds Kelvin lists by `kelvin.dev/cluster` to find orphans: every kind but Namespace
/// (tenant namespaces are never deleted).
pub fn orphan_kinds() -> Vec<KindInfo> {
    Desired::kinds()
        .into_iter()
        .filter(|k| !(k.group.is_empty() && k.kind == "Namespace"))
        .collect()
}

/// Every (group, resource, verbs) Kelvin's operator uses, sorted, and nothing more: the
/// chart's ClusterRole and Role are generated from this list, and operator/tests/helm.rs runs
/// the operator with them and checks in the API server's audit log that every verb is used.
pub fn access_rules() -> Vec<AccessRule> {
    let mut rules: Vec<AccessRule> = Desired::kinds()
        .into_iter()
        .map(|kind| {
            let deletes = !(kind.group.is_empty() && kind.kind == "Namespace");
            AccessRule {
                group: kind.group,
                resource: kind.plural.to_owned(),
                // Observed by one labelled list per reconcile, written by server-side apply
                // (a patch, and a create when the object is new), orphans deleted: never read
                // one by one, never watched.
                verbs: if deletes {
                    vec!["create", "delete", "list", "patch"]
                } else {
                    vec!["create", "list", "patch"]
                },
                why: if deletes {
                    "server-side apply of what the spec asks for; delete orphans"
                } else {
                    "create and label tenant namespaces; never deleted"
                },
            }
        })
        .collect();
    let own = [
        (
            "",
            "nodes",
            vec!["get", "list", "patch", "watch"],
            "labels, taints and Kelvin's annotations on nodes",
        ),
        (
            "",
            "pods",
            vec!["list"],
            "settle transitions: node agents Ready, drains done",
        ),
        (
            "",
            "pods/eviction",
            vec!["create"],
            "drain nodes taken out of service, respecting PodDisruptionBudgets",
        ),
        (
            "events.k8s.io",
            "events",
            vec!["create", "patch"],
            "Events on the GpuCluster",
        ),
        (
            "kelvin.dev",
            "gpuclusters",
            vec!["list", "patch", "watch"],
            "read specs; add and remove the finalizer",
        ),
        (
            "kelvin.dev",
            "gpuclusters/status",
            vec!["patch"],
            "write status",
        ),
        (
            "coordination.k8s.io",
            "leases",
            vec!["create", "get", "update"],
            "leader election",
        ),
    ];
    rules.extend(
        own.into_iter()
            .map(|(group, resource, verbs, why)| AccessRule {
                group,
                resource: resource.to_owned(),
                verbs,
                why,
            }),
    );
    for rule in &mut rules {
        rule.verbs.sort_unstable();
    }
    rules.sort();
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_desired_can_hold_is_an_orphan_kind_but_namespaces() {
        let kinds: Vec<&str> = orphan_kinds().iter().map(|k| k.kind).collect();
        assert_eq!(
            kinds,
            [
                "PriorityClass",
                "ConfigMap",
                "ResourceQuota",
                "DaemonSet",
                "Topology",
                "ResourceFlavor",
                "ClusterQueue",
                "LocalQueue",
                "HyperNode"
            ]
        );
    }

    #[test]
    fn namespaces_are_created_but_never_deleted() {
        let rules = access_rules();
        let namespaces = rules
            .iter()
            .find(|r| r.group.is_empty() && r.resource == "namespaces")
            .unwrap();
        assert!(!namespaces.verbs.contains(&"delete"), "{namespaces:?}");
        let hyper_nodes = rules.iter().find(|r| r.resource == "hypernodes").unwrap();
        assert_eq!(hyper_nodes.group, "topology.volcano.sh");
        assert!(hyper_nodes.verbs.contains(&"delete"));
    }
}

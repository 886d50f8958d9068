//! `kelvin.dev/v1alpha1`: the `GpuCluster` kind. One object describes one site.
//!
//! Doc comments here become the CRD's descriptions (`kubectl explain gpucluster.spec...`).
//! CEL rules (`x-kubernetes-validations`) reject what one object can check on its own; the
//! physics (power, cooling, fabric) lives in kelvin-core.

mod cooling;
mod fabric;
mod pool;
mod scheduling;
mod status;

pub use cooling::*;
pub use fabric::*;
pub use pool::*;
pub use scheduling::*;
pub use status::*;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// API group of every Kelvin kind.
pub const GROUP: &str = "kelvin.dev";
/// API version of this module's kinds.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of this module's kinds.
pub const API_VERSION: &str = "kelvin.dev/v1alpha1";

/// A GPU site: its GPU pools, network fabrics and cooling zones within a power budget.
/// Kelvin validates it against physics and reconciles it into node labels and taints,
/// device plugins and scheduling policies.
// Several printcolumn(...) share keys; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kelvin.dev",
    version = "v1alpha1",
    kind = "GpuCluster",
    plural = "gpuclusters",
    shortname = "gpuc",
    category = "kelvin",
    status = "GpuClusterStatus",
    derive = "PartialEq",
    doc = "A GPU site: GPU pools, network fabrics and cooling zones within a power budget.",
    printcolumn(name = "Pools", type_ = "integer", json_path = ".status.summary.pools"),
    printcolumn(name = "Nodes", type_ = "integer", json_path = ".status.summary.nodes"),
    printcolumn(name = "GPUs", type_ = "integer", json_path = ".status.summary.gpus"),
    printcolumn(
        name = "Power-MW",
        type_ = "number",
        json_path = ".status.power.facilityMW"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
// The spec's rules are added by `spec_rules`, not `x_kube(validation)`: kube's `Rule`
// holds a message or a messageExpression, and these carry both.
#[schemars(transform = spec_rules)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuClusterSpec {
    /// Facility-wide figures: the power budget and the power usage effectiveness.
    pub site: Site,

    /// Cooling zones (loops, halls, immersion tanks). A zone's heat load is the IT power of
    /// the nodes its selector matches; it must fit the zone's capacity.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 256))]
    pub cooling_zones: Vec<CoolingZone>,

    /// Network fabrics (rail-optimized, non-blocking fat trees). Pools name the fabric
    /// their nodes attach to.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(min = 1, max = 32))]
    pub fabrics: Vec<Fabric>,

    /// GPU pools: sets of identical GPU servers, selected by node labels.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(min = 1, max = 64))]
    pub gpu_pools: Vec<GpuPool>,

    /// Priorities, tenants with GPU quotas, and topology-aware scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
}

/// Most nodes a site may plan for, over all its pools (`expectedNodes`). What no site has is
/// refused before it costs anything: 64 pools of a million nodes each would have the offline
/// plan simulate 64 million nodes. The largest Kubernetes clusters run are 65,000 nodes (GKE's
/// supported limit), 100,000 (EKS) and 130,000 (GKE, experimental, 2025), and upstream tests
/// 5,000; the largest GPU sites hold 100,000-200,000 GPUs, 12,500-25,000 servers of 8. 200,000
/// is half again the largest cluster, and a 200,000-GPU site of one GPU per server.
pub const MAX_SITE_NODES: u32 = 200_000;

/// A CEL rule whose failure message names what is wrong (`message_expression`), with a static
/// `message` the API server falls back to should that expression fail.
pub(crate) struct CelRule {
    pub(crate) rule: &'static str,
    message: &'static str,
    message_expression: &'static str,
}

impl CelRule {
    /// The rule as an entry of `x-kubernetes-validations`.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "rule": self.rule,
            "message": self.message,
            "messageExpression": self.message_expression,
            "reason": "FieldValueInvalid",
        })
    }
}

/// The rule on the whole object (the only place CEL sees `metadata.name`; crd.rs adds it, as
/// kube's root `validation` takes a message or a messageExpression, not both): every object
/// Kelvin creates carries the name in the label `kelvin.dev/cluster`, and the API server refuses
/// a label value over 63 characters, so a longer name would be stored and then fail every write.
/// The message names no path: the API server reports a root rule at no field.
pub(crate) const NAME_RULE: CelRule = CelRule {
    rule: "self.metadata.name.size() <= 63",
    message: "a GpuCluster's name is at most 63 characters: every object Kelvin creates carries it in the label kelvin.dev/cluster, whose values are at most 63 characters; shorten metadata.name",
    message_expression: concat!(
        "\"a GpuCluster's name is at most 63 characters, and this one has %d: every object Kelvin creates carries it in the label kelvin.dev/cluster, whose values are at most 63 characters; shorten metadata.name\"",
        ".format([self.metadata.name.size()])",
    ),
};

/// The rules on `spec`: names used inside the spec resolve, and the site's node total is one a
/// Kubernetes cluster can have. A messageExpression is only evaluated when its rule failed. It
/// names the first offender in list order: the pool (index and name) and the fabric it names;
/// the tenant and its quota key naming no pool, or how many keys do when several do; the total
/// asked for. (The API server iterates a map's keys in no fixed order, and kube-cel
/// in a HashMap's; `min()` or a pairwise comparison would pick one deterministically but cost
/// more than the API server's budget allows.)
///
/// Written for the API server's static cost estimate, which must stay within its budget (10^7
/// per expression; the quota one is estimated near 4 x 10^6): one comprehension per list or map,
/// as the 3-argument `map` filters too and a `filter(...).map(...)` chain loses the iteration
/// variable's bounded field sizes; `format` rather than `+`, as a concatenation with a value of
/// unknown size such as `string(i)` is estimated as unbounded; and the dangling keys computed
/// once per tenant, bound to `d` by iterating a one-element list (CEL for CRDs has no
/// `cel.bind`), with `''` for tenants that have none.
const SPEC_RULES: [CelRule; 3] = [
    CelRule {
        rule: "self.gpuPools.all(p, self.fabrics.exists(f, f.name == p.fabric))",
        message: "every spec.gpuPools[].fabric must name an entry of spec.fabrics: add the fabric or fix the pool's fabric name",
        message_expression: concat!(
            "self.gpuPools.map(p, !self.fabrics.exists(f, f.name == p.fabric), ",
            "\"spec.gpuPools[%d] (%s) names fabric %s, which is not in spec.fabrics: add it or fix the pool's fabric\"",
            ".format([self.gpuPools.indexOf(p), p.name, p.fabric]))[0]",
        ),
    },
    CelRule {
        rule: "!has(self.scheduling) || self.scheduling.tenants.all(t, t.gpuQuota.all(k, self.gpuPools.exists(p, p.name == k)))",
        message: "every key of spec.scheduling.tenants[].gpuQuota must name an entry of spec.gpuPools: add the pool or fix the quota's pool name",
        message_expression: concat!(
            "self.scheduling.tenants.map(t, [t.gpuQuota.filter(k, !self.gpuPools.exists(p, p.name == k))].map(d, ",
            "d.size() == 0 ? '' : d.size() == 1 ? ",
            "\"spec.scheduling.tenants[%d] (%s) has a gpuQuota for pool %s, which is not in spec.gpuPools: add the pool or fix the quota's pool name\"",
            ".format([self.scheduling.tenants.indexOf(t), t.name, d[0]]) : ",
            "\"spec.scheduling.tenants[%d] (%s) has a gpuQuota for %d pools that are not in spec.gpuPools: add the pools or fix the quota's pool names\"",
            ".format([self.scheduling.tenants.indexOf(t), t.name, d.size()]))[0]).filter(m, m != '')[0]",
        ),
    },
    // The site's total (each pool's is the schema's maximum): `sum` is Kubernetes' list
    // library, and 64 pools cost little to add up.
    CelRule {
        rule: "self.gpuPools.map(p, p.expectedNodes).sum() <= 200000",
        message: "the pools' expectedNodes add up to more than 200000 nodes, more than any Kubernetes cluster runs: expectedNodes counts servers, not GPUs; lower it, or describe one site per GpuCluster",
        message_expression: concat!(
            "\"spec.gpuPools[].expectedNodes add up to %d nodes; a site is at most 200000 (the largest Kubernetes clusters run 65,000-130,000): expectedNodes counts servers, not GPUs; lower it, or describe one site per GpuCluster\"",
            ".format([self.gpuPools.map(p, p.expectedNodes).sum()])",
        ),
    },
];

/// Adds [`SPEC_RULES`] to the schema of `spec`.
fn spec_rules(schema: &mut schemars::Schema) {
    let rules = SPEC_RULES.iter().map(CelRule::json);
    let validations = schema
        .ensure_object()
        .entry("x-kubernetes-validations")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let Some(list) = validations.as_array_mut() {
        list.extend(rules);
    }
}

/// Facility-wide power figures.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Site {
    /// Facility power available for IT load plus cooling overhead, in megawatts.
    /// Facility load = IT load x pue, and must not exceed this.
    #[serde(rename = "powerBudgetMW")]
    #[schemars(range(min = 0.0, max = 100000.0))]
    pub power_budget_mw: f64,

    /// Power usage effectiveness: facility power / IT power. 1.0 is ideal; liquid-cooled
    /// halls run near 1.1-1.3.
    #[schemars(range(min = 1.0, max = 3.0))]
    pub pue: f64,
}

/// Helpers on label selectors.
pub trait LabelSelectorExt {
    /// Labels a node would carry to satisfy this selector: matchLabels, the first value of
    /// each `In` expression, and `"true"` for each `Exists`.
    fn example_labels(&self) -> std::collections::BTreeMap<String, String>;
}

impl LabelSelectorExt for k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
    fn example_labels(&self) -> std::collections::BTreeMap<String, String> {
        let mut labels = self.match_labels.clone().unwrap_or_default();
        for requirement in self.match_expressions.iter().flatten() {
            let value = match requirement.operator.as_str() {
                "In" => requirement.values.as_ref().and_then(|v| v.first()).cloned(),
                "Exists" => Some("true".to_owned()),
                _ => None,
            };
            if let Some(value) = value {
                labels.entry(requirement.key.clone()).or_insert(value);
            }
        }
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages `kelvin validate` gets (schema, defaults, then kube-cel) for examples/small
    /// with each `(from, to)` replaced once.
    fn cel_messages(edits: &[(&str, &str)]) -> Vec<String> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/small/cluster.yaml"
        );
        let mut text = std::fs::read_to_string(path).unwrap();
        for (from, to) in edits {
            assert!(text.contains(from), "{from:?} not in examples/small");
            text = text.replacen(from, to, 1);
        }
        let (clusters, diagnostics) = crate::load::load_gpu_clusters("small.yaml", text.as_bytes());
        assert!(clusters.is_empty(), "accepted with {edits:?}");
        diagnostics.into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn spec_rules_carry_a_message_and_a_message_expression() {
        let schema = crate::load::gpu_cluster_schema();
        let rules = schema["properties"]["spec"]["x-kubernetes-validations"]
            .as_array()
            .unwrap();
        for expected in &SPEC_RULES {
            let rule = rules
                .iter()
                .find(|r| r["rule"] == expected.rule)
                .unwrap_or_else(|| panic!("{} not in the schema", expected.rule));
            assert_eq!(rule["message"], expected.message);
            assert_eq!(rule["messageExpression"], expected.message_expression);
            assert_eq!(rule["reason"], "FieldValueInvalid");
        }
    }

    #[test]
    fn the_name_rule_is_on_the_whole_object_and_names_the_length() {
        let schema = crate::load::gpu_cluster_schema();
        assert_eq!(
            schema["x-kubernetes-validations"],
            serde_json::json!([NAME_RULE.json()])
        );
        // The rule's limit is the loader's.
        assert!(
            NAME_RULE
                .rule
                .ends_with(&crate::load::MAX_CLUSTER_NAME.to_string())
        );
        let long = "a".repeat(64);
        let messages = cel_messages(&[("name: lab", &format!("name: {long}"))]);
        assert_eq!(
            messages,
            [
                "a GpuCluster's name is at most 63 characters, and this one has 64: every object Kelvin creates carries it in the label kelvin.dev/cluster, whose values are at most 63 characters; shorten metadata.name"
            ]
        );
        let at_limit = "a".repeat(63);
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/small/cluster.yaml"
        ))
        .unwrap()
        .replacen("name: lab", &format!("name: {at_limit}"), 1);
        let (clusters, diagnostics) = crate::load::load_gpu_clusters("small.yaml", text.as_bytes());
        assert_eq!(
            (clusters.len(), diagnostics.len()),
            (1, 0),
            "{diagnostics:?}"
        );
    }

    #[test]
    fn a_site_of_more_nodes_than_any_cluster_runs_is_refused_with_its_total() {
        // The rule's limit is the schema's (each pool's maximum).
        assert!(SPEC_RULES[2].rule.ends_with(&MAX_SITE_NODES.to_string()));
        let schema = crate::load::gpu_cluster_schema();
        let pool = &schema["properties"]["spec"]["properties"]["gpuPools"]["items"];
        assert_eq!(
            pool["properties"]["expectedNodes"]["maximum"].as_f64(),
            Some(f64::from(MAX_SITE_NODES))
        );
        // examples/small's pools: 4 and 4 nodes. Each within the pool's maximum, together over.
        let messages = cel_messages(&[
            ("expectedNodes: 4", "expectedNodes: 150000"),
            ("expectedNodes: 4", "expectedNodes: 60000"),
        ]);
        assert_eq!(
            messages,
            [
                "spec.gpuPools[].expectedNodes add up to 210000 nodes; a site is at most 200000 (the largest Kubernetes clusters run 65,000-130,000): expectedNodes counts servers, not GPUs; lower it, or describe one site per GpuCluster"
            ]
        );
    }

    #[test]
    fn a_pool_naming_a_missing_fabric_is_named_with_that_fabric() {
        // The second pool: the index counts.
        let messages = cel_messages(&[("fabric: lab-eth", "fabric: lab-roce")]);
        assert_eq!(
            messages,
            [
                "spec.gpuPools[1] (l40s-shared) names fabric lab-roce, which is not in spec.fabrics: add it or fix the pool's fabric"
            ]
        );
    }

    #[test]
    fn of_two_dangling_pools_the_first_is_named() {
        let messages = cel_messages(&[
            ("fabric: lab-ib", "fabric: ib-x"),
            ("fabric: lab-eth", "fabric: eth-x"),
        ]);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].starts_with("spec.gpuPools[0] (a100-mig) names fabric ib-x,"),
            "{messages:?}"
        );
    }

    #[test]
    fn a_quota_naming_a_missing_pool_is_named_with_its_tenant() {
        let messages = cel_messages(&[(
            "gpuQuota: {l40s-shared: 16}",
            "gpuQuota: {l40s-shared: 4, l40s: 16}",
        )]);
        assert_eq!(
            messages,
            [
                "spec.scheduling.tenants[1] (ci) has a gpuQuota for pool l40s, which is not in spec.gpuPools: add the pool or fix the quota's pool name"
            ]
        );
    }

    #[test]
    fn several_dangling_quota_keys_are_counted_not_picked_at_random() {
        let messages = cel_messages(&[(
            "gpuQuota: {l40s-shared: 16}",
            "gpuQuota: {l40s: 16, a100: 1, l40s-shared: 4}",
        )]);
        assert_eq!(
            messages,
            [
                "spec.scheduling.tenants[1] (ci) has a gpuQuota for 2 pools that are not in spec.gpuPools: add the pools or fix the quota's pool names"
            ]
        );
    }
}

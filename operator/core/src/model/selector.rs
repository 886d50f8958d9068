//! Label selectors (matchLabels + matchExpressions), matched the way the API server does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use kelvin_crds::{diagnostics::Diagnostic, sorted_map::Labels, v1alpha1::GpuClusterSpec};

use super::{pool_path, zone_path};

/// Whether `labels` satisfy `selector`. An empty selector matches everything; an unknown
/// operator matches nothing (and is reported by [`check`]).
pub fn matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value.as_str()));
    labels_match
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|requirement| {
                let values = requirement.values.as_deref().unwrap_or_default();
                let current = labels.get(&requirement.key);
                let listed = |v: &str| values.iter().any(|listed| listed == v);
                match requirement.operator.as_str() {
                    "In" => current.is_some_and(listed),
                    "NotIn" => current.is_none_or(|v| !listed(v)),
                    "Exists" => current.is_some(),
                    "DoesNotExist" => current.is_none(),
                    _ => false,
                }
            })
}

const KEY_FIX: &str =
    "use [prefix/]name: name up to 63 alphanumerics, '-', '_' or '.', prefix a DNS subdomain";
const VALUE_FIX: &str = "use up to 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric (the node's label as `kubectl get nodes --show-labels` shows it)";

/// A label key no node can carry: the API server refuses it, so a selector requiring it
/// matches nothing, ever.
fn check_key(key: &str, at: &str, found: &mut Vec<Diagnostic>) {
    if !kelvin_crds::names::is_label_key(key) {
        found.push(
            Diagnostic::error(
                at,
                format!("{key:?} is not a valid label key: no node can carry it, so this selector matches nothing"),
            )
            .with_fix(KEY_FIX),
        );
    }
}

/// A label value no node can carry (see [`check_key`]).
fn check_value(value: &str, at: &str, found: &mut Vec<Diagnostic>) {
    if !kelvin_crds::names::is_label_value(value) {
        found.push(
            Diagnostic::error(
                at,
                format!("{value:?} is not a valid label value: no node can carry it, so this selector matches nothing"),
            )
            .with_fix(VALUE_FIX),
        );
    }
}

/// Problems with a selector at `path`: keys and values no label can have, unknown operators,
/// values where none belong.
pub fn check(selector: &LabelSelector, path: &str) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        let at = format!("{path}.matchLabels.{key}");
        check_key(key, &at, &mut found);
        check_value(value, &at, &mut found);
    }
    for (index, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{index}]");
        let values = requirement.values.as_deref().unwrap_or_default();
        check_key(&requirement.key, &format!("{at}.key"), &mut found);
        for (value_index, value) in values.iter().enumerate() {
            check_value(value, &format!("{at}.values[{value_index}]"), &mut found);
        }
        match requirement.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => found.push(
                Diagnostic::error(
                    format!("{at}.values"),
                    format!("operator {} needs at least one value", requirement.operator),
                )
                .with_fix("list the label values to match"),
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => found.push(
                Diagnostic::error(
                    format!("{at}.values"),
                    format!("operator {} takes no values", requirement.operator),
                )
                .with_fix("remove values"),
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => found.push(
                Diagnostic::error(
                    format!("{at}.operator"),
                    format!("unknown operator {other:?}"),
                )
                .with_fix("use In, NotIn, Exists or DoesNotExist"),
            ),
        }
    }
    found
}

/// Whether a node could carry labels matching both selectors: no key is required with two
/// different values. Used to place simulated nodes; expressions are checked on the result.
pub fn compatible(a: &LabelSelector, b: &LabelSelector) -> bool {
    let (Some(left), Some(right)) = (&a.match_labels, &b.match_labels) else {
        return true;
    };
    left.iter()
        .all(|(key, value)| right.get(key).is_none_or(|other| other == value))
}

/// What Kelvin computes a label key from, when it does.
fn computed_by_kelvin(spec: &GpuClusterSpec, key: &str) -> Option<&'static str> {
    use crate::constants::{GPU_OPERATOR_CONFIG_LABEL, MIG_CONFIG_LABEL};
    if key == MIG_CONFIG_LABEL {
        return Some("the MIG layout, from sharing");
    }
    if key == GPU_OPERATOR_CONFIG_LABEL {
        return Some("the device-plugin config, from devicePlugin");
    }
    spec.fabrics
        .iter()
        .map(|f| &f.topology.labels)
        .any(|t| {
            [&t.accelerator, &t.leaf, &t.spine, &t.core]
                .iter()
                .any(|k| k.as_str() == key)
        })
        .then_some("a fabric topology label, from the node's position")
}

/// Every selector of the spec, and the labels pools put on nodes.
pub fn check_spec(spec: &GpuClusterSpec, out: &mut Vec<Diagnostic>) {
    for (index, pool) in spec.gpu_pools.iter().enumerate() {
        let path = pool_path(index);
        out.extend(check(&pool.node_selector, &format!("{path}.nodeSelector")));
        if pool
            .node_selector
            .match_labels
            .as_ref()
            .is_none_or(|l| l.is_empty())
            && pool
                .node_selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty())
        {
            out.push(
                Diagnostic::error(format!("{path}.nodeSelector"), "an empty selector matches every node in the cluster")
                    .with_fix("select the pool's nodes by a label, e.g. matchLabels: {kelvin.dev/sku: hgx-h100}"),
            );
        }
        // The API server rejects a Node with two taints of one key and effect.
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (index, taint) in pool.taints.iter().enumerate() {
            let identity = (taint.key.as_str(), taint.effect.as_str());
            if seen.contains(&identity) {
                out.push(
                    Diagnostic::error(
                        format!("{path}.taints[{index}]"),
                        format!(
                            "pool {}: a second taint with key {} and effect {}; a node can carry only one",
                            pool.name, identity.0, identity.1
                        ),
                    )
                    .with_fix("keep one taint per key and effect"),
                );
            }
            seen.push(identity);
        }
        for (key, value) in &pool.labels {
            let at = format!("{path}.labels.{key}");
            if key.starts_with("kelvin.dev/") {
                out.push(
                    Diagnostic::error(
                        &at,
                        "the kelvin.dev/ prefix is reserved for labels Kelvin computes",
                    )
                    .with_fix("use another prefix"),
                );
            } else if let Some(what) = computed_by_kelvin(spec, key) {
                out.push(
                    Diagnostic::error(
                        &at,
                        format!("pool {}: {key} is a label Kelvin computes ({what}); two values would compete", pool.name),
                    )
                    .with_fix("remove it from the pool's labels"),
                );
            } else if !kelvin_crds::names::is_label_key(key) {
                out.push(Diagnostic::error(&at, "not a valid label key").with_fix(KEY_FIX));
            }
            if !kelvin_crds::names::is_label_value(value) {
                out.push(
                    Diagnostic::error(&at, format!("{value:?} is not a valid label value"))
                        .with_fix("use up to 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"),
                );
            }
        }
    }
    for (index, zone) in spec.cooling_zones.iter().enumerate() {
        out.extend(check(
            &zone.node_selector,
            &format!("{}.nodeSelector", zone_path(index)),
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (*k, Arc::<str>::from(*v)))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let selector = LabelSelector {
            match_labels: Some([("sku".into(), "h100".into())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "hall".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        };
        assert!(matches(
            &selector,
            &labels(&[("sku", "h100"), ("hall", "b")])
        ));
        assert!(!matches(
            &selector,
            &labels(&[("sku", "h100"), ("hall", "c")])
        ));
        assert!(!matches(&selector, &labels(&[("hall", "a")])));
    }

    #[test]
    fn keys_and_values_no_label_can_have_are_errors() {
        let selector = LabelSelector {
            match_labels: Some([("kelvin.dev/sku".into(), "dgx h100".into())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "bad key".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "-b".into()]),
            }]),
        };
        let found: Vec<String> = check(&selector, "sel")
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect();
        assert_eq!(
            found,
            [
                "sel.matchLabels.kelvin.dev/sku: \"dgx h100\" is not a valid label value: no node can carry it, so this selector matches nothing",
                "sel.matchExpressions[0].key: \"bad key\" is not a valid label key: no node can carry it, so this selector matches nothing",
                "sel.matchExpressions[0].values[1]: \"-b\" is not a valid label value: no node can carry it, so this selector matches nothing",
            ]
        );
    }

    #[test]
    fn unknown_operators_are_reported_and_match_nothing() {
        let selector = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "x".into(),
                operator: "Equals".into(),
                values: None,
            }]),
        };
        assert!(!matches(&selector, &labels(&[("x", "1")])));
        assert_eq!(
            check(&selector, "sel")[0].path,
            "sel.matchExpressions[0].operator"
        );
    }
}

//! The CRDs Kelvin installs, generated from the Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::v1alpha1::GpuCluster;

/// Every CRD Kelvin owns.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![polished(GpuCluster::crd())]
}

/// The CRD as the API server and `kubectl explain` should see it:
/// - schemars marks unsigned integers `format: uint32`/`uint64`, which the API server does not
///   know (it warns on every apply); the bounds are in minimum/maximum already, so drop them;
/// - doc comments are wrapped at 100 columns in the source: descriptions are paragraphs, so
///   `kubectl explain` wraps them to the terminal instead of breaking lines mid-sentence;
/// - int-or-string fields get the `anyOf` of integer and string that controller-gen writes;
/// - the whole object gets [`crate::v1alpha1::NAME_RULE`] (a name fit for a label value).
pub(crate) fn polished(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn polish(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                if map
                    .get("format")
                    .and_then(|f| f.as_str())
                    .is_some_and(|f| f.starts_with("uint"))
                {
                    map.remove("format");
                }
                if let Some(serde_json::Value::String(text)) = map.get_mut("description") {
                    *text = paragraphs(text);
                }
                // As controller-gen writes IntOrString: with the anyOf, the published OpenAPI
                // says integer or string, and `kubectl explain` shows <IntOrString>, not <Object>.
                if map.get("x-kubernetes-int-or-string") == Some(&serde_json::Value::Bool(true)) {
                    map.insert(
                        "anyOf".to_owned(),
                        serde_json::json!([{"type": "integer"}, {"type": "string"}]),
                    );
                }
                map.values_mut().for_each(polish);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(polish),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    polish(&mut value);
    for version in value
        .pointer_mut("/spec/versions")
        .and_then(serde_json::Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(serde_json::Value::Object(root)) =
            version.pointer_mut("/schema/openAPIV3Schema")
        {
            root.insert(
                "x-kubernetes-validations".to_owned(),
                serde_json::json!([crate::v1alpha1::NAME_RULE.json()]),
            );
        }
    }
    serde_json::from_value(value).unwrap_or(crd)
}

/// `text` with the line breaks inside a paragraph made spaces. Blank lines (paragraphs) and
/// lines starting a list item (`- `) stay breaks.
pub fn paragraphs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines().map(str::trim) {
        if out.is_empty() {
            out.push_str(line);
        } else if line.is_empty() {
            out.push_str("\n\n");
        } else if out.ends_with('\n') || line.starts_with("- ") || line.starts_with("* ") {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(line);
        } else {
            out.push(' ');
            out.push_str(line);
        }
    }
    out
}

/// File name of a CRD's YAML in `crds/` and `charts/kelvin/crds/`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// Every CRD as one multi-document YAML stream, as `kelvin crd` prints it and as committed
/// in `crds/` and `charts/kelvin/crds/`.
pub fn yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}

/// Header of the committed CRD files.
pub const GENERATED_HEADER: &str = "# Generated from the Rust types in crds/src/v1alpha1 by `kelvin crd`; do not edit.\n# Regenerate: UPDATE_GOLDEN=1 cargo test -p kelvin-crds --test crd_drift\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_paragraphs() {
        assert_eq!(
            paragraphs("Nodes made from expectedNodes, for\nsimulated nodes.\n\nSecond.\n- a\n- b"),
            "Nodes made from expectedNodes, for simulated nodes.\n\nSecond.\n- a\n- b"
        );
        let yaml = yaml().unwrap();
        assert!(
            !yaml.contains("a disruptive\n"),
            "a description still breaks mid-sentence"
        );
        let schema = crate::load::gpu_cluster_schema();
        let budget = &schema["properties"]["spec"]["properties"]["gpuPools"]["items"]["properties"]
            ["maxUnavailable"];
        assert_eq!(
            budget["anyOf"],
            serde_json::json!([{"type": "integer"}, {"type": "string"}])
        );
    }
}

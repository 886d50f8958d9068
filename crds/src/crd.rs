//! The CRDs Kelvin installs, generated from the Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::v1alpha1::GpuCluster;

/// Every CRD Kelvin owns.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![without_unknown_formats(GpuCluster::crd())]
}

/// schemars marks unsigned integers `format: uint32`/`uint64`, which the API server does not
/// know (it warns on every apply); the bounds are in minimum/maximum already, so drop them.
fn without_unknown_formats(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                if map
                    .get("format")
                    .and_then(|f| f.as_str())
                    .is_some_and(|f| f.starts_with("uint"))
                {
                    map.remove("format");
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    strip(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
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

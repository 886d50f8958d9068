//! The CRDs Kelvin installs, generated from the Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::v1alpha1::GpuCluster;

/// Every CRD Kelvin owns.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![GpuCluster::crd()]
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

//! Installing CustomResourceDefinitions and reading Kubernetes YAML for tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::cluster::{repo_root, wait_for};

/// Name of Kelvin's CRD.
pub const GPUCLUSTER_CRD: &str = "gpuclusters.kelvin.dev";

/// The generated GpuCluster CRD (`crds/gpuclusters.kelvin.dev.yaml`).
pub fn gpucluster_crd_path() -> PathBuf {
    repo_root()
        .join("crds")
        .join(format!("{GPUCLUSTER_CRD}.yaml"))
}

/// The GpuCluster CRD and the file it came from: the generated
/// `crds/gpuclusters.kelvin.dev.yaml`, or the file `KELVIN_E2E_GPUCLUSTER_CRD` names (to try a
/// CRD before generating it).
pub fn gpucluster_crd() -> Result<(CustomResourceDefinition, PathBuf)> {
    let path = std::env::var_os("KELVIN_E2E_GPUCLUSTER_CRD")
        .map(PathBuf::from)
        .unwrap_or_else(gpucluster_crd_path);
    Ok((read_crd(&path)?, path))
}

/// Reads the YAML documents of `path` as JSON values (empty documents dropped).
pub fn read_yaml_documents(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
        .with_context(|| format!("parsing YAML in {}", path.display()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Reads a CRD from a YAML file holding exactly one.
pub fn read_crd(path: &Path) -> Result<CustomResourceDefinition> {
    let docs = read_yaml_documents(path)?;
    let [doc] = docs.as_slice() else {
        bail!(
            "{} holds {} YAML documents, expected one CRD",
            path.display(),
            docs.len()
        );
    };
    serde_json::from_value(doc.clone())
        .with_context(|| format!("{} is not a CustomResourceDefinition", path.display()))
}

/// Applies `crd` (server-side apply, field manager `kelvin-e2e`, forced) and waits until the
/// API server reports it `Established`. Safe to call from several tests at once.
pub async fn install_crd(client: &Client, crd: &CustomResourceDefinition) -> Result<()> {
    let name = crd
        .metadata
        .name
        .clone()
        .context("CRD without metadata.name")?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crd = crd.clone();
    crd.metadata.managed_fields = None;
    crd.metadata.resource_version = None;
    crd.status = None;
    match api
        .patch(
            &name,
            &PatchParams::apply("kelvin-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
    {
        Ok(_) => {}
        // The API server's message lists every problem; the rest of the Status repeats it.
        Err(kube::Error::Api(status)) => bail!(
            "the API server refused CRD {name} ({} {}): {}",
            status.code,
            status.reason,
            status.message
        ),
        Err(e) => return Err(e).with_context(|| format!("applying CRD {name}")),
    }
    wait_for(
        &format!("CRD {name} to be Established"),
        Duration::from_secs(60),
        || async {
            let crd = api.get(&name).await?;
            Ok(is_established(&crd).then_some(()))
        },
    )
    .await
}

/// True when the CRD's `Established` condition is `True`.
pub fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// The rule messages of an API server's `Invalid` answer: each cause's message with the
/// `Invalid value: "object": ` (or `Required value: `) prefix removed, so it can be compared
/// with what `kelvin validate` prints.
pub fn rejection_messages(status: &kube::core::Status) -> Vec<String> {
    let mut messages: Vec<String> = status
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .map(|c| strip_value_prefix(&c.message).to_string())
        .collect();
    if messages.is_empty() {
        messages.push(status.message.clone());
    }
    messages
}

fn strip_value_prefix(message: &str) -> &str {
    for prefix in ["Invalid value: ", "Required value: ", "Forbidden: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            // `Invalid value: "object": rule message` -> `rule message`
            if rest.starts_with('"')
                && let Some(end) = rest.find("\": ")
            {
                return &rest[end + 3..];
            }
            return rest;
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_value_prefix_of_cel_messages() {
        assert_eq!(
            strip_value_prefix("Invalid value: \"object\": pools need fabrics: fix it"),
            "pools need fabrics: fix it"
        );
        assert_eq!(
            strip_value_prefix("Required value: degradedCapacityKW is required"),
            "degradedCapacityKW is required"
        );
        assert_eq!(strip_value_prefix("something else"), "something else");
    }
}

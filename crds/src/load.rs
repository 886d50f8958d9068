//! Reading specs from YAML: bytes -> documents -> schema check -> typed `GpuCluster` -> CEL
//! rules. Every problem becomes a [`Diagnostic`] naming the file, line and column, the field
//! path and the fix; a file with several documents has all of them read.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::{
    diagnostics::{Diagnostic, Location},
    locate::PathIndex,
    schema,
    v1alpha1::{API_VERSION, GpuCluster},
};

/// Where a document came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// File as given.
    pub file: String,
    /// 0-based index of the document in the file (empty documents are not counted).
    pub document: usize,
}

/// A YAML document of a file, as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Where it came from.
    pub origin: Origin,
    /// Its content.
    pub value: Value,
}

/// Parses `bytes` of `file` into its documents. Rejects non-UTF-8 bytes, YAML syntax errors
/// (with line and column), empty files and alias bombs (bounded by serde-saphyr's budget).
pub fn parse_documents(file: &str, bytes: &[u8]) -> Result<Vec<Document>, Diagnostic> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        let offset = error.valid_up_to();
        let line = bytes[..offset].iter().filter(|b| **b == b'\n').count() + 1;
        let column = offset
            - bytes[..offset]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        at(
            Diagnostic::error(
                "",
                format!(
                    "the file is not UTF-8 text (invalid byte 0x{:02x})",
                    bytes[offset]
                ),
            )
            .with_fix("save the file as UTF-8"),
            file,
            line,
            column,
        )
    })?;
    let values: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|error| {
        let diagnostic = Diagnostic::error("", format!("YAML: {}", first_line(&error.to_string())))
            .with_fix("fix the YAML syntax at this position");
        match error.location() {
            Some(location) => at(
                diagnostic,
                file,
                location.line() as usize,
                location.column() as usize,
            ),
            None => at(diagnostic, file, 1, 1),
        }
    })?;
    if values.is_empty() {
        return Err(at(
            Diagnostic::error("", "the file holds no YAML documents")
                .with_fix("add a GpuCluster (see examples/)"),
            file,
            1,
            1,
        ));
    }
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(document, value)| Document {
            origin: Origin {
                file: file.to_owned(),
                document,
            },
            value,
        })
        .collect())
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

fn at(mut diagnostic: Diagnostic, file: &str, line: usize, column: usize) -> Diagnostic {
    diagnostic.location = Some(Location {
        file: file.to_owned(),
        line,
        column,
    });
    diagnostic
}

/// The `openAPIV3Schema` of the GpuCluster CRD, as JSON.
pub fn gpu_cluster_schema() -> Value {
    schema_of(&GpuCluster::crd())
}

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

/// Reads every GpuCluster in `bytes`. Returns the ones that pass the schema and CEL rules, and
/// every problem found (with locations).
pub fn load_gpu_clusters(file: &str, bytes: &[u8]) -> (Vec<(GpuCluster, Origin)>, Vec<Diagnostic>) {
    let documents = match parse_documents(file, bytes) {
        Ok(documents) => documents,
        Err(diagnostic) => return (Vec::new(), vec![diagnostic]),
    };
    let text = String::from_utf8_lossy(bytes);
    let schema = gpu_cluster_schema();
    let mut clusters = Vec::new();
    let mut diagnostics = Vec::new();
    for document in documents {
        match check_document(&schema, &document.value) {
            Ok(cluster) => clusters.push((cluster, document.origin)),
            Err(found) => {
                let index = PathIndex::build(&text, document.origin.document);
                diagnostics.extend(
                    found
                        .into_iter()
                        .map(|d| locate(d, &index, file, &document.origin)),
                );
            }
        }
    }
    (clusters, diagnostics)
}

/// Points `diagnostic` at its field in the file (or at the document when the path is unknown).
pub fn locate(
    mut diagnostic: Diagnostic,
    index: &PathIndex,
    file: &str,
    origin: &Origin,
) -> Diagnostic {
    if diagnostic.location.is_none() {
        let (line, column) = index
            .find(&diagnostic.path)
            .or_else(|| index.find(""))
            .unwrap_or((1, 1));
        diagnostic.location = Some(Location {
            file: file.to_owned(),
            line,
            column,
        });
    }
    if diagnostic.path.is_empty() && origin.document > 0 {
        diagnostic.path = format!("document {}", origin.document + 1);
    }
    diagnostic
}

/// Checks one document the way the API server would: kind and apiVersion, the structural
/// schema, then CEL rules on the defaulted object.
pub fn check_document(schema: &Value, value: &Value) -> Result<GpuCluster, Vec<Diagnostic>> {
    let Some(object) = value.as_object() else {
        return Err(vec![Diagnostic::error(
            "",
            "expected a mapping with apiVersion, kind, metadata and spec",
        )]);
    };
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut errors = Vec::new();
    if kind != "GpuCluster" {
        let mut error = Diagnostic::error(
            "kind",
            format!("kind {kind:?} is not one Kelvin reads here"),
        );
        error = if kind.eq_ignore_ascii_case("gpucluster")
            || schema::closest(kind, ["GpuCluster"].into_iter()).is_some()
        {
            error.with_fix("did you mean \"GpuCluster\"?")
        } else {
            error.with_fix("use kind: GpuCluster (with apiVersion: kelvin.dev/v1alpha1)")
        };
        errors.push(error);
    }
    if api_version != API_VERSION {
        errors.push(
            Diagnostic::error(
                "apiVersion",
                format!("apiVersion {api_version:?} is not served by Kelvin"),
            )
            .with_fix(format!("use apiVersion: {API_VERSION}")),
        );
    }
    let name = value.pointer("/metadata/name").and_then(Value::as_str);
    match name {
        None => errors.push(Diagnostic::error("metadata.name", "Required value").with_fix("name the site, e.g. metadata: {name: cortex}")),
        Some(name) if !is_dns_subdomain(name) => errors.push(
            Diagnostic::error("metadata.name", format!("{name:?} is not a valid name"))
                .with_fix("use lowercase alphanumerics, '-' and '.', at most 253 characters, starting and ending alphanumeric"),
        ),
        Some(_) => {}
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // apiVersion, kind and metadata were checked above; the CRD schema leaves them out.
    let mut body = object.clone();
    for key in ["apiVersion", "kind", "metadata"] {
        body.remove(key);
    }
    let mut errors = schema::validate(schema, &Value::Object(body));
    if !errors.is_empty() {
        return Err(errors);
    }
    let cluster: GpuCluster = match serde_json::from_value(value.clone()) {
        Ok(cluster) => cluster,
        Err(error) => return Err(vec![Diagnostic::error("spec", error.to_string())]),
    };
    // CEL runs on the object as the API server stores it: with defaults applied.
    let defaulted = match serde_json::to_value(&cluster) {
        Ok(value) => value,
        Err(error) => return Err(vec![Diagnostic::error("spec", error.to_string())]),
    };
    if let Err(failures) = kube::core::cel::Validator::new().validate(schema, &defaulted, None) {
        errors.extend(
            failures.iter().map(|failure| {
                Diagnostic::error(failure.field_path.clone(), failure.message.clone())
            }),
        );
        return Err(errors);
    }
    Ok(cluster)
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Reads a node inventory: a Kelvin `Inventory` (`apiVersion: kelvin.dev/v1alpha1`,
/// `kind: Inventory`, `nodes: [{name, labels, taints, capacity, allocatable, ready}]`) or a
/// Kubernetes `NodeList` / `List` as `kubectl get nodes -o yaml` prints it.
pub fn load_inventory(
    file: &str,
    bytes: &[u8],
) -> Result<Vec<crate::model::nodes::NodeInfo>, Vec<Diagnostic>> {
    let documents = parse_documents(file, bytes).map_err(|d| vec![d])?;
    let mut nodes = Vec::new();
    let mut errors = Vec::new();
    for document in documents {
        let kind = document
            .value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("");
        let result = match kind {
            "Inventory" => inventory_nodes(&document.value),
            "NodeList" | "List" => Ok(node_list(&document.value)),
            "Node" => Ok(node_list(&serde_json::json!({"items": [document.value]}))),
            other => Err(vec![Diagnostic::error("kind", format!("kind {other:?} is not an inventory"))
                .with_fix("use kind: Inventory (apiVersion: kelvin.dev/v1alpha1), or the output of `kubectl get nodes -o yaml`")]),
        };
        match result {
            Ok(found) => nodes.extend(found),
            Err(found) => {
                let text = String::from_utf8_lossy(bytes);
                let index = PathIndex::build(&text, document.origin.document);
                errors.extend(
                    found
                        .into_iter()
                        .map(|d| locate(d, &index, file, &document.origin)),
                );
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for node in &nodes {
        if !seen.insert(node.name.as_str()) {
            errors.push(at(
                Diagnostic::error("nodes", format!("node {:?} is listed twice", node.name))
                    .with_fix("list each node once"),
                file,
                1,
                1,
            ));
        }
    }
    if errors.is_empty() {
        Ok(nodes)
    } else {
        Err(errors)
    }
}

fn inventory_nodes(value: &Value) -> Result<Vec<crate::model::nodes::NodeInfo>, Vec<Diagnostic>> {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if api_version != API_VERSION {
        return Err(vec![
            Diagnostic::error(
                "apiVersion",
                format!("apiVersion {api_version:?} is not served by Kelvin"),
            )
            .with_fix(format!("use apiVersion: {API_VERSION}")),
        ]);
    }
    let Some(items) = value.get("nodes").and_then(Value::as_array) else {
        return Err(vec![
            Diagnostic::error("nodes", "Required value: a list of nodes")
                .with_fix("add nodes: [{name: gpu-00001, labels: {...}}]"),
        ]);
    };
    let mut nodes = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match serde_json::from_value::<crate::model::nodes::NodeInfo>(item.clone()) {
            Ok(node) => nodes.push(node),
            Err(error) => errors.push(
                Diagnostic::error(format!("nodes[{index}]"), error.to_string())
                    .with_fix("a node has name, labels, taints, capacity, allocatable and ready"),
            ),
        }
    }
    if errors.is_empty() {
        Ok(nodes)
    } else {
        Err(errors)
    }
}

fn node_list(value: &Value) -> Vec<crate::model::nodes::NodeInfo> {
    use std::collections::BTreeMap;
    let counts = |resources: Option<&Value>| -> BTreeMap<String, u64> {
        resources
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .filter(|(key, _)| key.contains('/'))
                    .filter_map(|(key, quantity)| {
                        Some((key.clone(), quantity.as_str()?.parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    value
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let name = item.pointer("/metadata/name")?.as_str()?.to_owned();
            let labels = item
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            let taints = item
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some(crate::model::nodes::NodeTaint {
                        key: t.get("key")?.as_str()?.to_owned(),
                        value: t.get("value").and_then(Value::as_str).map(str::to_owned),
                        effect: t.get("effect")?.as_str()?.to_owned(),
                    })
                })
                .collect();
            let ready = item
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("Ready")
                        && c.get("status").and_then(Value::as_str) == Some("True")
                });
            Some(crate::model::nodes::NodeInfo {
                name,
                labels,
                taints,
                capacity: counts(item.pointer("/status/capacity")),
                allocatable: counts(item.pointer("/status/allocatable")),
                ready,
            })
        })
        .collect()
}

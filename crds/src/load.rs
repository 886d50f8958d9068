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
/// (with line and column), empty files and alias bombs (see [`yaml_options`]).
pub fn parse_documents(file: &str, bytes: &[u8]) -> Result<Vec<Document>, Diagnostic> {
    parse(file, bytes, "add a GpuCluster (see examples/)")
}

/// [`parse_documents`], with what to say when the file is empty.
fn parse(file: &str, bytes: &[u8], empty_fix: &str) -> Result<Vec<Document>, Diagnostic> {
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
    let values: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, yaml_options(text.len())).map_err(
            |error| {
                let diagnostic = yaml_diagnostic(&error);
                match error.location() {
                    Some(location) if location.line() > 0 => at(
                        diagnostic,
                        file,
                        location.line() as usize,
                        (location.column() as usize).max(1),
                    ),
                    _ => at(diagnostic, file, 1, 1),
                }
            },
        )?;
    if values.is_empty() {
        return Err(at(
            Diagnostic::error("", "the file holds no YAML documents").with_fix(empty_fix),
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

/// Events Kelvin replays from `*alias` references in one file. A spec reuses a few snippets
/// (a selector, a taint) through aliases: hundreds of events. A billion-laughs file needs
/// billions; this stops it after a fraction of a second and a few MB.
const MAX_ALIAS_REPLAYED_EVENTS: usize = 100_000;

/// serde-saphyr's options for a file of `input_len` bytes. Its default budget caps a stream at
/// 250,000 nodes and 1,000,000 events, which a large inventory exceeds (70,000 nodes with a few
/// labels each are over a million YAML nodes). Written out, a YAML node takes at least a byte,
/// so budgets that grow with the file admit every file that uses no aliases, while expansion
/// through aliases stays bounded by [`MAX_ALIAS_REPLAYED_EVENTS`] whatever the file's size.
fn yaml_options(input_len: usize) -> serde_saphyr::Options {
    let defaults = serde_saphyr::Budget::default();
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: defaults.max_nodes.max(input_len),
            max_events: defaults.max_events.max(input_len.saturating_mul(2)),
            max_total_scalar_bytes: defaults.max_total_scalar_bytes.max(input_len),
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_REPLAYED_EVENTS,
        },
    }
}

/// A YAML error as a finding: what is wrong, without the parser's own location prefix (the
/// diagnostic carries file:line:col), and what to do about it.
fn yaml_diagnostic(error: &serde_saphyr::Error) -> Diagnostic {
    use serde_saphyr::{Error, MessageFormatter, budget::BudgetBreach};

    let mut inner = error;
    while let Error::AliasError { error, .. } | Error::WithSnippet { error, .. } = inner {
        inner = error;
    }
    const BOMB_FIX: &str = "write the repeated values out instead of nesting aliases (*name) in aliases; Kelvin refuses YAML that expands this far (an alias bomb)";
    let (message, fix) = match inner {
        Error::AliasReplayLimitExceeded {
            max_total_replayed_events,
            ..
        } => (
            format!(
                "YAML aliases expand to more than {max_total_replayed_events} events; reading stopped"
            ),
            BOMB_FIX,
        ),
        Error::AliasExpansionLimitExceeded { .. } | Error::AliasReplayStackDepthExceeded { .. } => {
            (
                format!(
                    "YAML aliases expand too far; reading stopped ({})",
                    DEFAULT_FORMATTER.format_message(inner)
                ),
                BOMB_FIX,
            )
        }
        Error::Budget { breach, .. } => match breach {
            BudgetBreach::AliasAnchorRatio { aliases, anchors } => (
                format!(
                    "YAML uses {aliases} aliases (*name) for {anchors} anchor{} (&name); reading stopped, as alias bombs do this",
                    if *anchors == 1 { "" } else { "s" }
                ),
                "use at most 10 aliases per anchor, or write the repeated values out",
            ),
            BudgetBreach::Nodes { nodes } => (
                format!(
                    "YAML expands to more than {} nodes; reading stopped",
                    nodes.saturating_sub(1)
                ),
                BOMB_FIX,
            ),
            BudgetBreach::Events { events } => (
                format!(
                    "YAML expands to more than {} events; reading stopped",
                    events.saturating_sub(1)
                ),
                BOMB_FIX,
            ),
            BudgetBreach::Depth { depth } => (
                format!("YAML nests {depth} levels deep; reading stopped"),
                "a spec nests a few levels; check the indentation and brackets here",
            ),
            BudgetBreach::Documents { documents } => (
                format!(
                    "the file holds more than {} YAML documents",
                    documents.saturating_sub(1)
                ),
                "split the file",
            ),
            other => (
                format!("YAML exceeds Kelvin's reading limits ({other:?}); reading stopped"),
                BOMB_FIX,
            ),
        },
        Error::DuplicateMappingKey { key, .. } => {
            let key = key.as_deref().unwrap_or("a key");
            return Diagnostic::error("", format!("{key} is given twice in the same mapping"))
                .with_fix(format!("keep one {key}"));
        }
        Error::NonFiniteFloat { value, .. } => {
            return Diagnostic::error("", format!("{value} is not a finite number"))
                .with_fix("use a finite number");
        }
        other => (
            format!(
                "YAML: {}",
                first_line(&DEFAULT_FORMATTER.format_message(other))
            ),
            "fix the YAML syntax at this position",
        ),
    };
    Diagnostic::error("", message).with_fix(fix)
}

const DEFAULT_FORMATTER: serde_saphyr::DefaultMessageFormatter =
    serde_saphyr::DefaultMessageFormatter;

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
        // An unknown field is wrong in its key; every other finding is about a value.
        let key = if diagnostic.message.starts_with("unknown field") {
            index.find_key(&diagnostic.path)
        } else {
            None
        };
        let (line, column) = key
            .or_else(|| index.find(&diagnostic.path))
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
    if kind.is_empty() {
        errors.push(
            Diagnostic::error("kind", "Required value")
                .with_fix("add kind: GpuCluster (with apiVersion: kelvin.dev/v1alpha1)"),
        );
    } else if kind != "GpuCluster" {
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
    if api_version.is_empty() {
        errors.push(
            Diagnostic::error("apiVersion", "Required value")
                .with_fix(format!("add apiVersion: {API_VERSION}")),
        );
    } else if api_version != API_VERSION {
        errors.push(
            Diagnostic::error(
                "apiVersion",
                format!("apiVersion {api_version:?} is not served by Kelvin"),
            )
            .with_fix(format!("use apiVersion: {API_VERSION}")),
        );
    }
    let name = value.pointer("/metadata/name");
    match name.map(|name| name.as_str().ok_or(name)) {
        Some(Err(other)) => errors.push(
            Diagnostic::error(
                "metadata.name",
                format!("Invalid value: {other}: must be of type string"),
            )
            .with_fix(if other.is_number() || other.is_boolean() {
                format!("quote it: name: \"{other}\"")
            } else {
                "give the site a name, e.g. metadata: {name: cortex}".to_owned()
            }),
        ),
        None => errors.push(Diagnostic::error("metadata.name", "Required value").with_fix("name the site, e.g. metadata: {name: cortex}")),
        Some(Ok(name)) if !crate::names::is_dns_subdomain(name) => errors.push(
            Diagnostic::error("metadata.name", format!("{name:?} is not a valid name"))
                .with_fix("use lowercase alphanumerics, '-' and '.', at most 253 characters, starting and ending alphanumeric"),
        ),
        Some(Ok(_)) => {}
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

/// Reads a node inventory: a Kelvin `Inventory` (`apiVersion: kelvin.dev/v1alpha1`,
/// `kind: Inventory`, `nodes: [{name, labels, taints, capacity, allocatable, ready}]`) or a
/// Kubernetes `NodeList` / `List` as `kubectl get nodes -o yaml` prints it.
pub fn load_inventory(
    file: &str,
    bytes: &[u8],
) -> Result<Vec<crate::node::NodeInfo>, Vec<Diagnostic>> {
    // Fast path: straight into typed nodes. Anything it does not take (a single Node document,
    // a mistake) goes through the JSON path below, which explains what is wrong.
    if let Some(nodes) = typed_inventory(bytes) {
        return match duplicate_nodes(&nodes, file) {
            errors if errors.is_empty() => Ok(nodes),
            errors => Err(errors),
        };
    }
    let documents = parse(
        file,
        bytes,
        "list the nodes: apiVersion: kelvin.dev/v1alpha1, kind: Inventory, nodes: [{name: gpu-00001, labels: {...}}], or save `kubectl get nodes -o yaml`",
    )
    .map_err(|d| vec![d])?;
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
    errors.extend(duplicate_nodes(&nodes, file));
    if errors.is_empty() {
        Ok(nodes)
    } else {
        Err(errors)
    }
}

fn inventory_nodes(value: &Value) -> Result<Vec<crate::node::NodeInfo>, Vec<Diagnostic>> {
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
        match serde_json::from_value::<crate::node::NodeInfo>(item.clone()) {
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

fn node_list(value: &Value) -> Vec<crate::node::NodeInfo> {
    let counts = |resources: Option<&Value>| {
        resources
            .and_then(Value::as_object)
            .map(|map| extended_counts(map.iter()))
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
                    Some(crate::node::NodeTaint {
                        key: t.get("key")?.as_str()?.to_owned(),
                        value: t.get("value").and_then(Value::as_str).map(str::to_owned),
                        effect: t.get("effect")?.as_str()?.to_owned(),
                    })
                })
                .collect();
            let annotations = item
                .pointer("/metadata/annotations")
                .and_then(Value::as_object)
                .map(|map| {
                    map.iter()
                        .filter(|(key, _)| key.starts_with(crate::node::KELVIN_ANNOTATION_PREFIX))
                        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            let ready = item
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("Ready")
                        && c.get("status").and_then(Value::as_str) == Some("True")
                });
            Some(crate::node::NodeInfo {
                name,
                labels,
                annotations,
                taints,
                capacity: counts(item.pointer("/status/capacity")),
                allocatable: counts(item.pointer("/status/allocatable")),
                ready,
                kelvin_label_keys: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_files_without_aliases_are_read() {
        // More YAML nodes than serde-saphyr's default budget (250,000), as a large inventory has.
        let text = format!("items: [{}]\n", vec!["1"; 260_000].join(","));
        let documents = parse_documents("big.yaml", text.as_bytes()).unwrap();
        assert_eq!(
            documents[0].value["items"].as_array().map(Vec::len),
            Some(260_000)
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (anchor, alias) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            text.push_str(&format!(
                "{anchor}: &{anchor} [{}]\n",
                vec![format!("*{alias}"); 9].join(", ")
            ));
        }
        let error = parse_documents("bomb.yaml", text.as_bytes()).unwrap_err();
        assert!(
            error
                .message
                .starts_with("YAML aliases expand to more than"),
            "{error}"
        );
        assert!(
            error
                .fix
                .as_deref()
                .is_some_and(|fix| fix.contains("alias bomb")),
            "{error}"
        );
    }

    #[test]
    fn a_few_aliases_are_fine() {
        let text = "sel: &sel {matchLabels: {sku: a}}\none: *sel\ntwo: *sel\n";
        let documents = parse_documents("aliases.yaml", text.as_bytes()).unwrap();
        assert_eq!(documents[0].value["two"]["matchLabels"]["sku"], "a");
    }
}

fn duplicate_nodes(nodes: &[crate::node::NodeInfo], file: &str) -> Vec<Diagnostic> {
    let mut seen = std::collections::HashSet::new();
    nodes
        .iter()
        .filter(|node| !seen.insert(node.name.as_str()))
        .map(|node| {
            at(
                Diagnostic::error("nodes", format!("node {:?} is listed twice", node.name))
                    .with_fix("list each node once"),
                file,
                1,
                1,
            )
        })
        .collect()
}

/// An inventory document as typed YAML: Kelvin's `Inventory` or a Kubernetes `List`/`NodeList`.
#[derive(serde::Deserialize)]
struct InventoryFile {
    #[serde(default, rename = "apiVersion")]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    nodes: Option<Vec<crate::node::NodeInfo>>,
    #[serde(default)]
    items: Option<Vec<KubeNode>>,
}

/// The parts of a Kubernetes Node Kelvin reads.
#[derive(serde::Deserialize)]
struct KubeNode {
    metadata: KubeNodeMeta,
    #[serde(default)]
    spec: KubeNodeSpec,
    #[serde(default)]
    status: KubeNodeStatus,
}

#[derive(serde::Deserialize)]
struct KubeNodeMeta {
    name: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
struct KubeNodeSpec {
    #[serde(default)]
    taints: Vec<KubeTaint>,
}

/// A Node's taint; unlike an inventory's, it may carry fields Kelvin ignores (`timeAdded`).
#[derive(serde::Deserialize)]
struct KubeTaint {
    key: String,
    #[serde(default)]
    value: Option<String>,
    effect: String,
}

#[derive(serde::Deserialize, Default)]
struct KubeNodeStatus {
    #[serde(default)]
    capacity: std::collections::BTreeMap<String, Value>,
    #[serde(default)]
    allocatable: std::collections::BTreeMap<String, Value>,
    #[serde(default)]
    conditions: Vec<KubeNodeCondition>,
}

#[derive(serde::Deserialize)]
struct KubeNodeCondition {
    #[serde(rename = "type")]
    condition: String,
    status: String,
}

/// Extended resources (`vendor/name`) as counts; CPU, memory and pods are not Kelvin's.
fn extended_counts<'a>(
    resources: impl Iterator<Item = (&'a String, &'a Value)>,
) -> std::collections::BTreeMap<String, u64> {
    resources
        .filter(|(key, _)| key.contains('/'))
        .filter_map(|(key, quantity)| {
            let count = match quantity {
                Value::String(text) => text.parse().ok()?,
                other => other.as_u64()?,
            };
            Some((key.clone(), count))
        })
        .collect()
}

fn typed_inventory(bytes: &[u8]) -> Option<Vec<crate::node::NodeInfo>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let documents: Vec<InventoryFile> =
        serde_saphyr::from_multiple_with_options(text, yaml_options(text.len())).ok()?;
    if documents.is_empty() {
        return None;
    }
    let mut nodes = Vec::new();
    for document in documents {
        match (document.kind.as_str(), document.nodes, document.items) {
            ("Inventory", Some(found), None) if document.api_version == API_VERSION => {
                nodes.extend(found)
            }
            ("List" | "NodeList", None, Some(items)) => {
                nodes.extend(items.into_iter().map(|item| {
                    crate::node::NodeInfo {
                        name: item.metadata.name,
                        labels: item.metadata.labels,
                        annotations: crate::node::kelvin_annotations(&item.metadata.annotations),
                        taints: item
                            .spec
                            .taints
                            .into_iter()
                            .map(|t| crate::node::NodeTaint {
                                key: t.key,
                                value: t.value,
                                effect: t.effect,
                            })
                            .collect(),
                        capacity: extended_counts(item.status.capacity.iter()),
                        allocatable: extended_counts(item.status.allocatable.iter()),
                        ready: item
                            .status
                            .conditions
                            .iter()
                            .any(|c| c.condition == "Ready" && c.status == "True"),
                        kelvin_label_keys: None,
                    }
                }))
            }
            _ => return None,
        }
    }
    Some(nodes)
}

#[cfg(test)]
mod inventory_tests {
    use super::*;

    const NODE: &str = r#"
  metadata: {name: gpu-00007, labels: {kelvin.dev/sku: hgx-h100}}
  spec:
    taints: [{key: node.kubernetes.io/unreachable, effect: NoExecute, timeAdded: "2026-12-01T10:00:00Z"}]
  status:
    capacity: {cpu: "224", nvidia.com/gpu: "8"}
    allocatable: {cpu: "220", nvidia.com/gpu: 8}
    conditions: [{type: Ready, status: "True"}]
"#;

    #[test]
    fn a_kubectl_node_list_and_single_node_documents_read_the_same() {
        let list =
            format!("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node{NODE}");
        let single = format!("apiVersion: v1\nkind: Node\n{}", NODE.replace("\n  ", "\n"));
        // The list takes the typed path, the single Node the JSON one: same nodes.
        assert!(typed_inventory(list.as_bytes()).is_some());
        assert!(typed_inventory(single.as_bytes()).is_none());
        let from_list = load_inventory("list.yaml", list.as_bytes()).unwrap();
        let from_single = load_inventory("node.yaml", single.as_bytes()).unwrap();
        assert_eq!(from_list, from_single);
        let node = &from_list[0];
        assert_eq!(node.name, "gpu-00007");
        assert_eq!(node.capacity.get("nvidia.com/gpu"), Some(&8));
        assert!(
            !node.capacity.contains_key("cpu"),
            "only extended resources"
        );
        assert_eq!(node.taints[0].key, "node.kubernetes.io/unreachable");
        assert!(node.ready);
    }
}

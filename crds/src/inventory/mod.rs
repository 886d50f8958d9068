//! Node inventories: the nodes `kelvin plan --inventory` plans against. Kelvin's own
//! `Inventory` (`apiVersion: kelvin.dev/v1alpha1`, `nodes: [{name, labels, taints, capacity,
//! allocatable, ready}]`), or what `kubectl get nodes -o json|yaml` saves (a `List` or
//! `NodeList` of Nodes, or one `Node`). JSON is streamed ([`read_json_inventory`]); YAML is
//! parsed whole, into the same slim types. Anything that is not a node, a node without a
//! name, a value Kubernetes would refuse: an error naming the item, never a node dropped.

mod json;
mod objects;

use std::collections::HashMap;

pub use json::read_json_inventory;

use crate::{
    diagnostics::{Diagnostic, Location},
    locate::PathIndex,
    node::NodeInfo,
    v1alpha1::API_VERSION,
};

/// Problems reported one by one; past this, counted (a List of 70,000 Pods is one mistake).
const MAX_REPORTED: usize = 20;

const INVENTORY_FIX: &str =
    "use kind: Inventory (apiVersion: kelvin.dev/v1alpha1), or save `kubectl get nodes -o json`";

/// Reads an inventory held in memory: JSON (first character `{`) streamed from the bytes, any
/// other text as YAML.
pub fn load_inventory(file: &str, bytes: &[u8]) -> Result<Vec<NodeInfo>, Vec<Diagnostic>> {
    if is_json(bytes) {
        return read_json_inventory(file, bytes);
    }
    read_yaml(file, bytes)
}

/// Whether `start` (the first bytes of a file) begins a JSON object: `kubectl get -o json`.
pub fn is_json(start: &[u8]) -> bool {
    start
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// A YAML inventory document, typed: Kelvin's `Inventory`, a `List` / `NodeList`, or one Node.
#[derive(serde::Deserialize)]
struct Document {
    #[serde(default, rename = "apiVersion")]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    items: Option<Vec<objects::Item>>,
    #[serde(default)]
    nodes: Option<Vec<NodeInfo>>,
    #[serde(default)]
    metadata: objects::Metadata,
    #[serde(default)]
    spec: objects::NodeSpec,
    #[serde(default)]
    status: objects::NodeStatus,
}

fn read_yaml(file: &str, bytes: &[u8]) -> Result<Vec<NodeInfo>, Vec<Diagnostic>> {
    let text = crate::load::utf8(file, bytes).map_err(|d| vec![d])?;
    let documents: Vec<Document> =
        serde_saphyr::from_multiple_with_options(text, crate::load::yaml_options(text.len()))
            .map_err(|error| vec![crate::load::yaml_error(file, &error)])?;
    if documents.is_empty() {
        return Err(vec![
            Diagnostic::error("", "the file holds no YAML documents")
                .with_fix(
                    "list the nodes: apiVersion: kelvin.dev/v1alpha1, kind: Inventory, nodes: [{name: gpu-00001, labels: {...}}], or save `kubectl get nodes -o yaml`",
                )
                .at(file, 1, 1),
        ]);
    }
    let mut collector = Collector::new(file);
    let several = documents.len() > 1;
    for (number, document) in documents.into_iter().enumerate() {
        let prefix = if several {
            format!("document {}: ", number + 1)
        } else {
            String::new()
        };
        let errors_before = collector.errors.len();
        let list = document.items.is_some() || document.nodes.is_some();
        for (key, entries) in [
            (
                "items",
                document
                    .items
                    .map(|items| items.into_iter().map(json::Entry::Item).collect()),
            ),
            (
                "nodes",
                document
                    .nodes
                    .map(|nodes| nodes.into_iter().map(json::Entry::Node).collect::<Vec<_>>()),
            ),
        ] {
            for (index, entry) in entries.into_iter().flatten().enumerate() {
                collector.entry(&format!("{prefix}{key}"), index, entry, None);
            }
        }
        let kind = Kind::new(document.kind.as_deref(), document.api_version.as_deref());
        let (metadata, spec, status) = (document.metadata, document.spec, document.status);
        collector.document(&kind, &prefix, list, || objects::Item {
            kind: Some("Node".to_owned()),
            metadata,
            spec,
            status,
        });
        // Errors point at their field when the file has it, else at the nearest field above.
        if collector.errors.len() > errors_before {
            let paths: Vec<String> = collector.errors[errors_before..]
                .iter()
                .map(|e| e.path.strip_prefix(&prefix).unwrap_or(&e.path).to_owned())
                .collect();
            let index = PathIndex::build_for(text, number, paths.iter().map(String::as_str));
            for error in &mut collector.errors[errors_before..] {
                let path = error.path.strip_prefix(&prefix).unwrap_or(&error.path);
                let (line, column) = index.find(path).unwrap_or((1, 1));
                error.location = Some(Location {
                    file: file.to_owned(),
                    line,
                    column,
                });
            }
        }
    }
    collector.finish()
}

/// A document's kind and apiVersion, as given.
pub(super) struct Kind {
    kind: Option<String>,
    api_version: Option<String>,
}

impl Kind {
    fn new(kind: Option<&str>, api_version: Option<&str>) -> Self {
        Self {
            kind: kind.map(str::to_owned),
            api_version: api_version.map(str::to_owned),
        }
    }
}

/// The nodes of one file and what is wrong with them, each problem naming its item.
pub(super) struct Collector<'f> {
    file: &'f str,
    nodes: Vec<NodeInfo>,
    /// Per node, (list, index in it, line or 0), to name both items of a duplicate.
    origins: Vec<(u32, u32, u32)>,
    lists: Vec<String>,
    errors: Vec<Diagnostic>,
    unreported: usize,
}

impl<'f> Collector<'f> {
    fn new(file: &'f str) -> Self {
        Self {
            file,
            nodes: Vec::new(),
            origins: Vec::new(),
            lists: Vec::new(),
            errors: Vec::new(),
            unreported: 0,
        }
    }

    fn error(&mut self, diagnostic: Diagnostic) {
        if self.errors.len() < MAX_REPORTED {
            self.errors.push(diagnostic);
        } else {
            self.unreported += 1;
        }
    }

    /// Item `index` of the list `list` (`items`, `nodes`), starting at `location` when known.
    fn entry(&mut self, list: &str, index: usize, entry: json::Entry, location: Option<Location>) {
        if self.lists.last().is_none_or(|last| last != list) {
            self.lists.push(list.to_owned());
        }
        let origin = (self.lists.len() as u32 - 1, index as u32);
        self.add(&format!("{list}[{index}]"), origin, entry, location);
    }

    /// A node at `path` (empty: the document is the node).
    fn add(
        &mut self,
        path: &str,
        origin: (u32, u32),
        entry: json::Entry,
        location: Option<Location>,
    ) {
        let node = match entry {
            json::Entry::Node(node) => Ok(node),
            json::Entry::Item(item) => match item.kind.as_deref() {
                Some(kind) if kind != "Node" => {
                    let name = match &item.metadata.name {
                        Some(objects::Scalar::Text(name)) => format!(" {name}"),
                        _ => String::new(),
                    };
                    Err(vec![(
                        "kind".to_owned(),
                        format!("{kind}{name} is not a Node: an inventory lists nodes"),
                        "save the nodes: kubectl get nodes -o json".to_owned(),
                    )])
                }
                _ => objects::to_node(item),
            },
        };
        match node {
            Ok(node) => {
                let line = location.as_ref().map_or(0, |l| l.line as u32);
                self.origins.push((origin.0, origin.1, line));
                self.nodes.push(node);
            }
            Err(problems) => {
                for (field, message, fix) in problems {
                    let field_path = if path.is_empty() {
                        field
                    } else {
                        format!("{path}.{field}")
                    };
                    let mut diagnostic = Diagnostic::error(field_path, message).with_fix(fix);
                    diagnostic.location = location.clone();
                    self.error(diagnostic);
                }
            }
        }
    }

    /// The end of a document: its kind decides whether it was an inventory. `list`: it had
    /// `items` or `nodes`; `single`: the document as one Node, for `kind: Node`.
    fn document(
        &mut self,
        kind: &Kind,
        prefix: &str,
        list: bool,
        single: impl FnOnce() -> objects::Item,
    ) {
        let error = |message: String, fix: &str| {
            Diagnostic::error(format!("{prefix}kind"), message).with_fix(fix.to_owned())
        };
        match kind.kind.as_deref() {
            Some("Inventory") => match kind.api_version.as_deref() {
                Some(API_VERSION) if list => {}
                Some(API_VERSION) => self.error(
                    Diagnostic::error(format!("{prefix}nodes"), "Required value: a list of nodes")
                        .with_fix("add nodes: [{name: gpu-00001, labels: {...}}]"),
                ),
                other => self.error(
                    Diagnostic::error(
                        format!("{prefix}apiVersion"),
                        format!(
                            "apiVersion {:?} is not served by Kelvin",
                            other.unwrap_or_default()
                        ),
                    )
                    .with_fix(format!("use apiVersion: {API_VERSION}")),
                ),
            },
            Some("List" | "NodeList") => {}
            Some("Node") if !list => {
                let path = prefix.trim_end_matches(": ");
                self.lists.push(path.to_owned());
                let origin = (self.lists.len() as u32 - 1, 0);
                self.add(path, origin, json::Entry::Item(single()), None);
            }
            Some(other) => self.error(error(
                format!("kind {other:?} is not an inventory"),
                INVENTORY_FIX,
            )),
            None => self.error(error("Required value: kind".to_owned(), INVENTORY_FIX)),
        }
    }

    /// The nodes read, or every problem (nodes listed twice included).
    fn finish(mut self) -> Result<Vec<NodeInfo>, Vec<Diagnostic>> {
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(self.nodes.len());
        let mut duplicates = Vec::new();
        for (position, node) in self.nodes.iter().enumerate() {
            if let Some(earlier) = first.insert(node.name.as_str(), position) {
                // Keep the first position for the message.
                first.insert(node.name.as_str(), earlier);
                duplicates.push((earlier, position));
            }
        }
        for (earlier, position) in duplicates {
            let path_of = |position: usize| {
                let (list, index, _) = self.origins[position];
                match self.lists[list as usize].as_str() {
                    "" => "the document".to_owned(),
                    list => format!("{list}[{index}]"),
                }
            };
            let line = self.origins[position].2.max(1) as usize;
            let diagnostic = Diagnostic::error(
                path_of(position),
                format!(
                    "node {:?} is listed twice (also {})",
                    self.nodes[position].name,
                    path_of(earlier)
                ),
            )
            .with_fix("list each node once")
            .at(self.file, line, 1);
            if self.errors.len() < MAX_REPORTED {
                self.errors.push(diagnostic);
            } else {
                self.unreported += 1;
            }
        }
        if self.unreported > 0 {
            let more = self.unreported;
            self.errors.push(
                Diagnostic::error(
                    "",
                    format!(
                        "and {more} more problem{} like these",
                        if more == 1 { "" } else { "s" }
                    ),
                )
                .at(self.file, 1, 1),
            );
        }
        if self.errors.is_empty() {
            Ok(self.nodes)
        } else {
            Err(self.errors)
        }
    }
}

#[cfg(test)]
mod tests;

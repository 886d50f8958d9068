//! Reading specs from YAML: bytes -> documents -> schema check -> typed `GpuCluster` -> CEL
//! rules. Every problem becomes a [`Diagnostic`] naming the file, line and column, the field
//! path and the fix; a file with several documents has all of them read.
//!
//! `yaml` reads a file into documents, `document` checks and decodes one; this module puts
//! each document's outcome together and points findings at their lines.

mod document;
mod yaml;

use serde_json::Value;

pub(crate) use document::serde_message;
pub use document::{MAX_CLUSTER_NAME, check_document, gpu_cluster_schema};
pub use yaml::parse_documents;
pub(crate) use yaml::{utf8, yaml_error, yaml_options};

use crate::{
    diagnostics::{Diagnostic, Location},
    locate::PathIndex,
    v1alpha1::GpuCluster,
};

/// Reads a node inventory (moved to [`crate::inventory`], kept here for callers).
pub use crate::inventory::load_inventory;

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

/// What became of one document of a spec file.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It passed the schema and CEL rules.
    Cluster(Box<GpuCluster>, Origin),
    /// It did not (or the file could not be read: then `origin.document` is 0). `name` is its
    /// `metadata.name` when it has one.
    Rejected {
        origin: Origin,
        name: String,
        diagnostics: Vec<Diagnostic>,
    },
}

/// Reads every document of `bytes`: a GpuCluster, or why not, in file order.
pub fn load_documents(file: &str, bytes: &[u8]) -> Vec<Outcome> {
    let documents = match parse_documents(file, bytes) {
        Ok(documents) => documents,
        Err(diagnostic) => {
            return vec![Outcome::Rejected {
                origin: Origin {
                    file: file.to_owned(),
                    document: 0,
                },
                name: String::new(),
                diagnostics: vec![diagnostic],
            }];
        }
    };
    let mut text = None;
    documents
        .into_iter()
        .map(|document| match check_document(&document.value) {
            Ok(cluster) => Outcome::Cluster(Box::new(cluster), document.origin),
            Err(found) => {
                let text = text.get_or_insert_with(|| String::from_utf8_lossy(bytes));
                let index = PathIndex::build_for(
                    text,
                    document.origin.document,
                    found.iter().map(|d| d.path.as_str()),
                );
                let name = document
                    .value
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                Outcome::Rejected {
                    diagnostics: found
                        .into_iter()
                        .map(|d| locate(d, &index, file, &document.origin))
                        .collect(),
                    origin: document.origin,
                    name,
                }
            }
        })
        .collect()
}

/// Reads every GpuCluster in `bytes`. Returns the ones that pass the schema and CEL rules, and
/// every problem found (with locations).
pub fn load_gpu_clusters(file: &str, bytes: &[u8]) -> (Vec<(GpuCluster, Origin)>, Vec<Diagnostic>) {
    let mut clusters = Vec::new();
    let mut diagnostics = Vec::new();
    for outcome in load_documents(file, bytes) {
        match outcome {
            Outcome::Cluster(cluster, origin) => clusters.push((*cluster, origin)),
            Outcome::Rejected {
                diagnostics: found, ..
            } => diagnostics.extend(found),
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

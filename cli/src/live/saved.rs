//! Saved plans (`kelvin plan --out FILE`, `kelvin apply FILE`): the spec as written, what was
//! observed (the stored GpuCluster's uid and generation, one digest per node and per owned
//! object), and the plan. `apply FILE` observes again and refuses, naming what changed, when
//! the cluster moved since.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, Result, bail};
use kelvin_core::{observed::Observed, plan::Plan};
use kelvin_crds::v1alpha1::GpuCluster;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::diff;

/// `kind` of a saved plan file.
pub const KIND: &str = "KelvinPlan";
/// Format version; a file of another version is refused.
pub const VERSION: u32 = 1;
/// Differences named before "and N more".
const NAMED: usize = 5;

/// What a plan was made against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fingerprint {
    /// The stored GpuCluster's uid and generation (None: it did not exist).
    pub gpu_cluster: Option<(String, i64)>,
    /// Per node: a digest of what Kelvin reads of it (labels, Kelvin's annotations, taints,
    /// capacity, Ready, the label keys Kelvin owns).
    pub nodes: BTreeMap<String, String>,
    /// Per owned object (`Kind/namespace/name`): a digest of it without status and the
    /// metadata the server maintains.
    pub objects: BTreeMap<String, String>,
}

fn digest(bytes: &[u8]) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, bytes);
    // 64 bits tell two states of one node apart; the whole hash would triple the file.
    hash.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Fingerprint {
    pub fn of(stored: Option<&GpuCluster>, observed: &Observed) -> Self {
        let gpu_cluster = stored.map(|c| {
            (
                c.metadata.uid.clone().unwrap_or_default(),
                c.metadata.generation.unwrap_or_default(),
            )
        });
        let nodes = observed
            .nodes()
            .iter()
            .map(|node| {
                let bytes = serde_json::to_vec(node).unwrap_or_default();
                (node.name.clone(), digest(&bytes))
            })
            .collect();
        let objects = observed
            .objects
            .iter()
            .map(|(key, object)| {
                let bytes = serde_json::to_vec(&diff::written(object)).unwrap_or_default();
                (key.to_string(), digest(&bytes))
            })
            .collect();
        Self {
            gpu_cluster,
            nodes,
            objects,
        }
    }

    /// What differs between the plan's cluster (`self`) and `now`, one line per kind of change;
    /// empty when nothing does.
    pub fn moved(&self, now: &Self) -> Vec<String> {
        let mut lines = Vec::new();
        match (&self.gpu_cluster, &now.gpu_cluster) {
            (a, b) if a == b => {}
            (None, Some((_, generation))) => lines.push(format!(
                "the GpuCluster was created since (now at generation {generation})"
            )),
            (Some(_), None) => lines.push("the GpuCluster was deleted since".to_owned()),
            (Some((uid_a, _)), Some((uid_b, generation))) if uid_a != uid_b => lines.push(format!(
                "the GpuCluster was deleted and created again since (now at generation {generation})"
            )),
            (Some((_, a)), Some((_, b))) => lines.push(format!(
                "the GpuCluster's spec changed since: generation {a} then, {b} now"
            )),
            _ => {}
        }
        lines.extend(changed("node", &self.nodes, &now.nodes));
        lines.extend(changed("object", &self.objects, &now.objects));
        lines
    }
}

fn named(names: &[&String]) -> String {
    let shown: Vec<&str> = names.iter().take(NAMED).map(|n| n.as_str()).collect();
    let more = names.len().saturating_sub(NAMED);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn changed(
    noun: &str,
    then: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Vec<String> {
    let added: Vec<&String> = now.keys().filter(|k| !then.contains_key(*k)).collect();
    let removed: Vec<&String> = then.keys().filter(|k| !now.contains_key(*k)).collect();
    let differ: Vec<&String> = then
        .iter()
        .filter(|(k, v)| now.get(*k).is_some_and(|n| n != *v))
        .map(|(k, _)| k)
        .collect();
    let mut lines = Vec::new();
    for (list, what) in [
        (added, "appeared"),
        (removed, "are gone"),
        (differ, "changed"),
    ] {
        if list.is_empty() {
            continue;
        }
        let verb = match (list.len(), what) {
            (1, "are gone") => "is gone",
            _ => what,
        };
        lines.push(format!(
            "{} {verb}: {}",
            crate::output::count(list.len() as u64, noun),
            named(&list)
        ));
    }
    lines
}

/// One GpuCluster of a saved plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedCluster {
    /// The spec as written (what `apply` server-side applies).
    pub document: Value,
    /// What the plan was made against.
    pub observed: Fingerprint,
    /// The plan, as `kelvin plan -o json` prints it.
    pub plan: Value,
}

/// A saved plan file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedPlan {
    pub kind: String,
    pub version: u32,
    /// The `kelvin` that made it.
    pub kelvin_version: String,
    /// The API server it was made against.
    pub server: String,
    pub clusters: Vec<SavedCluster>,
}

impl SavedPlan {
    pub fn new(server: &str) -> Self {
        Self {
            kind: KIND.to_owned(),
            version: VERSION,
            kelvin_version: env!("CARGO_PKG_VERSION").to_owned(),
            server: server.to_owned(),
            clusters: Vec::new(),
        }
    }

    pub fn push(&mut self, document: Value, observed: Fingerprint, plan: &Plan) -> Result<()> {
        self.clusters.push(SavedCluster {
            document,
            observed,
            plan: serde_json::to_value(plan).context("serializing the plan")?,
        });
        Ok(())
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec(self).context("serializing the saved plan")?;
        std::fs::write(path, text)
            .with_context(|| format!("writing the plan to {}", path.display()))
    }

    /// Reads a saved plan; None when `path` is not one (a spec file, to be planned instead).
    pub fn read(path: &Path) -> Result<Option<Self>> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(None);
        };
        if value.get("kind").and_then(Value::as_str) != Some(KIND) {
            return Ok(None);
        }
        let version = value
            .get("version")
            .and_then(Value::as_u64)
            .unwrap_or_default();
        if version != u64::from(VERSION) {
            bail!(
                "{} is a saved plan of format {version}; this kelvin reads format {VERSION}\n  fix: make the plan again with this kelvin: kelvin plan -f SPEC --out {}",
                path.display(),
                path.display()
            );
        }
        let plan: Self = serde_json::from_value(value)
            .with_context(|| format!("reading the saved plan {}", path.display()))?;
        Ok(Some(plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(nodes: &[(&str, &str)]) -> Fingerprint {
        Fingerprint {
            gpu_cluster: Some(("u1".into(), 3)),
            nodes: nodes
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            objects: BTreeMap::new(),
        }
    }

    #[test]
    fn a_moved_cluster_is_named_by_what_moved() {
        let then = print(&[("gpu-1", "a"), ("gpu-2", "b"), ("gpu-3", "c")]);
        assert!(then.moved(&then).is_empty());
        let mut now = print(&[("gpu-1", "a"), ("gpu-2", "B"), ("gpu-4", "d")]);
        now.gpu_cluster = Some(("u1".into(), 4));
        assert_eq!(
            then.moved(&now),
            vec![
                "the GpuCluster's spec changed since: generation 3 then, 4 now".to_owned(),
                "1 node appeared: gpu-4".to_owned(),
                "1 node is gone: gpu-3".to_owned(),
                "1 node changed: gpu-2".to_owned(),
            ]
        );
        now.gpu_cluster = Some(("u2".into(), 1));
        assert!(then.moved(&now)[0].contains("deleted and created again"));
    }
}

//! The slim view of a node Kelvin keeps (DESIGN.md §4): name, labels, Kelvin's annotations,
//! taints, Ready and the extended resources. Inventories, simulated nodes and the operator's
//! watch cache all become this type; managedFields, images and the rest are never stored.

use std::{collections::BTreeMap, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::sorted_map::{Labels, Resources, Strings};

/// Annotations Kelvin keeps on a node start with this prefix; others are dropped on read.
pub const KELVIN_ANNOTATION_PREFIX: &str = "kelvin.dev/";

/// A taint as it sits on a node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTaint {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

impl NodeTaint {
    /// `key:effect`: what makes a taint unique on a node, and how Kelvin records ownership.
    pub fn identity(&self) -> String {
        format!("{}:{}", self.key, self.effect)
    }

    /// Whether pods without a toleration stay away (NoSchedule or NoExecute).
    pub fn repels_pods(&self) -> bool {
        self.effect == "NoSchedule" || self.effect == "NoExecute"
    }
}

impl std::fmt::Display for NodeTaint {
    /// `key=value:Effect`, as kubectl prints taints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={}:{}", self.key, value, self.effect),
            None => write!(f, "{}:{}", self.key, self.effect),
        }
    }
}

/// What Kelvin needs to know about a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Labels (keys and values shared across nodes in the operator's cache).
    #[serde(default)]
    pub labels: Labels,
    /// Kelvin's annotations (`kelvin.dev/owned-taints`, `kelvin.dev/transition`); others are
    /// not kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<NodeTaint>,
    /// Extended-resource capacity (e.g. `nvidia.com/gpu: 8`).
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub capacity: Resources,
    /// Extended-resource allocatable; defaults to capacity.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub allocatable: Resources,
    /// Whether the node is Ready.
    #[serde(default = "ready_by_default")]
    pub ready: bool,
    /// Label keys the field manager `kelvin` owns on the node (from managedFields), when known.
    /// None for inventories and simulated nodes: then the keys Kelvin can produce count as its.
    #[serde(skip)]
    pub kelvin_label_keys: Option<Vec<Arc<str>>>,
}

impl NodeInfo {
    /// The same node with its label keys and values, resource names and Kelvin's label keys
    /// shared through `strings`: at 70,000 nodes most of them are the same few hundred.
    pub fn intern(&mut self, strings: &mut Strings) {
        self.labels.intern(strings);
        self.capacity.intern_keys(strings);
        self.allocatable.intern_keys(strings);
        for key in self.kelvin_label_keys.iter_mut().flatten() {
            *key = strings.share(key);
        }
    }
}

fn ready_by_default() -> bool {
    true
}

/// Only Kelvin's annotations, from a node's full set.
pub fn kelvin_annotations<'a>(
    annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> BTreeMap<String, String> {
    annotations
        .into_iter()
        .filter(|(key, _)| key.starts_with(KELVIN_ANNOTATION_PREFIX))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

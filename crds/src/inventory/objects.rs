//! The parts of a Kubernetes object an inventory's items are read into, whatever the format
//! (YAML through serde-saphyr, JSON through serde_json): only what [`NodeInfo`] keeps.
//! managedFields, images, other annotations and the rest are skipped as they are read, never
//! stored. A value Kubernetes would refuse (a label value that is a number) is kept as a
//! [`Scalar::Other`] so the error can name the item and the key instead of failing the file.

use std::{collections::BTreeMap, fmt, sync::Arc};

use serde::{
    Deserialize, Deserializer,
    de::{IgnoredAny, MapAccess, SeqAccess, Visitor},
};

use crate::{
    node::{KELVIN_ANNOTATION_PREFIX, NodeInfo, NodeTaint},
    sorted_map::{Labels, Resources},
};

/// One item of a `List` / `NodeList`, or a single `Node` document.
#[derive(Deserialize, Default)]
pub(super) struct Item {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: NodeSpec,
    #[serde(default)]
    pub status: NodeStatus,
}

#[derive(Deserialize, Default)]
pub(super) struct Metadata {
    #[serde(default)]
    pub name: Option<Scalar>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, Scalar>>,
    #[serde(default)]
    pub annotations: KelvinAnnotations,
}

#[derive(Deserialize, Default)]
pub(super) struct NodeSpec {
    #[serde(default)]
    pub taints: Option<Vec<Taint>>,
}

/// A Node's taint; unlike an inventory's, it may carry fields Kelvin ignores (`timeAdded`).
#[derive(Deserialize)]
pub(super) struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    pub effect: String,
}

#[derive(Deserialize, Default)]
pub(super) struct NodeStatus {
    #[serde(default)]
    pub capacity: ExtendedResources,
    #[serde(default)]
    pub allocatable: ExtendedResources,
    #[serde(default)]
    pub conditions: Option<Vec<Condition>>,
}

#[derive(Deserialize)]
pub(super) struct Condition {
    #[serde(rename = "type")]
    pub condition: String,
    pub status: String,
}

/// A scalar where Kubernetes expects a string: the string, or what was there instead.
pub(super) enum Scalar {
    Text(String),
    Other(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Text(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Other(format!("{v} (boolean)")))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Other(format!("{v} (number)")))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Other(format!("{v} (number)")))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other(format!("{v} (number)")))
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other("null".to_owned()))
            }
            fn visit_none<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other("null".to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("a list".to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("a mapping".to_owned()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// A map key kept only when `keep` says so: the others are looked at, never allocated.
struct KeyIf<F: Fn(&str) -> bool>(F);

impl<'de, F: Fn(&str) -> bool> serde::de::DeserializeSeed<'de> for KeyIf<F> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        struct KeyVisitor<F>(F);
        impl<F: Fn(&str) -> bool> Visitor<'_> for KeyVisitor<F> {
            type Value = Option<String>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok((self.0)(v).then(|| v.to_owned()))
            }
        }
        deserializer.deserialize_str(KeyVisitor(self.0))
    }
}

/// Entries of a map whose key `keep` accepts; other entries are skipped unread.
fn filtered_map<'de, A: MapAccess<'de>, V: Deserialize<'de>>(
    mut map: A,
    keep: impl Fn(&str) -> bool + Copy,
) -> Result<Vec<(String, V)>, A::Error> {
    let mut kept = Vec::new();
    while let Some(key) = map.next_key_seed(KeyIf(keep))? {
        match key {
            Some(key) => kept.push((key, map.next_value::<V>()?)),
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(kept)
}

/// Only the `kelvin.dev/` annotations of a node (DESIGN.md §4).
#[derive(Default)]
pub(super) struct KelvinAnnotations(pub Vec<(String, Scalar)>);

impl<'de> Deserialize<'de> for KelvinAnnotations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnnotationsVisitor;
        impl<'de> Visitor<'de> for AnnotationsVisitor {
            type Value = KelvinAnnotations;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of annotations")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(KelvinAnnotations::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                filtered_map(map, |key| key.starts_with(KELVIN_ANNOTATION_PREFIX))
                    .map(KelvinAnnotations)
            }
        }
        deserializer.deserialize_any(AnnotationsVisitor)
    }
}

/// Extended resources (`vendor/name`) of a node; CPU, memory and pods are not Kelvin's.
#[derive(Default)]
pub(super) struct ExtendedResources(pub Vec<(String, Scalar)>);

impl<'de> Deserialize<'de> for ExtendedResources {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ResourcesVisitor;
        impl<'de> Visitor<'de> for ResourcesVisitor {
            type Value = ExtendedResources;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of resources to quantities")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(ExtendedResources::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                // A count may be written as a number (`nvidia.com/gpu: 8`) or a quantity string.
                let kept: Vec<(String, Count)> = filtered_map(map, |key| key.contains('/'))?;
                Ok(ExtendedResources(
                    kept.into_iter()
                        .map(|(key, Count(count))| (key, count))
                        .collect(),
                ))
            }
        }
        deserializer.deserialize_any(ResourcesVisitor)
    }
}

/// A resource count: a whole number as text, whatever it was written as.
struct Count(Scalar);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Count(match Scalar::deserialize(deserializer)? {
            Scalar::Other(text) => match text.strip_suffix(" (number)") {
                Some(number) => Scalar::Text(number.to_owned()),
                None => Scalar::Other(text),
            },
            text => text,
        }))
    }
}

/// What is wrong with one item, as (field path inside the item, message, fix).
pub(super) type Problem = (String, String, String);

/// The node `item` describes, or what is wrong with it.
pub(super) fn to_node(item: Item) -> Result<NodeInfo, Vec<Problem>> {
    let mut problems = Vec::new();
    let name = match item.metadata.name {
        Some(Scalar::Text(name)) if !name.is_empty() => name,
        Some(Scalar::Other(other)) => {
            problems.push((
                "metadata.name".to_owned(),
                format!("Invalid value: {other}: must be of type string"),
                "quote the name".to_owned(),
            ));
            String::new()
        }
        _ => {
            problems.push((
                "metadata.name".to_owned(),
                "Required value: a node without a name".to_owned(),
                "give every node metadata.name (kubectl get nodes -o json always does)".to_owned(),
            ));
            String::new()
        }
    };
    let mut labels = Labels::new();
    for (key, value) in item.metadata.labels.unwrap_or_default() {
        match value {
            Scalar::Text(value) => {
                labels.insert(key, Arc::from(value));
            }
            Scalar::Other(other) => problems.push((
                format!("metadata.labels[{key:?}]"),
                format!("Invalid value: {other}: a label value must be a string"),
                format!("quote it: {key}: \"…\""),
            )),
        }
    }
    let mut annotations = BTreeMap::new();
    for (key, value) in item.metadata.annotations.0 {
        match value {
            Scalar::Text(value) => {
                annotations.insert(key, value);
            }
            Scalar::Other(other) => problems.push((
                format!("metadata.annotations[{key:?}]"),
                format!("Invalid value: {other}: an annotation value must be a string"),
                "quote it".to_owned(),
            )),
        }
    }
    let capacity = counts(item.status.capacity, "status.capacity", &mut problems);
    let allocatable = counts(item.status.allocatable, "status.allocatable", &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(NodeInfo {
        name,
        labels,
        annotations,
        taints: item
            .spec
            .taints
            .unwrap_or_default()
            .into_iter()
            .map(|t| NodeTaint {
                key: t.key,
                value: t.value,
                effect: t.effect,
            })
            .collect(),
        capacity,
        allocatable,
        ready: item
            .status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.condition == "Ready" && c.status == "True"),
        kelvin_label_keys: None,
    })
}

fn counts(resources: ExtendedResources, path: &str, problems: &mut Vec<Problem>) -> Resources {
    let mut counts = Resources::new();
    for (key, value) in resources.0 {
        let parsed = match &value {
            Scalar::Text(text) => text.parse::<u64>().ok(),
            Scalar::Other(_) => None,
        };
        match parsed {
            Some(count) => {
                counts.insert(key, count);
            }
            None => {
                let shown = match value {
                    Scalar::Text(text) => format!("{text:?}"),
                    Scalar::Other(other) => other,
                };
                problems.push((
                    format!("{path}[{key:?}]"),
                    format!("Invalid value: {shown}: an extended resource is a whole number"),
                    "write the count of devices, e.g. \"8\"".to_owned(),
                ));
            }
        }
    }
    counts
}

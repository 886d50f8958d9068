//! Compact maps for what every node carries: its labels and its extended resources. A
//! production node keeps 10-20 labels once reduced to those a plan reads; as a
//! `BTreeMap<String, String>` that is 1.5-2.5 KB per node (a B-tree leaf holds room for 11
//! entries, and every key and value is its own allocation), as a sorted vector of strings
//! shared across nodes ([`Strings`]) ~0.4 KB. At 70,000 nodes the difference is ~100 MB of the
//! operator's cache (docs/performance.md).

use std::{collections::BTreeMap, fmt, sync::Arc};

use rustc_hash::FxHashSet;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de, ser::SerializeMap};

/// A map from string keys, sorted by key, in one allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SortedMap<V>(Vec<(Arc<str>, V)>);

/// A node's labels.
pub type Labels = SortedMap<Arc<str>>;

/// A node's extended resources (`nvidia.com/gpu: 8`).
pub type Resources = SortedMap<u64>;

impl<V> Default for SortedMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> SortedMap<V> {
    /// An empty map (allocates nothing).
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key))
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; returns the value it replaces.
    pub fn insert(&mut self, key: impl Into<Arc<str>>, value: V) -> Option<V> {
        let key = key.into();
        match self.find(&key) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.0.insert(at, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.find(key).ok().map(|at| self.0.remove(at).1)
    }

    /// Keeps the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &V) -> bool) {
        self.0.retain(|(k, v)| keep(k, v));
    }

    /// The entries, sorted by key.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Arc<str>, &V)> + Clone {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + Clone {
        self.0.iter().map(|(k, _)| &**k)
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Gives back spare capacity (a map read from a node keeps its size).
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

impl<V> SortedMap<V> {
    /// The same map with its keys shared through `strings`.
    pub fn intern_keys(&mut self, strings: &mut Strings) {
        for (key, _) in &mut self.0 {
            *key = strings.share(key);
        }
    }
}

impl Labels {
    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key).ok().map(|at| &*self.0[at].1)
    }

    /// The same labels with their keys and values shared through `strings`.
    pub fn intern(&mut self, strings: &mut Strings) {
        for (key, value) in &mut self.0 {
            *key = strings.share(key);
            *value = strings.share(value);
        }
    }
}

impl Resources {
    /// The amount of resource `key`.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.find(key).ok().map(|at| self.0[at].1)
    }
}

impl<K: Into<Arc<str>>, V> FromIterator<(K, V)> for SortedMap<V> {
    /// Later entries win over earlier ones of the same key, as when collecting a `BTreeMap`.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut entries: Vec<(Arc<str>, V)> =
            entries.into_iter().map(|(k, v)| (k.into(), v)).collect();
        // Stable: equal keys stay in input order, and the last one is kept below.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(Arc<str>, V)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match kept.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => kept.push(entry),
            }
        }
        kept.shrink_to_fit();
        Self(kept)
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(labels: BTreeMap<String, String>) -> Self {
        // Already sorted and unique.
        Self(
            labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl From<&Labels> for BTreeMap<String, String> {
    /// As `k8s-openapi`'s `ObjectMeta::labels`.
    fn from(labels: &Labels) -> Self {
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl From<&Resources> for BTreeMap<String, u64> {
    fn from(resources: &Resources) -> Self {
        resources.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }
}

impl<'a, V> IntoIterator for &'a SortedMap<V> {
    type Item = (&'a Arc<str>, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (Arc<str>, V)>, Pair<V>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(pair)
    }
}

type Pair<V> = for<'b> fn(&'b (Arc<str>, V)) -> (&'b Arc<str>, &'b V);

fn pair<V>((k, v): &(Arc<str>, V)) -> (&Arc<str>, &V) {
    (k, v)
}

impl<V: fmt::Debug> fmt::Debug for SortedMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: Serialize> Serialize for SortedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self.iter() {
            map.serialize_entry(&**key, value)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SortedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> de::Visitor<'de> for Visitor<V> {
            type Value = SortedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(Arc<str>, V)> = Vec::new();
                while let Some((key, value)) = access.next_entry::<String, V>()? {
                    entries.push((key.into(), value));
                }
                Ok(entries.into_iter().collect())
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

/// Strings many nodes share (label keys, pool and zone names, label values such as the GPU
/// product), each allocated once. Unique values (a node's hostname) gain nothing but cost
/// little; [`Strings::purge`] drops those no node holds any more.
#[derive(Default)]
pub struct Strings {
    set: FxHashSet<Arc<str>>,
    /// Strings held after the last purge: [`Strings::purge_when_doubled`] waits for twice as many.
    after_purge: usize,
}

/// Below this many strings a set is not worth purging.
const PURGE_FLOOR: usize = 4096;

impl Strings {
    /// `text` as a shared string.
    pub fn share(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.set.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = text.into();
        self.set.insert(shared.clone());
        shared
    }

    /// Forgets the strings only this set holds (their nodes are gone or changed).
    pub fn purge(&mut self) {
        self.set.retain(|s| Arc::strong_count(s) > 1);
        self.after_purge = self.set.len();
    }

    /// [`Strings::purge`] once the set has doubled since the last one: amortized O(1) per
    /// string shared, and a set of unique values that keep changing stays bounded.
    pub fn purge_when_doubled(&mut self) {
        if self.set.len() > PURGE_FLOOR.max(2 * self.after_purge) {
            self.purge();
        }
    }

    /// Distinct strings held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sorted_unique_and_the_last_duplicate_wins() {
        let labels: Labels = [("b", "1"), ("a", "2"), ("b", "3")]
            .into_iter()
            .map(|(k, v)| (k, Arc::<str>::from(v)))
            .collect();
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(labels.get("b"), Some("3"));
        assert_eq!(labels.get("c"), None);
    }

    #[test]
    fn insert_remove_retain_keep_the_order() {
        let mut labels = Labels::new();
        assert_eq!(labels.insert("m", "1".into()), None);
        labels.insert("z", "2".into());
        labels.insert("a", "3".into());
        assert_eq!(labels.insert("m", "4".into()).as_deref(), Some("1"));
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["a", "m", "z"]);
        assert_eq!(labels.get("a"), Some("3"));
        assert_eq!(labels.remove("m").as_deref(), Some("4"));
        labels.retain(|k, _| k != "z");
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn serde_as_a_map() {
        let labels: Labels = serde_json::from_str(r#"{"b": "1", "a": "2"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&labels).unwrap(),
            r#"{"a":"2","b":"1"}"#
        );
        let resources: Resources = serde_json::from_str(r#"{"nvidia.com/gpu": 8}"#).unwrap();
        assert_eq!(resources.get("nvidia.com/gpu"), Some(8));
        assert!(serde_json::from_str::<Labels>(r#"{"a": 1}"#).is_err());
    }

    #[test]
    fn shared_strings_are_one_allocation_and_purged_when_unused() {
        let mut strings = Strings::default();
        let mut a: Labels = [("kelvin.dev/pool", "train")]
            .into_iter()
            .map(|(k, v)| (k, Arc::<str>::from(v)))
            .collect();
        let mut b = a.clone();
        b.insert("kelvin.dev/pool", "train".into());
        a.intern(&mut strings);
        b.intern(&mut strings);
        let (ka, va) = a.iter().next().unwrap();
        let (kb, vb) = b.iter().next().unwrap();
        assert!(Arc::ptr_eq(ka, kb) && Arc::ptr_eq(va, vb));
        assert_eq!(strings.len(), 2);
        drop((a, b));
        strings.purge();
        assert!(strings.is_empty());
    }

    #[test]
    fn values_that_keep_changing_are_purged_once_the_set_doubles() {
        let mut strings = Strings::default();
        let kept = strings.share("kept");
        for i in 0..3 * PURGE_FLOOR {
            // A value no node holds once its next one arrives (a changing hostname).
            drop(strings.share(&format!("value-{i}")));
            strings.purge_when_doubled();
        }
        assert!(
            strings.len() <= PURGE_FLOOR + 1,
            "bounded: {}",
            strings.len()
        );
        assert_eq!(strings.share("kept").as_ptr(), kept.as_ptr());
    }
}

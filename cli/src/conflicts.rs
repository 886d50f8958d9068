//! Objects two GpuClusters of one run both want (`kelvin plan -f a.yaml -f b.yaml`, or one
//! file named twice). Every object carries the label `kelvin.dev/cluster` of its one owner:
//! two owners would overwrite each other's object on every reconcile, so it is an error.

use std::collections::HashMap;

use kelvin_core::desired::{Manifest, ObjectKey};
use kelvin_crds::{diagnostics::Diagnostic, load::Origin};

/// Objects shown per conflict; the rest are counted.
const SHOWN: usize = 5;

/// What the GpuClusters planned so far in this run want.
#[derive(Default)]
pub struct Claims {
    clusters: HashMap<String, Origin>,
    objects: HashMap<ObjectKey, String>,
}

fn place(origin: &Origin) -> String {
    format!("{} (document {})", origin.file, origin.document + 1)
}

impl Claims {
    /// Claims GpuCluster `name` (read from `origin`) and its objects. The errors say what an
    /// earlier GpuCluster of the run has already: the same name, or some of the objects.
    pub fn claim(
        &mut self,
        name: &str,
        origin: &Origin,
        manifests: &[Manifest],
    ) -> Vec<Diagnostic> {
        if let Some(first) = self.clusters.get(name) {
            return vec![
                Diagnostic::error(
                    "metadata.name",
                    format!("GpuCluster {name} is given twice: also in {}", place(first)),
                )
                .with_fix("give each GpuCluster once (was the same file named twice?)"),
            ];
        }
        self.clusters.insert(name.to_owned(), origin.clone());
        // Per earlier owner, the objects it has already.
        let mut taken: Vec<(String, Vec<&ObjectKey>)> = Vec::new();
        for manifest in manifests {
            match self.objects.get(&manifest.key) {
                Some(owner) => match taken.iter_mut().find(|(o, _)| o == owner) {
                    Some((_, keys)) => keys.push(&manifest.key),
                    None => taken.push((owner.clone(), vec![&manifest.key])),
                },
                None => {
                    self.objects.insert(manifest.key.clone(), name.to_owned());
                }
            }
        }
        taken
            .into_iter()
            .map(|(owner, keys)| {
                let mut shown: Vec<String> = keys.iter().take(SHOWN).map(|k| k.to_string()).collect();
                if keys.len() > SHOWN {
                    shown.push(format!("and {} more", keys.len() - SHOWN));
                }
                Diagnostic::error(
                    "",
                    format!(
                        "GpuCluster {name} wants {} that GpuCluster {owner} ({}) wants too: {}",
                        crate::output::count(keys.len() as u64, "object"),
                        self.clusters.get(&owner).map(place).unwrap_or_default(),
                        shown.join(", ")
                    ),
                )
                .with_fix("an object has one owner (its label kelvin.dev/cluster): rename the tenant namespaces, priority classes or pools in one of them, or give them to one GpuCluster")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn manifest(kind: &str, name: &str) -> Manifest {
        Manifest {
            key: ObjectKey {
                api_version: "v1".into(),
                kind: kind.into(),
                namespace: None,
                name: name.into(),
            },
            body: Value::Null,
        }
    }

    fn origin(file: &str) -> Origin {
        Origin {
            file: file.into(),
            document: 0,
        }
    }

    #[test]
    fn objects_two_clusters_want_are_an_error_naming_both() {
        let mut claims = Claims::default();
        let a = [manifest("Namespace", "fsd"), manifest("PriorityClass", "p")];
        assert!(claims.claim("a", &origin("a.yaml"), &a).is_empty());
        let b = [manifest("Namespace", "fsd"), manifest("Namespace", "other")];
        let found = claims.claim("b", &origin("b.yaml"), &b);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].message,
            "GpuCluster b wants 1 object that GpuCluster a (a.yaml (document 1)) wants too: Namespace/fsd"
        );
        let again = claims.claim("a", &origin("a.yaml"), &a);
        assert_eq!(
            again[0].message,
            "GpuCluster a is given twice: also in a.yaml (document 1)"
        );
    }
}

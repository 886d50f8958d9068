//! Reading spec files, directories and standard input, and the nodes to plan against.

use std::{
    collections::HashMap,
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use kelvin_core::observed::{Observed, Timestamp, simulate};
use kelvin_crds::{
    diagnostics::Diagnostic,
    load::{self, Origin},
    locate::PathIndex,
    node::NodeInfo,
    v1alpha1::GpuCluster,
};

/// Largest spec or inventory file read (a 70,000-node inventory is ~30 MB); a larger one is
/// an error, never read in part.
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// Specs read from the command line, their problems, and the inventory.
pub struct Loaded {
    pub clusters: Vec<(GpuCluster, Origin)>,
    pub diagnostics: Vec<Diagnostic>,
    pub inventory: Option<(String, Vec<NodeInfo>)>,
    /// Text of each spec file, to point findings at their lines.
    sources: HashMap<String, Vec<u8>>,
}

impl Loaded {
    /// `diagnostics` about the cluster read from `origin`, pointed at their lines.
    pub fn locate(&self, origin: &Origin, diagnostics: &[Diagnostic]) -> Vec<Diagnostic> {
        if diagnostics.is_empty() {
            return Vec::new();
        }
        let text = self
            .sources
            .get(&origin.file)
            .map(|bytes| String::from_utf8_lossy(bytes))
            .unwrap_or_default();
        let index = PathIndex::build(&text, origin.document);
        diagnostics
            .iter()
            .map(|d| load::locate(d.clone(), &index, &origin.file, origin))
            .collect()
    }

    /// The snapshot to plan `cluster` against at `now`: the inventory's nodes, or simulated
    /// ones. Offline there are no objects yet and every optional API counts as served.
    pub fn observed_for(&self, cluster: &GpuCluster, now: Timestamp) -> Result<Observed> {
        let nodes = match &self.inventory {
            Some((_, nodes)) => nodes.clone(),
            None => simulate(&cluster.spec),
        };
        Observed::new(nodes, now).context("reading the nodes")
    }

    /// The document `origin` names, as written (JSON), for a server-side apply of exactly
    /// what the file says.
    pub fn document(&self, origin: &Origin) -> Option<serde_json::Value> {
        let bytes = self.sources.get(&origin.file)?;
        load::parse_documents(&origin.file, bytes)
            .ok()?
            .into_iter()
            .find(|d| d.origin.document == origin.document)
            .map(|d| d.value)
    }

    /// Where the nodes came from, for the plan's heading.
    pub fn node_source(&self) -> String {
        match &self.inventory {
            Some((file, nodes)) => format!(
                "{} from inventory {file}",
                crate::output::count(nodes.len() as u64, "node")
            ),
            None => "nodes simulated from each pool's expectedNodes".to_owned(),
        }
    }
}

/// What a file is read as, for the fix of a file over [`MAX_FILE_BYTES`].
#[derive(Clone, Copy)]
enum Kind {
    Spec,
    Inventory,
}

/// The error for `name`, over the read limit: never a silent cut (a valid document, padding,
/// then an invalid one would read as valid).
fn too_large(name: &str, limit: u64, kind: Kind) -> anyhow::Error {
    let fix = match kind {
        Kind::Spec => {
            "a GpuCluster spec is far smaller: check that this is the file meant, or split it into several files (-f takes several)"
        }
        Kind::Inventory => {
            "give an inventory of this cluster's nodes only, or drop what Kelvin does not read, e.g. `jq 'del(.items[].status.images)'`"
        }
    };
    const MIB: u64 = 1024 * 1024;
    let bytes = crate::output::count(limit, "byte");
    let limit = if limit >= MIB && limit.is_multiple_of(MIB) {
        format!("{} MiB ({bytes})", limit / MIB)
    } else {
        bytes
    };
    anyhow::anyhow!(
        "{name} is larger than the read limit of {limit}; Kelvin reads a file whole or not at all\n  fix: {fix}"
    )
}

/// All of `reader`, or an error when it holds more than `limit` bytes.
fn read_at_most(reader: impl Read, limit: u64, name: &str, kind: Kind) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    // One byte past the limit tells a file of exactly `limit` bytes from a longer one.
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {name}"))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(name, limit, kind));
    }
    Ok(bytes)
}

fn read(path: &Path, kind: Kind) -> Result<(String, Vec<u8>)> {
    if path == Path::new("-") {
        let name = "<stdin>";
        let bytes = read_at_most(std::io::stdin().lock(), MAX_FILE_BYTES, name, kind)?;
        return Ok((name.to_owned(), bytes));
    }
    let name = path.display().to_string();
    let file = std::fs::File::open(path).with_context(|| format!("opening {name}"))?;
    // A regular file says its size: refuse a huge one before reading 512 MiB of it.
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > MAX_FILE_BYTES)
    {
        return Err(too_large(&name, MAX_FILE_BYTES, kind));
    }
    let bytes = read_at_most(file, MAX_FILE_BYTES, &name, kind)?;
    Ok((name, bytes))
}

/// Files named on the command line: files as given, directories as their *.yaml / *.yml files.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("listing {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            if found.is_empty() {
                anyhow::bail!("{} holds no *.yaml or *.yml files", path.display());
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Reads every spec in `paths` and the inventory.
pub fn load(paths: &[PathBuf], inventory: Option<&Path>) -> Result<Loaded> {
    let mut loaded = Loaded {
        clusters: Vec::new(),
        diagnostics: Vec::new(),
        inventory: None,
        sources: HashMap::new(),
    };
    for path in expand(paths)? {
        let (name, bytes) = read(&path, Kind::Spec)?;
        let (clusters, diagnostics) = load::load_gpu_clusters(&name, &bytes);
        if !clusters.is_empty() {
            loaded.sources.insert(name, bytes);
        }
        loaded.clusters.extend(clusters);
        loaded.diagnostics.extend(diagnostics);
    }
    if let Some(path) = inventory {
        let (name, bytes) = read(path, Kind::Inventory)?;
        match load::load_inventory(&name, &bytes) {
            Ok(nodes) => loaded.inventory = Some((name, nodes)),
            Err(diagnostics) => {
                // Planning against other nodes than the ones asked for would mislead.
                loaded.diagnostics.extend(diagnostics);
                loaded.clusters.clear();
            }
        }
    }
    Ok(loaded)
}

/// Whether a kubeconfig is around (KUBECONFIG or ~/.kube/config).
pub fn kubeconfig_present() -> bool {
    if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    std::env::var_os("HOME").is_some_and(|home| Path::new(&home).join(".kube/config").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_stops_with_an_error_one_byte_past_the_limit() {
        let at_limit = read_at_most(&b"12345678"[..], 8, "f.yaml", Kind::Spec);
        assert_eq!(at_limit.ok().as_deref(), Some(&b"12345678"[..]));
        let over = read_at_most(&b"123456789"[..], 8, "f.yaml", Kind::Spec);
        let message = over.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.starts_with("f.yaml is larger than the read limit of 8 bytes;"),
            "{message}"
        );
        assert!(message.contains("fix: "), "{message}");
    }
}

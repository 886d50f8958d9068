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

/// Largest spec file read. The API server takes a request of at most 3 MiB and stores an
/// object of at most 1.5 MiB (etcd's limit); a spec of 64 pools and 256 zones is ~200 KB. So
/// this leaves room for comments and several GpuClusters in one file, while a huge file is
/// refused before it costs time and memory (checking a 4 MiB spec of one selector's values
/// takes ~1.5 s). A larger file is an error, never read in part.
const MAX_SPEC_BYTES: u64 = 4 * 1024 * 1024;

/// Largest YAML inventory read: it is parsed whole (a 70,000-node Kelvin Inventory is ~30 MB).
const MAX_YAML_INVENTORY_BYTES: u64 = 512 * 1024 * 1024;

/// Largest JSON inventory read. JSON is streamed, so memory does not grow with the file, only
/// with the nodes kept: `kubectl get nodes -o json` of a 70,000-node site is ~800 MB.
const MAX_JSON_INVENTORY_BYTES: u64 = 8 * 1024 * 1024 * 1024;

/// A document that was not planned, and why: `plan -o json` still prints an entry for it.
pub struct Rejected {
    pub origin: Origin,
    /// Its `metadata.name`, when it has one.
    pub name: String,
    pub errors: Vec<Diagnostic>,
}

/// Specs read from the command line, their problems, and the inventory.
pub struct Loaded {
    pub clusters: Vec<(GpuCluster, Origin)>,
    pub diagnostics: Vec<Diagnostic>,
    pub rejected: Vec<Rejected>,
    pub inventory: Option<(String, Vec<NodeInfo>)>,
    /// Text of each spec file, to point findings at their lines.
    sources: HashMap<String, Vec<u8>>,
    /// Spec files in the order given.
    files: Vec<String>,
    /// Where the nodes come from, for the plan's heading.
    node_source: String,
}

impl Loaded {
    /// Where `origin` comes in the files given: plans are printed in this order.
    pub fn order(&self, origin: &Origin) -> (usize, usize) {
        let file = self
            .files
            .iter()
            .position(|f| *f == origin.file)
            .unwrap_or(usize::MAX);
        (file, origin.document)
    }

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
        let index = PathIndex::build_for(
            &text,
            origin.document,
            diagnostics.iter().map(|d| d.path.as_str()),
        );
        diagnostics
            .iter()
            .map(|d| load::locate(d.clone(), &index, &origin.file, origin))
            .collect()
    }

    /// The snapshot to plan `cluster` against at `now`: the inventory's nodes, or simulated
    /// ones. Offline there are no objects yet and every optional API counts as served. For the
    /// `last` cluster the inventory's nodes are moved, not copied: 70,000 real nodes are
    /// ~400 MB.
    pub fn observed_for(
        &mut self,
        cluster: &GpuCluster,
        now: Timestamp,
        last: bool,
    ) -> Result<Observed> {
        let nodes = match &mut self.inventory {
            Some((_, nodes)) if last => std::mem::take(nodes),
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
    pub fn node_source(&self) -> &str {
        &self.node_source
    }
}

/// What a file is read as, for the limit and the fix of a file over it.
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

/// `path` opened for reading (`-`: standard input), its name, and its size when it says.
fn open(path: &Path) -> Result<(String, Box<dyn Read>, Option<u64>)> {
    if path == Path::new("-") {
        return Ok((
            "<stdin>".to_owned(),
            Box::new(std::io::stdin().lock()),
            None,
        ));
    }
    let name = path.display().to_string();
    let file = std::fs::File::open(path).with_context(|| format!("opening {name}"))?;
    let size = file
        .metadata()
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len());
    Ok((name, Box::new(file), size))
}

fn read(path: &Path, kind: Kind) -> Result<(String, Vec<u8>)> {
    let limit = match kind {
        Kind::Spec => MAX_SPEC_BYTES,
        Kind::Inventory => MAX_YAML_INVENTORY_BYTES,
    };
    let (name, reader, size) = open(path)?;
    // A regular file says its size: refuse a huge one before reading any of it.
    if size.is_some_and(|size| size > limit) {
        return Err(too_large(&name, limit, kind));
    }
    let bytes = read_at_most(reader, limit, &name, kind)?;
    Ok((name, bytes))
}

/// A reader that fails once more than `limit` bytes have come through: a streamed file over
/// the limit is an error, never a silent cut.
struct Limited<R> {
    inner: R,
    left: u64,
    name: String,
    limit: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        match self.left.checked_sub(read as u64) {
            Some(left) => {
                self.left = left;
                Ok(read)
            }
            None => Err(std::io::Error::other(format!(
                "{:#}",
                too_large(&self.name, self.limit, Kind::Inventory)
            ))),
        }
    }
}

/// An inventory read: its display name, and its nodes or the findings that refused them.
type ReadInventory = (String, Result<Vec<NodeInfo>, Vec<Diagnostic>>);

/// Reads the inventory at `path`: JSON streamed, YAML whole.
fn read_inventory(path: &Path) -> Result<ReadInventory> {
    use std::io::BufRead;
    let (name, reader, size) = open(path)?;
    if size.is_some_and(|size| size > MAX_JSON_INVENTORY_BYTES) {
        return Err(too_large(&name, MAX_JSON_INVENTORY_BYTES, Kind::Inventory));
    }
    let limited = Limited {
        inner: reader,
        left: MAX_JSON_INVENTORY_BYTES,
        name: name.clone(),
        limit: MAX_JSON_INVENTORY_BYTES,
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, limited);
    let start = reader
        .fill_buf()
        .with_context(|| format!("reading {name}"))?;
    if kelvin_crds::inventory::is_json(start) {
        let nodes = kelvin_crds::inventory::read_json_inventory(&name, reader);
        return Ok((name, nodes));
    }
    if size.is_some_and(|size| size > MAX_YAML_INVENTORY_BYTES) {
        return Err(too_large(&name, MAX_YAML_INVENTORY_BYTES, Kind::Inventory));
    }
    let bytes = read_at_most(reader, MAX_YAML_INVENTORY_BYTES, &name, Kind::Inventory)?;
    let nodes = load::load_inventory(&name, &bytes);
    Ok((name, nodes))
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
        rejected: Vec::new(),
        inventory: None,
        sources: HashMap::new(),
        files: Vec::new(),
        node_source: "nodes simulated from each pool's expectedNodes".to_owned(),
    };
    for path in expand(paths)? {
        let (name, bytes) = read(&path, Kind::Spec)?;
        let mut planned = false;
        for outcome in load::load_documents(&name, &bytes) {
            match outcome {
                load::Outcome::Cluster(cluster, origin) => {
                    planned = true;
                    loaded.clusters.push((*cluster, origin));
                }
                load::Outcome::Rejected {
                    origin,
                    name,
                    diagnostics,
                } => {
                    loaded.diagnostics.extend(diagnostics.iter().cloned());
                    loaded.rejected.push(Rejected {
                        origin,
                        name,
                        errors: diagnostics,
                    });
                }
            }
        }
        loaded.files.push(name.clone());
        if planned {
            loaded.sources.insert(name, bytes);
        }
    }
    if let Some(path) = inventory {
        match read_inventory(path)? {
            (name, Ok(nodes)) => {
                loaded.node_source = format!(
                    "{} from inventory {name}",
                    crate::output::count(nodes.len() as u64, "node")
                );
                loaded.inventory = Some((name, nodes));
            }
            (_, Err(diagnostics)) => {
                // Planning against other nodes than the ones asked for would mislead.
                loaded.diagnostics.extend(diagnostics.iter().cloned());
                for (cluster, origin) in std::mem::take(&mut loaded.clusters) {
                    loaded.rejected.push(Rejected {
                        origin,
                        name: cluster.metadata.name.unwrap_or_default(),
                        errors: diagnostics.clone(),
                    });
                }
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

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

/// Largest spec or inventory file read (a 70,000-node inventory is ~30 MB).
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

    /// Where the nodes came from, for the plan's heading.
    pub fn node_source(&self) -> String {
        match &self.inventory {
            Some((file, nodes)) => format!(
                "{} nodes from inventory {file}",
                crate::output::thousands(nodes.len() as u64)
            ),
            None => "nodes simulated from each pool's expectedNodes".to_owned(),
        }
    }
}

fn read(path: &Path) -> Result<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_FILE_BYTES)
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
        return Ok(("<stdin>".to_owned(), bytes));
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok((path.display().to_string(), bytes))
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
        let (name, bytes) = read(&path)?;
        let (clusters, diagnostics) = load::load_gpu_clusters(&name, &bytes);
        if !clusters.is_empty() {
            loaded.sources.insert(name, bytes);
        }
        loaded.clusters.extend(clusters);
        loaded.diagnostics.extend(diagnostics);
    }
    if let Some(path) = inventory {
        let (name, bytes) = read(path)?;
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

//! Where power limits are read and set: NVML on GPU machines, a fake that records what it would
//! set everywhere else (tests, kwok nodes).

use std::{fs::OpenOptions, io::Write, path::PathBuf};

use nvml_wrapper::Nvml;

use crate::cap::GpuLimits;

/// Why the backend failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// NVML could not be loaded or queried (no driver, no GPUs).
    #[error("NVML is unavailable: {0}")]
    Unavailable(String),
    /// Setting a limit failed (usually: not root, or the GPU refused).
    #[error("setting GPU {gpu} to {watts} W: {message}")]
    Set {
        /// GPU index.
        gpu: u32,
        /// The limit asked.
        watts: u32,
        /// NVML's message.
        message: String,
    },
    /// The fake's record could not be written.
    #[error("writing the fake backend's record {path}")]
    Record {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl BackendError {
    /// The reason reported on the node (a label value).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "nvml-unavailable",
            Self::Set { .. } | Self::Record { .. } => "set-failed",
        }
    }
}

/// Power limits of one node's GPUs.
pub trait PowerBackend: Send {
    /// Every GPU's limits, by index.
    fn gpus(&mut self) -> Result<Vec<GpuLimits>, BackendError>;
    /// Sets GPU `gpu`'s limit to `watts` (within its limits: the caller clamps).
    fn set_limit(&mut self, gpu: u32, watts: u32) -> Result<(), BackendError>;
}

/// NVML, through `nvml-wrapper` (libnvidia-ml loaded at run time).
pub struct NvmlBackend {
    nvml: Nvml,
}

impl NvmlBackend {
    /// Loads NVML.
    pub fn new() -> Result<Self, BackendError> {
        Nvml::init()
            .map(|nvml| Self { nvml })
            .map_err(|e| BackendError::Unavailable(e.to_string()))
    }
}

fn watts(milliwatts: u32) -> u32 {
    milliwatts / 1000
}

impl PowerBackend for NvmlBackend {
    fn gpus(&mut self) -> Result<Vec<GpuLimits>, BackendError> {
        let unavailable =
            |e: nvml_wrapper::error::NvmlError| BackendError::Unavailable(e.to_string());
        let count = self.nvml.device_count().map_err(unavailable)?;
        (0..count)
            .map(|index| {
                let device = self.nvml.device_by_index(index).map_err(unavailable)?;
                let limits = device
                    .power_management_limit_constraints()
                    .map_err(unavailable)?;
                Ok(GpuLimits {
                    index,
                    min_watts: watts(limits.min_limit),
                    max_watts: watts(limits.max_limit),
                    default_watts: watts(
                        device
                            .power_management_limit_default()
                            .map_err(unavailable)?,
                    ),
                    current_watts: watts(device.power_management_limit().map_err(unavailable)?),
                })
            })
            .collect()
    }

    fn set_limit(&mut self, gpu: u32, watts: u32) -> Result<(), BackendError> {
        let set_error = |e: nvml_wrapper::error::NvmlError| BackendError::Set {
            gpu,
            watts,
            message: e.to_string(),
        };
        let mut device = self.nvml.device_by_index(gpu).map_err(set_error)?;
        device
            .set_power_management_limit(watts.saturating_mul(1000))
            .map_err(set_error)
    }
}

/// A node's GPUs in memory: limits as given, every set recorded (one JSON line per change in
/// the record file, when there is one).
pub struct FakeBackend {
    node: String,
    gpus: Vec<GpuLimits>,
    record: Option<PathBuf>,
}

impl FakeBackend {
    /// `count` GPUs of `min`-`max` W, `default` W at boot, for node `node`.
    pub fn new(
        node: &str,
        count: u32,
        min: u32,
        max: u32,
        default: u32,
        record: Option<PathBuf>,
    ) -> Self {
        Self {
            node: node.to_owned(),
            gpus: (0..count)
                .map(|index| GpuLimits {
                    index,
                    min_watts: min,
                    max_watts: max,
                    default_watts: default,
                    current_watts: default,
                })
                .collect(),
            record,
        }
    }
}

impl PowerBackend for FakeBackend {
    fn gpus(&mut self) -> Result<Vec<GpuLimits>, BackendError> {
        Ok(self.gpus.clone())
    }

    fn set_limit(&mut self, gpu: u32, watts: u32) -> Result<(), BackendError> {
        let Some(limits) = self.gpus.iter_mut().find(|g| g.index == gpu) else {
            return Err(BackendError::Set {
                gpu,
                watts,
                message: "no such GPU".into(),
            });
        };
        if !(limits.min_watts..=limits.max_watts).contains(&watts) {
            return Err(BackendError::Set {
                gpu,
                watts,
                message: format!("outside {}-{} W", limits.min_watts, limits.max_watts),
            });
        }
        limits.current_watts = watts;
        if let Some(path) = &self.record {
            let line = serde_json::json!({"node": self.node, "gpu": gpu, "watts": watts});
            let write = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
            write.map_err(|source| BackendError::Record {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

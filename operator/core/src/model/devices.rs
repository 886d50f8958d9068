//! Accelerator facts: default resource names and plugin images per vendor, MIG profiles per
//! model, and how many schedulable shares one GPU becomes under each sharing strategy.

use kelvin_crds::{
    diagnostics::Diagnostic,
    v1alpha1::{Accelerator, GpuClusterSpec, GpuPool, SharingStrategy, Vendor},
};

use super::pool_path;

/// Default device-plugin images, pinned (a moving tag would change nodes without a spec change).
pub mod images {
    /// NVIDIA k8s-device-plugin.
    pub const NVIDIA: &str = "nvcr.io/nvidia/k8s-device-plugin:v0.17.2";
    /// AMD ROCm device plugin.
    pub const AMD: &str = "docker.io/rocm/k8s-device-plugin:1.31.0.6";
    /// Intel GPU device plugin.
    pub const INTEL: &str = "docker.io/intel/intel-gpu-plugin:0.32.0";
    /// Mellanox RDMA shared device plugin.
    pub const RDMA_SHARED: &str = "ghcr.io/mellanox/k8s-rdma-shared-dev-plugin:v1.5.3";
}

/// The extended resource the accelerator's device plugin advertises.
pub fn resource_name(accelerator: &Accelerator) -> &str {
    if let Some(name) = &accelerator.resource_name {
        return name;
    }
    match accelerator.vendor {
        Vendor::Nvidia => "nvidia.com/gpu",
        Vendor::Amd => "amd.com/gpu",
        Vendor::Intel => "gpu.intel.com/i915",
        // CEL requires resourceName for custom; this is only reached by unchecked input.
        Vendor::Custom => "kelvin.dev/accelerator",
    }
}

/// The plugin image Kelvin runs for the pool, when it has one.
pub fn plugin_image(pool: &GpuPool) -> Option<&str> {
    if let Some(image) = &pool.device_plugin.image {
        return Some(image);
    }
    match pool.accelerator.vendor {
        Vendor::Nvidia => Some(images::NVIDIA),
        Vendor::Amd => Some(images::AMD),
        Vendor::Intel => Some(images::INTEL),
        Vendor::Custom => None,
    }
}

/// A100-80GB and H100-80GB split the same way.
const PROFILES_80GB: &[(&str, u32)] = &[
    ("1g.10gb", 7),
    ("1g.20gb", 4),
    ("2g.20gb", 3),
    ("3g.40gb", 2),
    ("4g.40gb", 1),
    ("7g.80gb", 1),
];

/// MIG profiles of a GPU model: (profile, instances per GPU), from NVIDIA's MIG user guide
/// ("Supported MIG Profiles").
const MIG_PROFILES: &[(&str, &[(&str, u32)])] = &[
    (
        "A100-40GB",
        &[
            ("1g.5gb", 7),
            ("1g.10gb", 4),
            ("2g.10gb", 3),
            ("3g.20gb", 2),
            ("4g.20gb", 1),
            ("7g.40gb", 1),
        ],
    ),
    ("A100-80GB", PROFILES_80GB),
    ("H100-80GB", PROFILES_80GB),
    (
        "H100-94GB",
        &[
            ("1g.12gb", 7),
            ("1g.24gb", 4),
            ("2g.24gb", 3),
            ("3g.47gb", 2),
            ("4g.47gb", 1),
            ("7g.94gb", 1),
        ],
    ),
    (
        "H200-141GB",
        &[
            ("1g.18gb", 7),
            ("1g.35gb", 4),
            ("2g.35gb", 3),
            ("3g.71gb", 2),
            ("4g.71gb", 1),
            ("7g.141gb", 1),
        ],
    ),
    (
        "B200-180GB",
        &[
            ("1g.23gb", 7),
            ("1g.45gb", 4),
            ("2g.45gb", 3),
            ("3g.90gb", 2),
            ("4g.90gb", 1),
            ("7g.180gb", 1),
        ],
    ),
];

/// The MIG family of a model name, e.g. `H100-SXM5-80GB` -> `H100-80GB`.
pub fn mig_family(model: &str) -> Option<&'static str> {
    let upper = model.to_ascii_uppercase();
    MIG_PROFILES
        .iter()
        .map(|(family, _)| *family)
        .find(|family| {
            let (chip, memory) = family.split_once('-').unwrap_or((family, ""));
            upper.contains(chip) && upper.contains(memory)
        })
}

/// MIG profiles of a model with instances per GPU, or None when Kelvin does not know the model.
pub fn mig_profiles(model: &str) -> Option<&'static [(&'static str, u32)]> {
    let family = mig_family(model)?;
    MIG_PROFILES
        .iter()
        .find(|(f, _)| *f == family)
        .map(|(_, profiles)| *profiles)
}

/// Schedulable shares one physical GPU of the pool becomes (1 when exclusive).
pub fn shares_per_gpu(pool: &GpuPool) -> u64 {
    match pool.sharing.strategy {
        SharingStrategy::Exclusive => 1,
        SharingStrategy::TimeSlicing | SharingStrategy::Mps => {
            u64::from(pool.sharing.replicas.unwrap_or(1))
        }
        SharingStrategy::Mig => pool
            .sharing
            .profile
            .as_deref()
            .and_then(|profile| {
                mig_profiles(&pool.accelerator.model)?
                    .iter()
                    .find(|(p, _)| *p == profile)
                    .map(|(_, n)| u64::from(*n))
            })
            .unwrap_or(1),
    }
}

/// An enum value as the spec spells it (its serde name), for messages.
fn as_written<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => "(unprintable)".to_owned(),
    }
}

/// Device rules: what each vendor's plugin can share, MIG profiles that exist.
pub fn check(spec: &GpuClusterSpec, out: &mut Vec<Diagnostic>) {
    for (index, pool) in spec.gpu_pools.iter().enumerate() {
        // What each vendor's device plugin can share (Kelvin configures only these).
        let supported: &[SharingStrategy] = match pool.accelerator.vendor {
            Vendor::Nvidia | Vendor::Custom => &[],
            Vendor::Amd => &[SharingStrategy::Exclusive],
            Vendor::Intel => &[SharingStrategy::Exclusive, SharingStrategy::TimeSlicing],
        };
        if !supported.is_empty() && !supported.contains(&pool.sharing.strategy) {
            out.push(
                Diagnostic::error(
                    format!("{}.sharing.strategy", pool_path(index)),
                    format!(
                        "pool {}: the {} device plugin cannot share GPUs with {}",
                        pool.name,
                        as_written(&pool.accelerator.vendor),
                        as_written(&pool.sharing.strategy)
                    ),
                )
                .with_fix(format!(
                    "use {}",
                    supported
                        .iter()
                        .map(as_written)
                        .collect::<Vec<_>>()
                        .join(" or ")
                )),
            );
        }
        if pool.sharing.strategy != SharingStrategy::Mig {
            continue;
        }
        let Some(profile) = pool.sharing.profile.as_deref() else {
            continue;
        };
        let path = format!("{}.sharing.profile", pool_path(index));
        match mig_profiles(&pool.accelerator.model) {
            None => out.push(
                Diagnostic::error(path, format!("Kelvin knows no MIG profiles for model {:?}", pool.accelerator.model))
                    .with_fix("use a MIG-capable model name such as H100-SXM5-80GB or A100-SXM4-40GB, or another sharing strategy"),
            ),
            Some(profiles) if !profiles.iter().any(|(p, _)| *p == profile) => {
                let known: Vec<&str> = profiles.iter().map(|(p, _)| *p).collect();
                out.push(
                    Diagnostic::error(path, format!("MIG profile {profile:?} does not exist on {}", pool.accelerator.model))
                        .with_fix(format!("use one of {}", known.join(", "))),
                );
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_map_to_their_mig_family() {
        assert_eq!(mig_family("H100-SXM5-80GB"), Some("H100-80GB"));
        assert_eq!(mig_family("A100-SXM4-40GB"), Some("A100-40GB"));
        assert_eq!(mig_family("h200-141gb"), Some("H200-141GB"));
        assert_eq!(mig_family("MI300X"), None);
    }

    #[test]
    fn h100_profiles_match_the_mig_guide() {
        let names: Vec<&str> = mig_profiles("H100-80GB")
            .unwrap()
            .iter()
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(
            names,
            [
                "1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"
            ]
        );
    }
}

//! Tenants: a namespace belongs to one tenant; a quota fits the GPUs its pool holds.

use std::collections::BTreeMap;

use kelvin_crds::{diagnostics::Diagnostic, v1alpha1::GpuClusterSpec};

use super::pool_path;

/// Tenant rules.
pub fn check(spec: &GpuClusterSpec, out: &mut Vec<Diagnostic>) {
    let Some(scheduling) = &spec.scheduling else {
        return;
    };
    let mut owner_of_namespace: BTreeMap<&str, usize> = BTreeMap::new();
    let mut quota_by_pool: BTreeMap<&str, u64> = BTreeMap::new();
    for (index, tenant) in scheduling.tenants.iter().enumerate() {
        let path = format!("spec.scheduling.tenants[{index}]");
        for (ns_index, namespace) in tenant.namespaces.iter().enumerate() {
            if let Some(first) = owner_of_namespace.insert(namespace, index)
                && first != index
            {
                out.push(
                    Diagnostic::error(
                        format!("{path}.namespaces[{ns_index}]"),
                        format!(
                            "tenant {}: namespace {namespace:?} already belongs to tenant {}",
                            tenant.name, scheduling.tenants[first].name
                        ),
                    )
                    .with_fix("give each namespace to one tenant"),
                );
            }
        }
        for (pool_name, quota) in &tenant.gpu_quota {
            let Some(pool) = spec.gpu_pools.iter().find(|p| &p.name == pool_name) else {
                continue;
            };
            let held = u64::from(pool.expected_nodes) * u64::from(pool.accelerator.per_node);
            *quota_by_pool.entry(pool_name).or_default() += quota;
            if *quota > held {
                out.push(
                    Diagnostic::error(
                        format!("{path}.gpuQuota.{pool_name}"),
                        format!(
                            "tenant {}: quota of {quota} GPUs exceeds the {held} GPUs pool {pool_name} holds ({} x {})",
                            tenant.name, super::nodes(u64::from(pool.expected_nodes)), pool.accelerator.per_node
                        ),
                    )
                    .with_fix(format!("lower the quota to at most {held}, or grow the pool")),
                );
            }
        }
    }
    for (pool_name, total) in quota_by_pool {
        let Some((index, pool)) = spec
            .gpu_pools
            .iter()
            .enumerate()
            .find(|(_, p)| p.name == pool_name)
        else {
            continue;
        };
        let held = u64::from(pool.expected_nodes) * u64::from(pool.accelerator.per_node);
        if total > held {
            out.push(Diagnostic::warning(
                pool_path(index),
                format!("tenants' quotas on pool {pool_name} add up to {total} GPUs, more than the {held} it holds: tenants compete for the difference"),
            ));
        }
    }
}

//! PriorityClasses, and per tenant its Namespaces with a GPU ResourceQuota each.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1::{Namespace, ResourceQuota, ResourceQuotaSpec},
        scheduling::v1::PriorityClass,
    },
    apimachinery::pkg::api::resource::Quantity,
};
use kelvin_crds::v1alpha1::{GpuClusterSpec, PreemptionPolicy, Tenant};

use super::{Desired, Owner};
use crate::{constants::TENANT_LABEL, model::devices};

/// Name of the GPU ResourceQuota in each tenant namespace.
pub const QUOTA_NAME: &str = "kelvin-gpu-quota";

pub(super) fn build(spec: &GpuClusterSpec, owner: &Owner, desired: &mut Desired) {
    let Some(scheduling) = &spec.scheduling else {
        return;
    };
    for class in &scheduling.priority_classes {
        desired.priority_classes.push(PriorityClass {
            metadata: owner.meta(&class.name, None),
            value: class.value,
            preemption_policy: Some(
                match class.preemption_policy {
                    PreemptionPolicy::PreemptLowerPriority => "PreemptLowerPriority",
                    PreemptionPolicy::Never => "Never",
                }
                .into(),
            ),
            description: class.description.clone(),
            global_default: Some(false),
        });
    }
    for tenant in &scheduling.tenants {
        let hard = quota_by_resource(spec, tenant);
        for namespace in &tenant.namespaces {
            let mut metadata = owner.namespace_meta(namespace);
            if let Some(labels) = metadata.labels.as_mut() {
                labels.insert(TENANT_LABEL.into(), tenant.name.clone());
            }
            desired.namespaces.push(Namespace {
                metadata,
                ..Namespace::default()
            });
            if hard.is_empty() {
                continue;
            }
            desired.resource_quotas.push(ResourceQuota {
                metadata: owner.meta(QUOTA_NAME, Some(namespace)),
                spec: Some(ResourceQuotaSpec {
                    hard: Some(
                        hard.iter()
                            .map(|(resource, count)| {
                                (format!("requests.{resource}"), Quantity(count.to_string()))
                            })
                            .collect(),
                    ),
                    ..ResourceQuotaSpec::default()
                }),
                ..ResourceQuota::default()
            });
        }
    }
}

/// A tenant's quota per extended resource, in advertised units (GPUs x shares per GPU). A
/// namespace may use up to the tenant's whole quota; the tenant-wide cap is Kueue's job.
pub(super) fn quota_by_resource(spec: &GpuClusterSpec, tenant: &Tenant) -> BTreeMap<String, u64> {
    let mut hard: BTreeMap<String, u64> = BTreeMap::new();
    for (pool_name, gpus) in &tenant.gpu_quota {
        let Some(pool) = spec.gpu_pools.iter().find(|p| &p.name == pool_name) else {
            continue;
        };
        *hard
            .entry(devices::resource_name(&pool.accelerator).to_owned())
            .or_default() += gpus * devices::shares_per_gpu(pool);
    }
    hard
}

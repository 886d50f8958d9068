//! The GpuCluster, its CRD and the operator's Lease, as the live commands read and write them.
//! The CLI writes only these two objects (and, for `zone set`, one zone's state); nodes and
//! Kelvin's objects are the operator's.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::{
    api::coordination::v1::Lease,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kelvin_crds::v1alpha1::GpuCluster;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::Value;

use super::{connect::Live, diff};

/// Field manager of the GpuCluster specs `kelvin apply` writes (and of the CRD).
pub const CLI_MANAGER: &str = "kelvin-cli";
/// Field manager of cooling-zone states reported by `kelvin zone set` (a facility system).
pub const FACILITY_MANAGER: &str = "kelvin-facility";
/// The operator's leader-election Lease.
pub const LEASE: &str = "kelvin-operator";
/// How the Helm chart installs the operator, for the messages that need one.
pub const INSTALL_HINT: &str =
    "helm install kelvin charts/kelvin --namespace kelvin --create-namespace";

pub fn api(live: &Live) -> Api<GpuCluster> {
    Api::all(live.client())
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// GpuCluster `name`, or None when it (or the CRD) does not exist.
pub async fn get(live: &Live, name: &str) -> Result<Option<GpuCluster>> {
    let api = api(live);
    match live
        .api
        .call(kelvin_operator::api_client::Request::Read, || api.get(name))
        .await
    {
        Ok(cluster) => Ok(Some(cluster)),
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(anyhow!(
            "reading GpuCluster {name}: {}",
            super::connect::cause(&error)
        )),
    }
}

/// Every GpuCluster (none when the CRD is not installed).
pub async fn list(live: &Live) -> Result<Vec<GpuCluster>> {
    let api = api(live);
    let params = ListParams::default();
    match live
        .api
        .call(kelvin_operator::api_client::Request::Read, || {
            api.list(&params)
        })
        .await
    {
        Ok(list) => Ok(list.items),
        Err(error) if is_not_found(&error) => Ok(Vec::new()),
        Err(error) => Err(anyhow!(
            "listing GpuClusters: {}",
            super::connect::cause(&error)
        )),
    }
}

/// What applying a GpuCluster document would do to the stored one.
#[derive(Debug)]
pub enum SpecChange {
    /// It does not exist yet.
    Create,
    /// These fields change.
    Update(Vec<String>),
    /// Nothing changes.
    Same,
    /// Fields another manager owns would be overwritten, and that manager's word counts
    /// (`kelvin-facility`'s zone states): the apply is refused. One message per field.
    Refused(Vec<String>),
}

/// Conflicts of a refused server-side apply: (manager, field) per cause.
fn conflicts(error: &kube::Error) -> Option<Vec<(String, String)>> {
    let kube::Error::Api(status) = error else {
        return None;
    };
    if status.code != 409 {
        return None;
    }
    let causes = status.details.as_ref().map(|d| d.causes.clone())?;
    Some(
        causes
            .iter()
            .map(|cause| {
                let manager = cause
                    .message
                    .split('"')
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                (manager, cause.field.clone())
            })
            .collect(),
    )
}

/// Server-side applies `document` as CLI_MANAGER: a dry run or for real. Conflicts with other
/// managers are forced, except a facility's zone states: those are refused.
pub async fn apply_spec(
    live: &Live,
    name: &str,
    document: &Value,
    dry_run: bool,
) -> Result<SpecChange> {
    let api = api(live);
    let before = get(live, name).await?;
    let mut params = PatchParams::apply(CLI_MANAGER);
    params.dry_run = dry_run;
    let patch = Patch::Apply(document);
    let write = kelvin_operator::api_client::Request::Write {
        verb: "apply",
        kind: "GpuCluster",
    };
    let result = match live
        .api
        .call(write, || api.patch(name, &params, &patch))
        .await
    {
        Ok(result) => result,
        Err(error) => match conflicts(&error) {
            Some(found) => {
                let facility: Vec<String> = found
                    .iter()
                    .filter(|(manager, _)| manager == FACILITY_MANAGER)
                    .map(|(_, field)| field.clone())
                    .collect();
                if !facility.is_empty() {
                    return Ok(SpecChange::Refused(facility));
                }
                let forced = params.clone().force();
                live.api
                    .call(write, || api.patch(name, &forced, &patch))
                    .await
                    .map_err(|e| {
                        anyhow!("applying GpuCluster {name}: {}", super::connect::cause(&e))
                    })?
            }
            None => bail!(
                "the API server refuses GpuCluster {name}: {}\n  fix: correct the spec (kelvin validate -f … checks it offline)",
                super::connect::cause(&error)
            ),
        },
    };
    let Some(before) = before else {
        return Ok(SpecChange::Create);
    };
    let before = serde_json::to_value(&before).context("serializing the stored GpuCluster")?;
    let after = serde_json::to_value(&result).context("serializing the applied GpuCluster")?;
    let fields = diff::changed_fields(&before, &after);
    Ok(if fields.is_empty() {
        SpecChange::Same
    } else {
        SpecChange::Update(fields)
    })
}

/// What installing Kelvin's CRDs would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrdChange {
    Create,
    Update,
    Same,
}

fn crd_api(live: &Live) -> Api<CustomResourceDefinition> {
    Api::all(live.client())
}

/// Whether Kelvin's CRDs are installed as this `kelvin` would install them.
pub async fn crd_change(live: &Live) -> Result<CrdChange> {
    let api = crd_api(live);
    let mut change = CrdChange::Same;
    for crd in kelvin_crds::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let current = match api.get_opt(&name).await {
            Ok(current) => current,
            Err(error) => bail!(
                "reading CustomResourceDefinition {name}: {}",
                super::connect::cause(&error)
            ),
        };
        let Some(current) = current else {
            return Ok(CrdChange::Create);
        };
        let params = PatchParams::apply(CLI_MANAGER).force().dry_run();
        let after = api
            .patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|e| {
                anyhow!(
                    "dry-run of CustomResourceDefinition {name}: {}",
                    super::connect::cause(&e)
                )
            })?;
        let (before, after) = (
            serde_json::to_value(&current.spec)?,
            serde_json::to_value(&after.spec)?,
        );
        if before != after {
            change = CrdChange::Update;
        }
    }
    Ok(change)
}

/// Installs or upgrades Kelvin's CRDs and waits until the API server serves them.
pub async fn install_crds(live: &Live, timeout: Duration) -> Result<()> {
    let api = crd_api(live);
    let params = PatchParams::apply(CLI_MANAGER).force();
    for crd in kelvin_crds::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|e| {
                anyhow!(
                    "installing CustomResourceDefinition {name}: {}",
                    super::connect::cause(&e)
                )
            })?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let current = api.get(&name).await.map_err(|e| {
                anyhow!(
                    "reading CustomResourceDefinition {name}: {}",
                    super::connect::cause(&e)
                )
            })?;
            let established = current
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "CustomResourceDefinition {name} was not Established within {timeout:?}\n  fix: look at `kubectl describe crd {name}`"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Who acts on GpuClusters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operator {
    /// A replica holds the Lease: namespace and holder.
    Running { namespace: String, holder: String },
    /// No Lease is held (or none was renewed lately).
    Absent,
    /// The Leases could not be read (RBAC): the cause.
    Unknown(String),
}

/// Whether a Kelvin operator holds its Lease: `kelvin-operator` in any namespace, with a
/// holder, renewed within its duration (plus slack for clock skew).
pub async fn operator(live: &Live) -> Operator {
    let api: Api<Lease> = Api::all(live.client());
    let params = ListParams::default().fields(&format!("metadata.name={LEASE}"));
    let leases = match api.list(&params).await {
        Ok(list) => list.items,
        Err(error) => return Operator::Unknown(super::connect::cause(&error)),
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    for lease in leases {
        let Some(spec) = lease.spec else { continue };
        let holder = spec.holder_identity.unwrap_or_default();
        let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
        let fresh = spec
            .renew_time
            .is_some_and(|renewed| now.duration_since(renewed.0).as_secs() <= duration + 30);
        if !holder.is_empty() && fresh {
            return Operator::Running {
                namespace: lease.metadata.namespace.unwrap_or_default(),
                holder,
            };
        }
    }
    Operator::Absent
}

/// The error for a command that needs an operator and finds none.
pub fn no_operator(what: &str) -> anyhow::Error {
    anyhow!(
        "no Kelvin operator is running in this cluster (no Lease {LEASE} with a holder renewed lately, in any namespace): {what}\n  fix: install the operator ({INSTALL_HINT}), or pass --no-wait to write the GpuCluster for an operator started later"
    )
}

/// The GpuCluster's condition of type `type_`, as its status has it.
pub(crate) fn condition<'a>(
    cluster: &'a GpuCluster,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    cluster
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

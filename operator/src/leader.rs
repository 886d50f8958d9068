//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: one replica holds
//! the Lease and acts, the others wait. Expiry is judged by *this* replica's clock since it last
//! saw the record change (not the holder's `renewTime`), so clock skew between machines cannot
//! make two leaders. A leader that cannot renew within the renew deadline stops (the process
//! exits and restarts as a candidate); one that shuts down releases the Lease so a standby takes
//! over at once.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::api::PostParams;
use tokio::time::Instant;

use crate::api_client::{ApiClient, Request};

/// Timings (client-go's and controller-runtime's defaults: 15 s, 10 s, 2 s).
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// How long a Lease not renewed stays the holder's.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// How often candidates try and the leader renews.
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why leading failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Reading or writing the Lease failed in a way retrying will not fix.
    #[error("writing Lease {namespace}/{name}")]
    WriteLease {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The leader could not renew within the renew deadline.
    #[error("lost Lease {namespace}/{name}: not renewed within {deadline:?}")]
    Lost {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The renew deadline.
        deadline: Duration,
    },
}

impl LeaderError {
    /// Short, stable label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::WriteLease { .. } => "write_lease",
            Self::Lost { .. } => "lost_lease",
        }
    }
}

/// One replica's side of the election.
pub struct Elector {
    api: ApiClient,
    leases: kube::Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timings: Timings,
    /// The record as last seen and when this replica saw it change.
    seen: Option<(Option<String>, Instant)>,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX).max(1)
}

impl Elector {
    /// A candidate called `identity` for Lease `namespace/name`.
    pub fn new(
        api: ApiClient,
        namespace: &str,
        name: &str,
        identity: &str,
        timings: Timings,
    ) -> Self {
        Self {
            leases: kube::Api::namespaced(api.client.clone(), namespace),
            api,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timings,
            seen: None,
        }
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn write_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::WriteLease {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    /// One attempt to take or renew the Lease; `Ok(true)` when this replica holds it now.
    /// A lost race (409, someone wrote first) is `Ok(false)`, not an error.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let current = self
            .api
            .call(Request::Read, || self.leases.get_opt(&self.name))
            .await
            .map_err(|e| self.write_error(e))?;
        let Some(lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds(self.timings.lease_duration)),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            let write = Request::Write {
                verb: "create",
                kind: "Lease",
            };
            let params = PostParams::default();
            return match self
                .api
                .call(write, || self.leases.create(&params, &lease))
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(self.write_error(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.identity.as_str());
        // Expiry by our own clock: since when has the record stood still?
        let version = lease.metadata.resource_version.clone();
        let since = match &self.seen {
            Some((seen, at)) if *seen == version => *at,
            _ => {
                self.seen = Some((version, Instant::now()));
                Instant::now()
            }
        };
        let duration = spec
            .lease_duration_seconds
            .map_or(self.timings.lease_duration, |s| {
                Duration::from_secs(u64::try_from(s).unwrap_or(0))
            });
        let expired = since.elapsed() >= duration;
        if !(ours || holder.is_none() || expired) {
            return Ok(false);
        }
        let mut next = lease;
        let spec = next.spec.get_or_insert_with(LeaseSpec::default);
        if !ours {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            tracing::info!(
                lease = %format!("{}/{}", self.namespace, self.name),
                previous = holder.as_deref().unwrap_or("nobody"),
                "taking the leader Lease"
            );
        }
        spec.lease_duration_seconds = Some(seconds(self.timings.lease_duration));
        spec.renew_time = Some(now());
        // `replace` sends the resourceVersion read: a compare-and-swap.
        let write = Request::Write {
            verb: "update",
            kind: "Lease",
        };
        let params = PostParams::default();
        match self
            .api
            .call(write, || self.leases.replace(&self.name, &params, &next))
            .await
        {
            Ok(written) => {
                self.seen = Some((written.metadata.resource_version, Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.write_error(e)),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&mut self) -> Result<(), LeaderError> {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                // The API server may be restarting: keep trying, as client-go does.
                Err(error) => {
                    tracing::warn!(error = %error, cause = ?std::error::Error::source(&error), "leader election")
                }
            }
            tokio::time::sleep(self.timings.retry_period).await;
        }
    }

    /// Renews every retry period; returns the error when renewing failed for the whole renew
    /// deadline (the caller must stop acting).
    pub async fn hold(&mut self) -> LeaderError {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.timings.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => {
                    // Someone else holds it: we lost it already.
                    return LeaderError::Lost {
                        namespace: self.namespace.clone(),
                        name: self.name.clone(),
                        deadline: self.timings.renew_deadline,
                    };
                }
                Err(error) => {
                    tracing::warn!(error = %error, cause = ?std::error::Error::source(&error), "renewing the leader Lease")
                }
            }
            if renewed.elapsed() >= self.timings.renew_deadline {
                return LeaderError::Lost {
                    namespace: self.namespace.clone(),
                    name: self.name.clone(),
                    deadline: self.timings.renew_deadline,
                };
            }
        }
    }

    /// Gives the Lease up (on shutdown), so a standby takes over without waiting for expiry.
    pub async fn release(&mut self) -> Result<(), LeaderError> {
        let Some(mut lease) = self
            .api
            .call(Request::Read, || self.leases.get_opt(&self.name))
            .await
            .map_err(|e| self.write_error(e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        let write = Request::Write {
            verb: "update",
            kind: "Lease",
        };
        let params = PostParams::default();
        self.api
            .call(write, || self.leases.replace(&self.name, &params, &lease))
            .await
            .map_err(|e| self.write_error(e))?;
        tracing::info!(lease = %format!("{}/{}", self.namespace, self.name), "released the leader Lease");
        Ok(())
    }
}

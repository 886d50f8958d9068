//! Prometheus metrics (`/metrics`, OpenMetrics text). Names and labels are API: dashboards and
//! alerts are written against them (docs/operator.md lists them).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Mutex,
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::{Family, MetricConstructor},
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// The controller a reconcile metric is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `gpucluster`.
    pub controller: &'static str,
}

/// A failed reconcile: controller and the step's `metric_label()`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `gpucluster`.
    pub controller: &'static str,
    /// The failed step (`list_nodes`, `write_node_taints`, ...).
    pub error: &'static str,
}

/// An API write: verb and kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `apply`, `patch`, `delete`.
    pub verb: &'static str,
    /// The object's kind.
    pub kind: String,
}

/// A pool of a GpuCluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct PoolLabels {
    /// The GpuCluster.
    pub cluster: String,
    /// The pool.
    pub pool: String,
}

/// Reconcile durations: 10 ms to ~80 s (a 70,000-node first rollout pass is tens of seconds).
#[derive(Clone)]
struct DurationBuckets;

impl MetricConstructor<Histogram> for DurationBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.01, 2.0, 14))
    }
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, Histogram, DurationBuckets>,
    api_writes: Family<WriteLabels, Counter>,
    api_throttled: Family<WriteLabels, Counter>,
    nodes_managed: Family<PoolLabels, Gauge>,
    nodes_in_transition: Family<PoolLabels, Gauge>,
    nodes_cached: Gauge,
    leader: Gauge,
    /// Pools last reported per GpuCluster, so a pool that went away stops being exported.
    pools: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

/// The controller label of the GpuCluster controller.
pub const GPUCLUSTER: &str = "gpucluster";

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kelvin");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles failed, by step",
            reconcile_errors.clone(),
        );
        let reconcile_duration = Family::new_with_constructor(DurationBuckets);
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            reconcile_duration.clone(),
        );
        let api_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "api_writes",
            "Writes sent to the API server, by verb and kind",
            api_writes.clone(),
        );
        let api_throttled = Family::<WriteLabels, Counter>::default();
        registry.register(
            "api_throttled",
            "Requests the API server answered 429 (Priority and Fairness shedding load), by verb \
             and kind (verb \"read\" for gets and lists)",
            api_throttled.clone(),
        );
        let nodes_managed = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "nodes_managed",
            "Nodes carrying a pool's labels",
            nodes_managed.clone(),
        );
        let nodes_in_transition = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "nodes_in_transition",
            "Nodes of a pool in a disruptive transition Kelvin started (kelvin.dev/transition)",
            nodes_in_transition.clone(),
        );
        let nodes_cached = Gauge::default();
        registry.register(
            "nodes_cached",
            "Nodes in the slim node cache",
            nodes_cached.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and acts",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            api_writes,
            api_throttled,
            nodes_managed,
            nodes_in_transition,
            nodes_cached,
            leader,
            pools: Mutex::default(),
        }
    }
}

impl Metrics {
    /// One reconcile of `controller` took `took`; `error` is its failed step, if any.
    pub fn reconciled(
        &self,
        controller: &'static str,
        took: Duration,
        error: Option<&'static str>,
    ) {
        let labels = ControllerLabels { controller };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Some(error) = error {
            self.reconcile_errors
                .get_or_create(&ErrorLabels { controller, error })
                .inc();
        }
    }

    /// One write sent.
    pub fn wrote(&self, verb: &'static str, kind: &str) {
        self.api_writes
            .get_or_create(&WriteLabels {
                verb,
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// One request answered 429.
    pub fn throttled(&self, verb: &'static str, kind: &str) {
        self.api_throttled
            .get_or_create(&WriteLabels {
                verb,
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Per pool of `cluster`: (pool, nodes labelled, nodes in transition). A pool not listed
    /// any more is dropped; an empty list drops the GpuCluster.
    pub fn pools(&self, cluster: &str, pools: &[(String, u64, u64)]) {
        let mut known = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let now: BTreeSet<String> = pools.iter().map(|(p, ..)| p.clone()).collect();
        let labels = |pool: &str| PoolLabels {
            cluster: cluster.to_owned(),
            pool: pool.to_owned(),
        };
        for gone in known
            .get(cluster)
            .into_iter()
            .flatten()
            .filter(|p| !now.contains(*p))
        {
            self.nodes_managed.remove(&labels(gone));
            self.nodes_in_transition.remove(&labels(gone));
        }
        for (pool, managed, in_transition) in pools {
            let set = |g: &Gauge, v: &u64| g.set(i64::try_from(*v).unwrap_or(i64::MAX));
            set(&self.nodes_managed.get_or_create(&labels(pool)), managed);
            set(
                &self.nodes_in_transition.get_or_create(&labels(pool)),
                in_transition,
            );
        }
        if now.is_empty() {
            known.remove(cluster);
        } else {
            known.insert(cluster.to_owned(), now);
        }
    }

    /// Nodes in the cache.
    pub fn nodes_cached(&self, count: usize) {
        self.nodes_cached
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Whether this replica leads.
    pub fn leading(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_that_went_away_is_no_longer_exported() {
        let metrics = Metrics::default();
        metrics.pools("lab", &[("a".into(), 4, 1), ("b".into(), 2, 0)]);
        let text = metrics.encode();
        assert!(
            text.contains(r#"kelvin_nodes_managed{cluster="lab",pool="a"} 4"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kelvin_nodes_in_transition{cluster="lab",pool="a"} 1"#),
            "{text}"
        );
        metrics.pools("lab", &[("b".into(), 2, 0)]);
        let text = metrics.encode();
        assert!(!text.contains(r#"pool="a""#), "{text}");
        assert!(
            text.contains(r#"kelvin_nodes_managed{cluster="lab",pool="b"} 2"#),
            "{text}"
        );
        metrics.pools("lab", &[]);
        assert!(!metrics.encode().contains(r#"cluster="lab""#));
    }

    #[test]
    fn writes_and_reconciles_are_counted_by_their_labels() {
        let metrics = Metrics::default();
        metrics.wrote("apply", "Node");
        metrics.wrote("apply", "Node");
        metrics.wrote("patch", "Node");
        metrics.reconciled(GPUCLUSTER, Duration::from_millis(30), None);
        metrics.reconciled(GPUCLUSTER, Duration::from_millis(30), Some("list_nodes"));
        let text = metrics.encode();
        for line in [
            r#"kelvin_api_writes_total{verb="apply",kind="Node"} 2"#,
            r#"kelvin_api_writes_total{verb="patch",kind="Node"} 1"#,
            r#"kelvin_reconciles_total{controller="gpucluster"} 2"#,
            r#"kelvin_reconcile_errors_total{controller="gpucluster",error="list_nodes"} 1"#,
            r#"kelvin_reconcile_duration_seconds_count{controller="gpucluster"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}

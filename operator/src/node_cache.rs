//! The node cache: every node, watched and reduced to the slim [`NodeInfo`] before it is
//! stored (DESIGN.md §4: managedFields, images and status beyond Ready and allocatable never
//! reach the store; Kelvin's label ownership is read from managedFields first). Reconciles read
//! a snapshot of it instead of listing 70,000 nodes; a node event wakes them only when the
//! slim view changed, so kubelet heartbeats and image lists cost nothing.
//!
//! Kept apart from the client (Linkerd's index/client split): the watch task feeds it, the
//! controller reads it.
//!
//! Read-your-writes: a watch lags a little behind the writes. A reconcile that planned on a
//! cache not yet showing the transition it just started could start another and exceed the
//! budget, so every node write records the resourceVersion the API server answered
//! ([`NodeCache::expect`]) and the next snapshot waits until the watch has delivered it
//! ([`NodeCache::fresh_snapshot`]) — controller-runtime's "expectations".

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kelvin_core::label_interest::LabelInterest;
use kelvin_crds::{node::NodeInfo, sorted_map::Strings};
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt,
        watcher::{self, Config, Event},
    },
};
use tokio::sync::{Notify, mpsc};

use crate::observe::slim;

/// Nodes per page of the initial list (and of every relist): bounded memory per request. A
/// production node is 10-20 KB of JSON and several times that deserialized, before it is
/// slimmed: 100 of them are a few MB in flight, 500 were most of the operator's peak memory.
const PAGE: u32 = 100;

/// The slim nodes, as last seen by the watch.
#[derive(Default)]
pub struct NodeCache {
    state: RwLock<State>,
    synced: AtomicBool,
    synced_now: Notify,
    /// Fired whenever an expected write shows up.
    seen: Notify,
    /// The labels kept of each node: those some GpuCluster's plan reads (a production node
    /// carries ~100 labels, a plan reads a handful). Set by [`NodeCache::require`], which
    /// lists the nodes again when it grows.
    interest: RwLock<LabelInterest>,
    /// Fired by [`NodeCache::require`]: the watch task starts a new list.
    relist: Notify,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, Cached>,
    /// Node -> resourceVersion of Kelvin's last write the watch has not delivered yet.
    expected: HashMap<String, String>,
    /// The label keys and values, resource names the cached nodes share.
    strings: Strings,
}

#[derive(Clone, PartialEq)]
struct Cached {
    /// Shared with the snapshots reconciles take (a pointer each, not a copy of the node).
    info: Arc<NodeInfo>,
    resource_version: Option<String>,
}

impl Cached {
    fn new(node: Node, interest: &LabelInterest, strings: &mut Strings) -> Self {
        let resource_version = node.metadata.resource_version.clone();
        let mut info = slim(node);
        interest.reduce(&mut info);
        info.intern(strings);
        Self {
            info: Arc::new(info),
            resource_version,
        }
    }

    fn name(&self) -> String {
        self.info.name.clone()
    }
}

/// Whether the cache at `cached` has caught up with a write that produced `written`. Equal
/// versions always count; a later one counts when both are numbers, as etcd revisions are (a
/// later write by someone else may come in before the check looks).
fn caught_up(cached: Option<&str>, written: &str) -> bool {
    match cached {
        Some(cached) if cached == written => true,
        Some(cached) => matches!(
            (cached.parse::<u64>(), written.parse::<u64>()),
            (Ok(cached), Ok(written)) if cached >= written
        ),
        None => false,
    }
}

/// The cache did not deliver Kelvin's own writes in time.
#[derive(Debug, thiserror::Error)]
#[error("the node watch has not delivered Kelvin's writes to {nodes} nodes after {waited:?}")]
pub struct Lagging {
    /// Nodes whose write is still missing.
    pub nodes: usize,
    /// How long the snapshot waited.
    pub waited: Duration,
}

impl NodeCache {
    /// Every node, sorted by name; `None` until the first complete list arrived (a partial
    /// cache would look like nodes that left their pools).
    pub fn snapshot(&self) -> Option<Vec<Arc<NodeInfo>>> {
        if !self.is_synced() {
            return None;
        }
        // A poisoned lock means a panic inside `apply`, which holds no invariant half-done.
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        Some(state.nodes.values().map(|c| Arc::clone(&c.info)).collect())
    }

    /// Records that Kelvin wrote `node` and the API server answered `resource_version`.
    pub fn expect(&self, node: &str, resource_version: Option<String>) {
        let Some(written) = resource_version else {
            return;
        };
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let cached = state
            .nodes
            .get(node)
            .and_then(|c| c.resource_version.as_deref());
        if !caught_up(cached, &written) {
            state.expected.insert(node.to_owned(), written);
        }
    }

    /// Forgets every expectation (after a snapshot taken by listing, which saw the writes).
    pub fn forget_expectations(&self) {
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .expected
            .clear();
    }

    /// A snapshot that shows every node write Kelvin made; waits up to `timeout` for the watch
    /// to deliver them.
    pub async fn fresh_snapshot(
        &self,
        timeout: Duration,
    ) -> Result<Option<Vec<Arc<NodeInfo>>>, Lagging> {
        let start = tokio::time::Instant::now();
        loop {
            let seen = self.seen.notified();
            let synced_now = self.synced_now.notified();
            let missing = self
                .state
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .expected
                .len();
            let synced = self.is_synced();
            if missing == 0 && synced {
                return Ok(self.snapshot());
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                if !synced {
                    // Listing again (new labels of interest): the caller lists itself.
                    return Ok(None);
                }
                return Err(Lagging {
                    nodes: missing,
                    waited: timeout,
                });
            }
            let _ = tokio::time::timeout(left, async {
                tokio::select! {
                    () = seen => {},
                    () = synced_now => {},
                }
            })
            .await;
        }
    }

    /// Makes the cache keep the labels `wanted` names from now on. When that needs labels it
    /// dropped, the cache stops answering snapshots, and lists every node again; returns
    /// whether it does.
    pub fn require(&self, wanted: LabelInterest) -> bool {
        let mut interest = self.interest.write().unwrap_or_else(|e| e.into_inner());
        if interest.covers(&wanted) {
            // Fewer keys: later events keep fewer labels, nothing to list.
            *interest = wanted;
            return false;
        }
        *interest = wanted;
        self.synced.store(false, Ordering::Release);
        self.relist.notify_one();
        true
    }

    /// The labels kept.
    pub fn interest(&self) -> LabelInterest {
        self.interest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the first complete list has arrived.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Waits until the first complete list has arrived.
    pub async fn wait_synced(&self) {
        loop {
            let notified = self.synced_now.notified();
            if self.is_synced() {
                return;
            }
            notified.await;
        }
    }

    /// Nodes cached.
    pub fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .nodes
            .len()
    }

    /// Whether no node is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Folds one watch event in; returns whether what Kelvin decides on changed.
    fn apply(&self, event: Event<Node>, relist: &mut Option<BTreeMap<String, Cached>>) -> bool {
        // Read-locked, not cloned: this runs for every node event (heartbeats included).
        let interest = self.interest.read().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let State {
            nodes,
            expected,
            strings,
        } = &mut *state;
        let changed = match event {
            Event::Apply(node) => {
                let node = Cached::new(node, &interest, strings);
                strings.purge_when_doubled();
                let name = node.name();
                if let Some(written) = expected.get(&name)
                    && caught_up(node.resource_version.as_deref(), written)
                {
                    expected.remove(&name);
                }
                let changed = nodes.get(&name).map(|c| &c.info) != Some(&node.info);
                nodes.insert(name, node);
                changed
            }
            Event::Delete(node) => {
                let name = node.metadata.name.as_deref().unwrap_or_default();
                expected.remove(name);
                nodes.remove(name).is_some()
            }
            // A (re)list: build the new set aside, swap it in whole when complete.
            Event::Init => {
                *relist = Some(BTreeMap::new());
                false
            }
            Event::InitApply(node) => {
                let node = Cached::new(node, &interest, strings);
                relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(node.name(), node);
                false
            }
            Event::InitDone => {
                let fresh = relist.take().unwrap_or_default();
                let changed = nodes.len() != fresh.len()
                    || nodes
                        .iter()
                        .zip(&fresh)
                        .any(|(a, b)| a.0 != b.0 || a.1.info != b.1.info);
                expected.retain(|name, written| {
                    fresh
                        .get(name)
                        .is_some_and(|c| !caught_up(c.resource_version.as_deref(), written))
                });
                *nodes = fresh;
                // The nodes of the last list are gone: so are the strings only they held.
                strings.purge();
                drop(state);
                if !self.synced.swap(true, Ordering::AcqRel) {
                    self.synced_now.notify_waiters();
                }
                self.seen.notify_waiters();
                return changed;
            }
        };
        drop(state);
        self.seen.notify_waiters();
        changed
    }
}

/// Starts watching nodes into a new cache that keeps the labels `interest` names. The stream
/// yields once per change of the slim view (coalesced: a burst of node events becomes one
/// wake-up while a reconcile runs).
pub fn spawn(
    client: Client,
    interest: LabelInterest,
) -> (Arc<NodeCache>, impl Stream<Item = ()> + Send + 'static) {
    let cache = Arc::new(NodeCache {
        interest: RwLock::new(interest),
        ..NodeCache::default()
    });
    let (wake, woken) = mpsc::channel::<()>(1);
    let api: Api<Node> = Api::all(client);
    let task_cache = cache.clone();
    tokio::spawn(async move {
        // Streaming lists (a watch that sends the current nodes first, one at a time, instead
        // of pages of a list: DESIGN.md §4) where the API server offers them (WatchList,
        // Kubernetes 1.32+), pages otherwise.
        let mut streaming = true;
        // Each turn of the outer loop is a new watch, starting with a full list: at start, when
        // `require` needs labels the cache dropped, and when streaming lists are refused.
        'watch: loop {
            let config = if streaming {
                Config::default().streaming_lists()
            } else {
                Config::default().page_size(PAGE)
            };
            let mut relist = None;
            let mut listed = false;
            let mut events = std::pin::pin!(
                watcher::watcher(api.clone(), config).backoff(WatchBackoff::default())
            );
            loop {
                let event = tokio::select! {
                    event = events.next() => event,
                    () = task_cache.relist.notified() => break,
                };
                match event {
                    None => return,
                    Some(Ok(event)) => {
                        listed |= matches!(event, Event::InitDone);
                        if task_cache.apply(event, &mut relist) {
                            // Full: a wake-up is already pending, which will see this change.
                            let _ = wake.try_send(());
                        }
                    }
                    Some(Err(error)) if streaming && !listed && refuses_streaming(&error) => {
                        tracing::info!(%error, "the API server does not offer streaming lists; listing nodes in pages");
                        streaming = false;
                        continue 'watch;
                    }
                    Some(Err(error)) => tracing::warn!(%error, "node watch failed; retrying"),
                }
            }
            tracing::info!(
                keys = task_cache.interest().len(),
                "node labels of interest grew; listing the nodes again"
            );
        }
    });
    let woken =
        futures::stream::unfold(
            woken,
            |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
        );
    (cache, woken)
}

/// Back-off between attempts of the node watch: 200 ms doubling to at most 5 s (jittered),
/// reset by any event. kube's default grows to 30 s and resets only after two quiet minutes,
/// so after an API server outage of a few seconds the cache stayed stale for 10 s and more
/// once the server answered again (measured by `operator/tests/apiserver_faults.rs`); a
/// watch attempt is cheap, and Priority and Fairness sheds it if the server is overloaded.
struct WatchBackoff {
    next: Duration,
}

const WATCH_RETRY_MIN: Duration = Duration::from_millis(200);
const WATCH_RETRY_MAX: Duration = Duration::from_secs(5);

impl Default for WatchBackoff {
    fn default() -> Self {
        Self {
            next: WATCH_RETRY_MIN,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = crate::api_client::jittered(self.next);
        self.next = (self.next * 2).min(WATCH_RETRY_MAX);
        Some(wait)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = WATCH_RETRY_MIN;
    }
}

/// Whether the API server refused a streaming list as such (an older server, or WatchList
/// turned off: `sendInitialEvents` / `resourceVersionMatch` on a watch is a bad request), not
/// a passing failure.
fn refuses_streaming(error: &watcher::Error) -> bool {
    let code = match error {
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code,
        watcher::Error::WatchError(status) => status.code,
        _ => return false,
    };
    matches!(code, 400 | 422)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }

    #[test]
    fn the_watch_backs_off_to_at_most_five_seconds_and_starts_over_after_an_event() {
        use kube::runtime::utils::Backoff;
        let mut backoff = WatchBackoff::default();
        let waits: Vec<Duration> = backoff.by_ref().take(8).collect();
        assert!(waits[0] <= WATCH_RETRY_MIN && waits[0] >= WATCH_RETRY_MIN / 2);
        assert!(waits.iter().all(|w| *w <= WATCH_RETRY_MAX));
        assert!(waits[7] >= WATCH_RETRY_MAX / 2, "{waits:?}");
        backoff.reset();
        assert!(backoff.next().unwrap() <= WATCH_RETRY_MIN);
    }

    #[test]
    fn a_relist_replaces_the_set_whole_and_marks_the_cache_synced() {
        let cache = NodeCache::default();
        let mut relist = None;
        assert!(cache.snapshot().is_none(), "not synced: no snapshot");
        assert!(!cache.apply(Event::Init, &mut relist));
        assert!(!cache.apply(Event::InitApply(node("b", &[])), &mut relist));
        assert!(!cache.apply(Event::InitApply(node("a", &[])), &mut relist));
        assert!(cache.is_empty(), "nothing swapped in before InitDone");
        assert!(cache.apply(Event::InitDone, &mut relist));
        let names: Vec<String> = cache
            .snapshot()
            .unwrap()
            .into_iter()
            .map(|n| n.name.clone())
            .collect();
        assert_eq!(names, ["a", "b"]);

        // A relist after a watch gap: node a is gone, c is new.
        cache.apply(Event::Init, &mut relist);
        cache.apply(Event::InitApply(node("b", &[])), &mut relist);
        cache.apply(Event::InitApply(node("c", &[])), &mut relist);
        assert_eq!(
            cache.len(),
            2,
            "the old set serves reads until the new one is whole"
        );
        assert!(cache.apply(Event::InitDone, &mut relist));
        let names: Vec<String> = cache
            .snapshot()
            .unwrap()
            .into_iter()
            .map(|n| n.name.clone())
            .collect();
        assert_eq!(names, ["b", "c"]);
    }

    fn interest_in(keys: &[&str]) -> LabelInterest {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
        let mut spec: kelvin_crds::v1alpha1::GpuClusterSpec =
            serde_json::from_value(serde_json::json!({
                "site": {"powerBudgetMW": 1, "pue": 1.2},
                "coolingZones": [], "fabrics": [], "gpuPools": []
            }))
            .unwrap();
        let zone: kelvin_crds::v1alpha1::CoolingZone = serde_json::from_value(
            serde_json::json!({"name": "z", "cooling": "Liquid", "capacityKW": 1, "nodeSelector": {}}),
        )
        .unwrap();
        spec.cooling_zones = keys
            .iter()
            .map(|k| kelvin_crds::v1alpha1::CoolingZone {
                node_selector: LabelSelector {
                    match_labels: Some([((*k).to_owned(), "x".to_owned())].into()),
                    ..LabelSelector::default()
                },
                ..zone.clone()
            })
            .collect();
        LabelInterest::of([&spec])
    }

    #[tokio::test]
    async fn only_labels_of_interest_are_kept_and_new_ones_mean_a_new_list() {
        let cache = NodeCache {
            interest: RwLock::new(interest_in(&["team"])),
            ..NodeCache::default()
        };
        let labels = [
            ("team", "a"),
            ("rack", "7"),
            ("kelvin.dev/pool", "p"),
            ("nfd/x", "y"),
        ];
        let mut relist = None;
        cache.apply(Event::Init, &mut relist);
        cache.apply(Event::InitApply(node("a", &labels)), &mut relist);
        cache.apply(Event::InitDone, &mut relist);
        let kept: Vec<String> = cache.snapshot().unwrap()[0]
            .labels
            .keys()
            .map(str::to_owned)
            .collect();
        assert_eq!(kept, ["kelvin.dev/pool", "team"]);

        // Fewer keys: nothing to list again.
        assert!(!cache.require(interest_in(&[])));
        assert!(cache.is_synced());
        // A key the cache dropped: no snapshot until the new list is whole.
        assert!(cache.require(interest_in(&["rack"])));
        assert!(cache.snapshot().is_none());
        assert!(
            cache
                .fresh_snapshot(Duration::from_millis(10))
                .await
                .unwrap()
                .is_none(),
            "a snapshot while listing again is None: the caller lists"
        );
        cache.apply(Event::Init, &mut relist);
        cache.apply(Event::InitApply(node("a", &labels)), &mut relist);
        cache.apply(Event::InitDone, &mut relist);
        let kept: Vec<String> = cache.snapshot().unwrap()[0]
            .labels
            .keys()
            .map(str::to_owned)
            .collect();
        assert_eq!(kept, ["kelvin.dev/pool", "rack"]);
    }

    fn versioned(name: &str, rv: &str) -> Node {
        let mut node = node(name, &[]);
        node.metadata.resource_version = Some(rv.into());
        node
    }

    #[tokio::test]
    async fn a_snapshot_waits_for_kelvins_own_writes_to_arrive() {
        let cache = NodeCache::default();
        let mut relist = None;
        cache.apply(Event::Init, &mut relist);
        cache.apply(Event::InitApply(versioned("a", "10")), &mut relist);
        cache.apply(Event::InitDone, &mut relist);
        // Already seen: no wait.
        cache.expect("a", Some("10".into()));
        assert!(cache.fresh_snapshot(Duration::ZERO).await.is_ok());
        // Kelvin wrote a; the API server answered 12; the watch has not delivered it.
        cache.expect("a", Some("12".into()));
        let lagging = cache
            .fresh_snapshot(Duration::from_millis(20))
            .await
            .unwrap_err();
        assert_eq!(lagging.nodes, 1);
        cache.apply(Event::Apply(versioned("a", "11")), &mut relist);
        assert!(
            cache.fresh_snapshot(Duration::ZERO).await.is_err(),
            "11 is older than 12"
        );
        // Someone else wrote after Kelvin; the watch delivers that first: caught up too.
        cache.apply(Event::Apply(versioned("a", "13")), &mut relist);
        assert!(
            cache
                .fresh_snapshot(Duration::ZERO)
                .await
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn only_a_change_of_the_slim_view_wakes_reconciles() {
        let cache = NodeCache {
            interest: RwLock::new(interest_in(&["x"])),
            ..NodeCache::default()
        };
        let mut relist = None;
        cache.apply(Event::Init, &mut relist);
        cache.apply(Event::InitDone, &mut relist);
        assert!(cache.apply(Event::Apply(node("a", &[("x", "1")])), &mut relist));
        // A heartbeat: the same slim view (images and managedFields are not in it).
        let mut beat = node("a", &[("x", "1")]);
        beat.metadata.resource_version = Some("42".into());
        beat.status = Some(k8s_openapi::api::core::v1::NodeStatus {
            images: Some(vec![Default::default()]),
            ..Default::default()
        });
        assert!(!cache.apply(Event::Apply(beat), &mut relist));
        assert!(cache.apply(Event::Apply(node("a", &[("x", "2")])), &mut relist));
        // A label no plan reads (node feature discovery's, say) changed: nothing to look at.
        assert!(!cache.apply(
            Event::Apply(node("a", &[("x", "2"), ("nfd/y", "1")])),
            &mut relist
        ));
        assert!(cache.apply(Event::Delete(node("a", &[])), &mut relist));
        assert!(!cache.apply(Event::Delete(node("a", &[])), &mut relist));
        assert!(cache.snapshot().unwrap().is_empty());
    }
}

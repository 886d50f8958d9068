//! Every request Kelvin makes goes through [`Api::call`]: a client-side rate limit (QPS and
//! burst, like client-go's; kube-rs has none of its own), a back-off when the API server's
//! Priority and Fairness answers 429, and the write metrics. Watches are long-lived and not
//! limited.

use std::{future::Future, sync::Arc, time::Duration};

use kube::Client;
use tokio::{sync::Mutex, time::Instant};

use crate::metrics::Metrics;

/// Attempts at a request the API server throttled (429) before the error is returned.
const THROTTLED_ATTEMPTS: u32 = 6;

/// A token bucket: `qps` tokens per second, at most `burst` saved up. Waiters reserve tokens
/// in arrival order (the bucket may go negative), so a burst of writers is spread evenly.
/// Beside it, a pause every request waits out: set when the API server answers 429, so the
/// whole client backs off, not only the request that was refused.
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    bucket: Mutex<(f64, Instant)>,
    paused_until: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `qps` of 0 means unlimited.
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps,
            burst,
            bucket: Mutex::new((burst, Instant::now())),
            paused_until: Mutex::new(None),
        }
    }

    /// Waits for the pause, if any, then for one token.
    pub async fn acquire(&self) {
        let paused = *self.paused_until.lock().await;
        if let Some(until) = paused {
            tokio::time::sleep_until(until).await;
        }
        if self.qps <= 0.0 {
            return;
        }
        let wait = {
            let mut bucket = self.bucket.lock().await;
            let (tokens, last) = &mut *bucket;
            let now = Instant::now();
            *tokens =
                (*tokens + now.duration_since(*last).as_secs_f64() * self.qps).min(self.burst);
            *last = now;
            *tokens -= 1.0;
            (*tokens < 0.0).then(|| Duration::from_secs_f64(-*tokens / self.qps))
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }

    /// Holds every request back for `pause` from now (a longer pause already set stays).
    pub async fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut paused = self.paused_until.lock().await;
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }
}

/// Between half and all of `full`, at random: retries of requests that failed together
/// (throttled together, or cut off by one API server restart) do not come back in step.
pub fn jittered(full: Duration) -> Duration {
    full.mul_f64(0.5 + fastrand::f64() / 2.0)
}

/// The wait before attempt `attempt` (1, 2, ...) of a throttled request: 0.5 s, 1 s, 2 s ...
/// up to 16 s, [`jittered`].
fn throttled_wait(attempt: u32) -> Duration {
    jittered(Duration::from_millis(250 << attempt.min(6)))
}

/// How long the whole client pauses after a 429: the API server is shedding load now, so the
/// other requests in flight hold back too (their own 429s would only add to it).
const THROTTLED_PAUSE: Duration = Duration::from_millis(250);

/// The client with Kelvin's limits and metrics around it.
#[derive(Clone)]
pub struct ApiClient {
    /// The underlying client.
    pub client: Client,
    /// Where writes are counted.
    pub metrics: Arc<Metrics>,
    limiter: Arc<RateLimiter>,
}

/// What a request does, for the metrics: a read, or a write of a verb on a kind.
#[derive(Clone, Copy)]
pub enum Request<'a> {
    /// get, list.
    Read,
    /// apply, patch, create, delete ...
    Write {
        /// The verb.
        verb: &'static str,
        /// The kind written.
        kind: &'a str,
    },
}

impl ApiClient {
    /// `qps` of 0 means unlimited.
    pub fn new(client: Client, metrics: Arc<Metrics>, qps: f64, burst: u32) -> Self {
        Self {
            client,
            metrics,
            limiter: Arc::new(RateLimiter::new(qps, burst)),
        }
    }

    /// Sends one request once, within the rate limit, for calls where 429 is an answer and not
    /// the API server shedding load (an eviction a PodDisruptionBudget forbids).
    pub async fn call_once<T, Fut>(&self, request: Request<'_>, send: Fut) -> Result<T, kube::Error>
    where
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        self.limiter.acquire().await;
        if let Request::Write { verb, kind } = request {
            self.metrics.wrote(verb, kind);
        }
        send.await
    }

    /// Sends one request (`send` may be called again after a 429), within the rate limit.
    pub async fn call<T, F, Fut>(&self, request: Request<'_>, send: F) -> Result<T, kube::Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut attempt = 0;
        loop {
            self.limiter.acquire().await;
            if let Request::Write { verb, kind } = request {
                self.metrics.wrote(verb, kind);
            }
            match send().await {
                Err(kube::Error::Api(status)) if status.code == 429 => {
                    match request {
                        Request::Write { verb, kind } => self.metrics.throttled(verb, kind),
                        Request::Read => self.metrics.throttled("read", ""),
                    }
                    attempt += 1;
                    if attempt >= THROTTLED_ATTEMPTS {
                        return Err(kube::Error::Api(status));
                    }
                    let wait = throttled_wait(attempt);
                    tracing::debug!(?wait, "API server throttled a request (429); backing off");
                    self.limiter.pause(jittered(THROTTLED_PAUSE)).await;
                    tokio::time::sleep(wait).await;
                }
                result => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_lets_a_burst_through_then_spaces_requests_at_qps() {
        let limiter = RateLimiter::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is immediate");
        for _ in 0..10 {
            limiter.acquire().await;
        }
        let took = start.elapsed();
        // 10 more tokens at 10/s: one second.
        assert!(
            (Duration::from_millis(990)..=Duration::from_millis(1010)).contains(&took),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_request_back() {
        let limiter = RateLimiter::new(0.0, 1);
        limiter.pause(Duration::from_millis(300)).await;
        limiter.pause(Duration::from_millis(100)).await; // shorter: the longer one stays
        let start = Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }

    #[test]
    fn throttled_waits_grow_and_are_jittered_within_half_to_full() {
        for attempt in 1..=8 {
            let full = Duration::from_millis(250 << attempt.min(6));
            for _ in 0..50 {
                let wait = throttled_wait(attempt);
                assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
            }
        }
        assert_eq!(Duration::from_millis(250 << 6), Duration::from_secs(16));
    }

    fn throttled() -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code: 429,
            reason: "TooManyRequests".into(),
            ..kube::core::Status::default()
        }))
    }

    fn api_client() -> ApiClient {
        // Never connects: the requests below do not use it.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        ApiClient::new(client, Arc::default(), 0.0, 1)
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_request_is_tried_again_after_a_back_off_and_counted() {
        let api = api_client();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let start = Instant::now();
        let write = Request::Write {
            verb: "apply",
            kind: "Node",
        };
        let result = api
            .call(write, || async {
                match tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
                    0..=2 => Err(throttled()),
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(tries.into_inner(), 4);
        // At least half of 0.5 s + 1 s + 2 s waited, at most all of it and the pauses.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1750), "{took:?}");
        assert!(took <= Duration::from_millis(3500 + 3 * 250), "{took:?}");
        let text = api.metrics.encode();
        assert!(
            text.contains(r#"kelvin_api_throttled_total{verb="apply",kind="Node"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"kelvin_api_writes_total{verb="apply",kind="Node"} 4"#));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_throttled_every_time_fails_after_the_last_attempt() {
        let api = api_client();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let result: Result<(), _> = api
            .call(Request::Read, || async {
                tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(throttled())
            })
            .await;
        assert!(matches!(result, Err(kube::Error::Api(s)) if s.code == 429));
        assert_eq!(tries.into_inner(), THROTTLED_ATTEMPTS);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_qps_is_unlimited() {
        let limiter = RateLimiter::new(0.0, 1);
        let start = Instant::now();
        for _ in 0..1000 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}

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
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `qps` of 0 means unlimited.
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps,
            burst,
            bucket: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits for one token.
    pub async fn acquire(&self) {
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
}

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
                Err(kube::Error::Api(status))
                    if status.code == 429 && attempt + 1 < THROTTLED_ATTEMPTS =>
                {
                    attempt += 1;
                    // 0.5 s, 1 s, 2 s ... : the API server sheds load, Kelvin waits its turn.
                    let wait = Duration::from_millis(250 << attempt.min(6));
                    tracing::debug!(?wait, "API server throttled a request (429); backing off");
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
    async fn zero_qps_is_unlimited() {
        let limiter = RateLimiter::new(0.0, 1);
        let start = Instant::now();
        for _ in 0..1000 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}

//! `/healthz`, `/readyz` and `/metrics` on one address (the probes and the Prometheus scrape of
//! the chart's Deployment).

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
};

use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// What `/readyz` answers.
#[derive(Default)]
pub struct Readiness(AtomicU8);

const STARTING: u8 = 0;
const STANDBY: u8 = 1;
const LEADING_SYNCED: u8 = 2;

impl Readiness {
    /// Waiting for the Lease: ready (a standby is healthy), says so.
    pub fn standby(&self) {
        self.0.store(STANDBY, Ordering::Release);
    }

    /// Leading, and the node cache has its first complete list.
    pub fn leading(&self) {
        self.0.store(LEADING_SYNCED, Ordering::Release);
    }

    /// Leading, node cache not synced yet (or after losing the Lease): not ready.
    pub fn starting(&self) {
        self.0.store(STARTING, Ordering::Release);
    }

    fn answer(&self) -> (StatusCode, &'static str) {
        match self.0.load(Ordering::Acquire) {
            STANDBY => (StatusCode::OK, "ok: standby (another replica leads)\n"),
            LEADING_SYNCED => (StatusCode::OK, "ok: leading\n"),
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                "starting: node cache not synced\n",
            ),
        }
    }
}

fn respond(path: &str, metrics: &Metrics, readiness: &Readiness) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/healthz" | "/livez" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" => {
            let (status, text) = readiness.answer();
            (status, "text/plain", text.to_owned())
        }
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Binds `address`, then serves in the background; returns the bound address (port 0 picks
/// one, which tests use).
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accepting a health/metrics connection");
                    continue;
                }
            };
            let (metrics, readiness) = (metrics.clone(), readiness.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = respond(request.uri().path(), &metrics, &readiness);
                    async move { Ok::<_, Infallible>(response) }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, "health/metrics connection");
                }
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_lease_and_the_cache() {
        let metrics = Metrics::default();
        let readiness = Readiness::default();
        let status = |path: &str| respond(path, &metrics, &readiness).status();
        assert_eq!(status("/healthz"), StatusCode::OK);
        assert_eq!(status("/readyz"), StatusCode::SERVICE_UNAVAILABLE);
        readiness.standby();
        assert_eq!(status("/readyz"), StatusCode::OK);
        readiness.leading();
        assert_eq!(status("/readyz"), StatusCode::OK);
        assert_eq!(status("/metrics"), StatusCode::OK);
        assert_eq!(status("/nope"), StatusCode::NOT_FOUND);
    }
}

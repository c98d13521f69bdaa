//! The metrics door: Prometheus' (OpenMetrics) text at `GET /metrics` on a listener of its own
//! (`[metrics] listen` or `--metrics`). Plain HTTP with no authentication, as Prometheus
//! scrapes expect, which is why it opens beyond loopback only when the config says so
//! (`config::check_metrics_address`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::warn;

use super::ServerState;
use crate::shutdown::Shutdown;

/// The content type of what `prometheus-client` writes: OpenMetrics text, which Prometheus
/// reads (and asks for first).
const TEXT_FORMAT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds the metrics door.
///
/// # Errors
/// The address cannot be bound.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/metrics` until shutdown begins.
pub(crate) async fn run(listener: TcpListener, state: Arc<ServerState>, shutdown: Shutdown) {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(state);
    let stop = shutdown.begin.clone();
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        warn!(error = %e, "the metrics door stopped");
    }
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], state.metrics_text())
}

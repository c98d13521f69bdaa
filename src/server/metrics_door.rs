//! The metrics door: Prometheus' (OpenMetrics) text at `GET /metrics` on a listener of its own
//! (`[metrics] listen` or `--metrics`). Plain HTTP with no authentication, as Prometheus
//! scrapes expect, which is why it opens beyond loopback only when the config says so
//! (`config::check_metrics_address`). Like the other doors it accepts within the server's
//! connection limits (`door`), and a connection gets the handshake timeout in all: a scrape
//! takes a moment, and a client that sends nothing cannot keep its place.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;

use super::ServerState;
use super::door::{Accepted, DoorListener};
use crate::shutdown::Shutdown;

/// The content type of what `prometheus-client` writes: OpenMetrics text, which Prometheus
/// reads (and asks for first).
const TEXT_FORMAT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds the metrics door. Its own rule (loopback unless `public`) was checked by the caller,
/// so the doors' rule for plaintext does not apply.
///
/// # Errors
/// The address cannot be bound.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<DoorListener> {
    DoorListener::bind(addr, false, "metrics", "").await
}

/// Serves `/metrics` until shutdown, within the server's connection limits.
pub(crate) async fn run(listener: DoorListener, state: Arc<ServerState>, shutdown: Shutdown) {
    listener.run(state, shutdown, serve).await;
}

/// One HTTP connection, for at most the handshake timeout.
async fn serve(accepted: Accepted) {
    let Accepted {
        tcp,
        state,
        shutdown,
        held,
        ..
    } = accepted;
    let limit = state.limits.handshake_timeout();
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(state);
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router));
    tokio::select! {
        _ = shutdown.force.cancelled() => {}
        _ = tokio::time::timeout(limit, connection) => {}
    }
    drop(held);
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], state.metrics_text())
}

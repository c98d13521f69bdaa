//! `stats`: the server's live figures for a user with `admin` — the very counters the metrics
//! door serves, so the web page and Prometheus never disagree.

use tokio::io::{AsyncRead, AsyncWrite};

use super::chat::hub::ChatHub;
use super::{RequestError, SessionContext};
use crate::audit::AuditLog;
use crate::connection::Connection;
use crate::metrics::{Metrics, Snapshot, samples};
use crate::protocol::{Message, Permission, Stats, StatsReport};

/// Answers one `stats` with every series.
///
/// # Errors
/// `permission_denied` without `admin`; the connection failed.
pub async fn serve_stats<S>(
    conn: &mut Connection<S>,
    _request: Stats,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ctx.need(Permission::Admin, "stats")?;
    let text = figures(
        &ctx.metrics,
        &ctx.chat,
        &ctx.audit,
        ctx.resume_budget.hashed(),
    );
    conn.write_message(&Message::StatsReport(StatsReport {
        samples: samples(&text),
    }))
    .await?;
    Ok(())
}

/// The metrics text as of now: the counters, and the figures read from their owners.
pub fn figures(metrics: &Metrics, chat: &ChatHub, audit: &AuditLog, resume_hashed: u64) -> String {
    metrics.render(&Snapshot {
        chat_rooms: i64::try_from(chat.room_count()).unwrap_or(i64::MAX),
        chat_members: i64::try_from(chat.member_count()).unwrap_or(i64::MAX),
        cluster_up: chat.engine_reachable(),
        audit_dropped: audit.dropped(),
        audit_kept_over_budget: audit.kept_over_budget(),
        resume_hashed_bytes: resume_hashed,
    })
}

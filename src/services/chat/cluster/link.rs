//! The link from this server to Redis for changes: one ordered queue of operations, sent in
//! pipelines by one task. Every change a participant makes goes through it, so a member's
//! lines, renames and leaves reach Redis in the order it made them, and many members' lines
//! share a round trip. Each operation says what to do with its answer ([`Done`]): a line's
//! `chat_ack` is sent only once Redis has taken the line, and a refusal if it did not.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Cmd, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::record::NodeMessage;
use super::script::{self, Retention};
use crate::protocol::{ErrorCode, Refusal};
use crate::services::chat::participant::{Delivery, Participant, Receipt, Relay};

/// Operations waiting to be sent at most; past it changes are refused, as with Redis away.
const QUEUE: usize = 65_536;

/// Operations sent in one pipeline at most.
const BATCH: usize = 512;

/// What to do with an operation's answer.
pub enum Done {
    /// Nothing (a leave, a release: the reconciliation after an outage repairs a lost one).
    Nothing,
    /// Tell `to` whether Redis recorded its request `id` ([`Delivery::Recorded`]).
    Recorded {
        /// Who made the request.
        to: Participant,
        /// Its id.
        id: u64,
    },
    /// Tell `to` only if Redis did not record its change (a client that is not acked: IRC).
    RefusedOnly {
        /// Who made the change.
        to: Participant,
    },
    /// A direct message routed by nick: refuse request `id` with `not_found` when no one holds
    /// `nick` (the recipient's server acks it otherwise).
    /// When it was kept for the signed-out user `nick` names, the sender is told so and acked;
    /// at that user's bound, refused.
    Routed {
        /// Who sent the message.
        to: Participant,
        /// Its request id.
        id: u64,
        /// The recipient's nick.
        nick: String,
        /// The user it is kept for when they are signed out, and the most kept for one user.
        keep: Option<(String, usize)>,
    },
    /// Keep the receipt until Redis took the message.
    Hold(#[allow(dead_code)] Receipt),
    /// Hand the answer back.
    Reply(oneshot::Sender<Result<Value, Refusal>>),
}

struct Job {
    cmd: Cmd,
    done: Done,
}

/// The handle: queues operations, and knows whether Redis is reachable.
pub struct Link {
    jobs: mpsc::Sender<Job>,
    up: AtomicBool,
    /// Signalled (to whoever waits: the subscriber's loop) when Redis failed to answer: the
    /// subscriber reconnects. No permit is kept: a failure while the subscriber is busy is
    /// seen at the next one (a dead Redis fails every heartbeat).
    pub lost: tokio::sync::Notify,
    /// This server's node ID.
    pub node: String,
    /// What the rooms' streams keep.
    pub retention: Retention,
    redis: String,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("node", &self.node).finish()
    }
}

/// The refusal for a change made while Redis is unreachable.
pub fn unreachable(redis: &str) -> Refusal {
    Refusal::new(
        ErrorCode::Unavailable,
        format!(
            "the chat engine (Redis at {redis}) is unreachable: nothing was sent; try again when it is back"
        ),
    )
}

impl Link {
    /// Starts the sending task on `conn`.
    pub fn start(
        conn: ConnectionManager,
        node: String,
        redis: String,
        retention: Retention,
        timeout: Duration,
        closed: CancellationToken,
    ) -> Arc<Link> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let link = Arc::new(Link {
            jobs,
            up: AtomicBool::new(true),
            lost: tokio::sync::Notify::new(),
            node,
            retention,
            redis,
        });
        tokio::spawn(send_all(
            conn,
            queue,
            timeout,
            Arc::downgrade(&link),
            closed,
        ));
        link
    }

    /// Whether Redis answers.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Records whether Redis answers; returns whether that changed.
    pub fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, Ordering::AcqRel) != up
    }

    /// The refusal for a change made now that Redis is unreachable.
    pub fn unreachable(&self) -> Refusal {
        unreachable(&self.redis)
    }

    /// Where Redis is, as configured (without a password).
    pub fn redis(&self) -> &str {
        &self.redis
    }

    /// Operation `op` of the engine script.
    pub fn op(&self, op: &str, args: &[&str]) -> Cmd {
        script::op(self.retention, op, args)
    }

    /// Queues `cmd`.
    ///
    /// # Errors
    /// Redis is unreachable, or the queue is full; nothing was queued and `done` was not run.
    pub fn send(&self, cmd: Cmd, done: Done) -> Result<(), Refusal> {
        if !self.is_up() {
            return Err(self.unreachable());
        }
        self.enqueue(cmd, done)
    }

    fn enqueue(&self, cmd: Cmd, done: Done) -> Result<(), Refusal> {
        self.jobs.try_send(Job { cmd, done }).map_err(|_| {
            Refusal::new(
                ErrorCode::ServerBusy,
                "the chat engine's queue to Redis is full: nothing was sent; try again",
            )
        })
    }

    /// Queues `cmd` and waits for its answer.
    ///
    /// # Errors
    /// Redis is unreachable or refused the operation.
    pub async fn ask(&self, cmd: Cmd) -> Result<Value, Refusal> {
        let (tx, rx) = oneshot::channel();
        self.send(cmd, Done::Reply(tx))?;
        rx.await.unwrap_or_else(|_| Err(self.unreachable()))
    }

    /// As [`Link::ask`], even while Redis counts as unreachable: for the subscriber finding
    /// out whether it is back.
    ///
    /// # Errors
    /// Redis did not answer or refused the operation.
    pub async fn ask_while_down(&self, cmd: Cmd) -> Result<Value, Refusal> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(cmd, Done::Reply(tx))?;
        rx.await.unwrap_or_else(|_| Err(self.unreachable()))
    }

    /// Sends `delivery` to participant `pid` on server `node`, on that server's channel.
    pub fn send_to(&self, node: &str, pid: u64, delivery: Delivery) -> bool {
        let (message, done) = match delivery {
            Delivery::Direct {
                from,
                from_nick,
                text,
                action,
                receipt,
            } => (
                NodeMessage::Direct {
                    n: self.node.clone(),
                    p: from.id,
                    f: from_nick,
                    t: text,
                    a: action,
                    ack: None,
                },
                receipt.map_or(Done::Nothing, Done::Hold),
            ),
            Delivery::Opened { from, from_nick } => (
                NodeMessage::Opened {
                    n: self.node.clone(),
                    p: from.id,
                    f: from_nick,
                },
                Done::Nothing,
            ),
            Delivery::Ack { id } => (NodeMessage::Ack { id }, Done::Nothing),
            // Outcomes are for a participant of this server: never forwarded.
            Delivery::Refused(_)
            | Delivery::Recorded { .. }
            | Delivery::Ended { .. }
            | Delivery::Kept(_)
            | Delivery::Notice(_) => {
                return false;
            }
        };
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(super::keys::node_channel(node))
            .arg(format!("{pid} {}", message.to_json()));
        self.send(cmd, done).is_ok()
    }
}

/// Sends queued operations in pipelines, in queue order, until the hub closes.
async fn send_all(
    mut conn: ConnectionManager,
    mut queue: mpsc::Receiver<Job>,
    timeout: Duration,
    link: std::sync::Weak<Link>,
    closed: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            _ = closed.cancelled() => 0,
            n = queue.recv_many(&mut batch, BATCH) => n,
        };
        if received == 0 {
            return;
        }
        let Some(link) = link.upgrade() else { return };
        let answers = run(&mut conn, &batch, timeout).await;
        if answers.iter().any(Result::is_err) {
            // Redis did not answer in time (or the connection broke): count it as lost until
            // the subscriber has reconnected and resumed.
            link.lost.notify_waiters();
        }
        for (job, answer) in batch.drain(..).zip(answers) {
            finish(&link, job.done, answer);
        }
    }
}

/// Runs `jobs` as one pipeline; one answer per job. Jobs Redis did not know the script for are
/// run again, in order, after loading it.
async fn run(
    conn: &mut ConnectionManager,
    jobs: &[Job],
    timeout: Duration,
) -> Vec<Result<Value, ()>> {
    let mut answers = pipeline(conn, jobs.iter().map(|j| &j.cmd), timeout).await;
    let retry: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a, Ok(v) if script::is_noscript(v)))
        .map(|(i, _)| i)
        .collect();
    if !retry.is_empty() {
        let loaded: Result<Result<Value, _>, _> =
            tokio::time::timeout(timeout, script::load().query_async(conn)).await;
        if matches!(loaded, Ok(Ok(_))) {
            let again = pipeline(conn, retry.iter().map(|&i| &jobs[i].cmd), timeout).await;
            for (i, answer) in retry.into_iter().zip(again) {
                answers[i] = answer;
            }
        }
    }
    answers
}

async fn pipeline<'c>(
    conn: &mut ConnectionManager,
    cmds: impl Iterator<Item = &'c Cmd>,
    timeout: Duration,
) -> Vec<Result<Value, ()>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for cmd in cmds {
        pipe.add_command(cmd.clone());
    }
    let n = pipe.len();
    match tokio::time::timeout(timeout, pipe.query_async::<Vec<Value>>(conn)).await {
        Ok(Ok(values)) if values.len() == n => values.into_iter().map(Ok).collect(),
        Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
            tracing::debug!(n, "a pipeline to Redis failed");
            vec![Err(()); n]
        }
    }
}

fn finish(link: &Link, done: Done, answer: Result<Value, ()>) {
    let answer = match answer {
        Ok(Value::ServerError(e)) if e.to_string().contains(super::script::FENCED) => {
            // The others reaped this server while it was away: nothing it records counts until
            // it has rejoined (the subscriber reconnects and reconciles).
            tracing::warn!("the other servers reaped this one: it rejoins the cluster first");
            link.lost.notify_waiters();
            Err(Refusal::new(
                ErrorCode::ServerBusy,
                "this server was cut off from the cluster and is rejoining it; try again in a moment",
            ))
        }
        Ok(Value::ServerError(e)) => {
            tracing::warn!(error = %e, "Redis refused a chat engine operation");
            Err(Refusal::new(
                ErrorCode::Internal,
                format!("the chat engine's Redis refused the change: {e}"),
            ))
        }
        Ok(value) => Ok(value),
        Err(()) => Err(link.unreachable()),
    };
    match done {
        Done::Nothing | Done::Hold(_) => {}
        Done::Recorded { to, id } => {
            to.deliver(Delivery::Recorded {
                id,
                refused: answer.err().map(|r| r.answering(Some(id))),
            });
        }
        Done::RefusedOnly { to } => {
            if let Err(refusal) = answer {
                to.deliver(Delivery::Refused(refusal));
            }
        }
        Done::Routed { to, id, nick, keep } => match answer {
            Ok(Value::BulkString(kept)) if kept.starts_with(b"kept ") => {
                let waiting = String::from_utf8_lossy(&kept[5..]).into_owned();
                let user = keep.map_or(nick, |(user, _)| user);
                to.deliver(Delivery::Notice(
                    crate::services::chat::engine::kept_notice(&user, &waiting),
                ));
                to.deliver(Delivery::Ack { id });
            }
            Ok(Value::BulkString(full)) if full == b"full" => {
                let (user, most) = keep.unwrap_or((nick, 0));
                to.deliver(Delivery::Refused(
                    crate::services::chat::engine::directs_full(&user, most).answering(Some(id)),
                ));
            }
            Ok(Value::Int(0)) => {
                to.deliver(Delivery::Refused(
                    Refusal::new(
                        ErrorCode::NotFound,
                        format!("no one called '{nick}' is online"),
                    )
                    .answering(Some(id)),
                ));
            }
            Ok(_) => {}
            Err(refusal) => {
                to.deliver(Delivery::Refused(refusal.answering(Some(id))));
            }
        },
        Done::Reply(tx) => {
            let _ = tx.send(answer);
        }
    }
}

impl Relay for Link {
    fn forward(&self, node: &str, pid: u64, delivery: Delivery) -> bool {
        self.send_to(node, pid, delivery)
    }
}

//! Both ends of the session handshake against each other over an in-memory pipe, on paused
//! time: the failure delay and the rate limit are checked on the virtual clock, in no real time.

use crate::audit::AuditLog;
use crate::metrics::{ChatCounters, Metrics};
use crate::transport::Transport;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{DuplexStream, duplex};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{HandshakeContext, HandshakeError, Opened, server_handshake};
use crate::auth::scram::Credential;
use crate::auth::token::Token;
use crate::auth::{Accounts, Authenticator, FailurePolicy, UserRecord};
use crate::client::ClientError;
use crate::client::handshake::{Granted, client_handshake};
use crate::connection::Connection;
use crate::per_address::PerAddressQueue;
use crate::protocol::{ErrorCode, Hello, Message, Permission, Permissions};

const BINDING: &str = "plaintext";
const DELAY: Duration = Duration::from_millis(500);

/// A server side with one user, `alice`, who may read and write; anonymous sessions may chat.
struct Server {
    auth: Authenticator,
    handshakes: Arc<PerAddressQueue>,
    anonymous: Arc<Semaphore>,
    audit: AuditLog,
    metrics: Metrics,
}

impl Server {
    fn with(alice: &Token, max_failures: u32) -> Server {
        let salt = b"0123456789abcdef".to_vec();
        let users = HashMap::from([(
            "alice".to_string(),
            UserRecord {
                permissions: [Permission::Read, Permission::Write].into_iter().collect(),
                credential: Credential::derive(alice.secret(), &salt),
                keys: Vec::new(),
            },
        )]);
        let accounts = Accounts {
            users,
            anonymous: [Permission::Chat].into_iter().collect(),
        };
        let policy = FailurePolicy {
            max_failures,
            window: Duration::from_secs(60),
            delay: DELAY,
        };
        Server {
            auth: Authenticator::new(accounts, policy),
            handshakes: PerAddressQueue::new(4),
            anonymous: Arc::new(Semaphore::new(8)),
            audit: AuditLog::disabled(),
            metrics: Metrics::new(ChatCounters::default()),
        }
    }

    fn context(&self) -> HandshakeContext<'_> {
        HandshakeContext {
            auth: &self.auth,
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            binding: BINDING,
            max_frame: 1 << 20,
            node: None,
            handshakes: &self.handshakes,
            anonymous_slots: &self.anonymous,
            transport: Transport::Tcp,
            audit: &self.audit,
            metrics: &self.metrics,
        }
    }

    /// Runs both ends at once; the server's outcome and the client's.
    async fn meet(
        &self,
        token: Option<&Token>,
    ) -> (Result<Opened, HandshakeError>, Result<Granted, ClientError>) {
        let (mut server_end, mut client_end) = pipe();
        let ctx = self.context();
        let server = async {
            let outcome = server_handshake(&mut server_end, &ctx).await;
            // A refusal is the session's to send; here the test sends it as the session would.
            if let Err(HandshakeError::Refused(refusal)) = &outcome {
                let _ = server_end
                    .write_message(&Message::Error(refusal.clone()))
                    .await;
            }
            outcome
        };
        let client = client_handshake(&mut client_end, token, BINDING);
        tokio::join!(server, client)
    }
}

fn pipe() -> (Connection<DuplexStream>, Connection<DuplexStream>) {
    let (a, b) = duplex(64 * 1024);
    (Connection::new(a), Connection::new(b))
}

fn alice() -> Token {
    Token::generate("alice").unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_anonymous_client_gets_the_anonymous_rights() {
    let server = Server::with(&alice(), 3);
    let (opened, granted) = server.meet(None).await;
    let opened = opened.unwrap();
    assert_eq!(opened.identity.user, None);
    assert!(
        opened.anonymous_slot.is_some(),
        "an anonymous session holds a slot"
    );
    let granted = granted.unwrap();
    assert_eq!(granted.user, None);
    assert_eq!(
        granted.permissions,
        Permissions::from_iter([Permission::Chat])
    );
}

#[tokio::test(start_paused = true)]
async fn the_right_token_opens_a_session_and_the_server_proves_itself() {
    let alice = alice();
    let server = Server::with(&alice, 3);
    let (opened, granted) = server.meet(Some(&alice)).await;
    assert_eq!(opened.unwrap().identity.user.as_deref(), Some("alice"));
    let granted = granted.unwrap();
    assert_eq!(granted.user.as_deref(), Some("alice"));
    assert!(granted.permissions.contains(Permission::Write));
}

#[tokio::test(start_paused = true)]
async fn a_wrong_token_is_refused_after_the_failure_delay() {
    let server = Server::with(&alice(), 3);
    let impostor = Token::generate("alice").unwrap();
    let started = Instant::now();
    let (opened, granted) = server.meet(Some(&impostor)).await;
    assert!(
        matches!(opened, Err(HandshakeError::Refused(ref r)) if r.code == ErrorCode::AuthFailed),
        "{opened:?}",
        opened = opened.err()
    );
    assert!(
        matches!(granted, Err(ClientError::Server(ref r)) if r.code == ErrorCode::AuthFailed),
        "{granted:?}"
    );
    assert!(
        started.elapsed() >= DELAY,
        "the refusal waits out the delay"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unknown_user_looks_like_a_wrong_token() {
    let server = Server::with(&alice(), 3);
    let stranger = Token::generate("mallory").unwrap();
    let (opened, _) = server.meet(Some(&stranger)).await;
    let Err(HandshakeError::Refused(refusal)) = opened else {
        panic!("an unknown user must be refused");
    };
    assert_eq!(refusal.code, ErrorCode::AuthFailed);
    assert!(refusal.message.contains("wrong token or unknown user"));
}

#[tokio::test(start_paused = true)]
async fn too_many_failures_from_one_address_are_rate_limited() {
    let alice = alice();
    let server = Server::with(&alice, 2);
    let impostor = Token::generate("alice").unwrap();
    for _ in 0..2 {
        let (opened, _) = server.meet(Some(&impostor)).await;
        assert!(
            matches!(opened, Err(HandshakeError::Refused(r)) if r.code == ErrorCode::AuthFailed)
        );
    }
    // Even the right token waits now: the address is blocked, not the guess.
    let (opened, granted) = server.meet(Some(&alice)).await;
    assert!(matches!(opened, Err(HandshakeError::Refused(r)) if r.code == ErrorCode::RateLimited));
    assert!(matches!(granted, Err(ClientError::Server(r)) if r.code == ErrorCode::RateLimited));
}

#[tokio::test(start_paused = true)]
async fn a_user_without_a_nonce_and_a_request_before_hello_are_refused() {
    let server = Server::with(&alice(), 3);
    let ctx = server.context();

    let (mut server_end, mut client_end) = pipe();
    client_end
        .write_message(&Message::Hello(Hello {
            client: "test".into(),
            user: Some("alice".into()),
            nonce: None,
            keys: Vec::new(),
        }))
        .await
        .unwrap();
    let outcome = server_handshake(&mut server_end, &ctx).await;
    assert!(matches!(outcome, Err(HandshakeError::Refused(r)) if r.code == ErrorCode::BadMessage));

    let (mut server_end, mut client_end) = pipe();
    client_end
        .write_message(&Message::Ping(crate::protocol::Ping { seq: 1 }))
        .await
        .unwrap();
    let outcome = server_handshake(&mut server_end, &ctx).await;
    assert!(
        matches!(outcome, Err(HandshakeError::Refused(r)) if r.code == ErrorCode::UnexpectedMessage)
    );
}

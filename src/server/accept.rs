//! The server's side of the transport: the client's preamble, the answer, then TLS or not.
//!
//! Runs inside the connection's task under the handshake timeout, never in the accept loop, so
//! one slow client cannot stall the others.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsAcceptor;

use crate::connection::{BoxedStream, Connection};
use crate::protocol::preamble::{PREAMBLE_LEN, PROTOCOL_VERSION};
use crate::protocol::{ErrorCode, Message, Mode, Preamble, Refusal};

/// How long a refused client gets to read the refusal before the socket is dropped.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// Why the transport was not established.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AcceptError {
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
    #[error("refused: {0}")]
    Refused(Refusal),
    #[error("TLS handshake not completed by the handshake deadline")]
    TlsTimeout,
}

/// Reads the client's preamble and establishes the transport it asked for, if this server
/// offers it; otherwise refuses with a clear error and closes. Everything must be done by
/// `deadline`: a client that sends no preamble in time is told so.
///
/// # Errors
/// [`AcceptError::Refused`] after telling the client why; I/O and TLS failures; the deadline.
pub(crate) async fn accept_transport(
    mut tcp: TcpStream,
    tls: Option<&TlsAcceptor>,
    deadline: Instant,
) -> Result<BoxedStream, AcceptError> {
    let mut bytes = [0u8; PREAMBLE_LEN];
    if timeout_at(deadline, tcp.read_exact(&mut bytes))
        .await
        .is_err()
    {
        let refusal = Refusal::new(
            ErrorCode::Timeout,
            "no ferry preamble within the handshake timeout",
        );
        refuse(tcp, &refusal).await;
        return Err(AcceptError::Refused(refusal));
    }
    let refusal = match Preamble::decode(&bytes) {
        Err(_) => Some((
            ErrorCode::UnsupportedVersion,
            "not a ferry client: a connection starts with the preamble 'FERRY' version mode 0 (see PROTOCOL.md)".to_string(),
        )),
        Ok(p) if p.version != PROTOCOL_VERSION => Some((
            ErrorCode::UnsupportedVersion,
            format!(
                "client speaks protocol version {}, this server speaks version {PROTOCOL_VERSION}",
                p.version
            ),
        )),
        Ok(p) => match (p.mode, tls) {
            (Mode::Tls, Some(_)) | (Mode::Plaintext, None) => None,
            (Mode::Plaintext, Some(_)) => Some((
                ErrorCode::TlsRequired,
                "this server requires TLS; connect without --plaintext".to_string(),
            )),
            (Mode::Tls, None) => Some((
                ErrorCode::PlaintextOnly,
                "this server runs with --plaintext; connect with --plaintext too".to_string(),
            )),
            (Mode::Refused, _) => Some((
                ErrorCode::UnsupportedVersion,
                "mode 'E' is for servers only".to_string(),
            )),
        },
    };
    if let Some((code, message)) = refusal {
        let refusal = Refusal::new(code, message);
        refuse(tcp, &refusal).await;
        return Err(AcceptError::Refused(refusal));
    }
    match tls {
        Some(acceptor) => {
            tcp.write_all(&Preamble::new(Mode::Tls).encode()).await?;
            match timeout_at(deadline, acceptor.accept(tcp)).await {
                Ok(tls) => Ok(Box::new(tls?)),
                Err(_) => Err(AcceptError::TlsTimeout),
            }
        }
        None => {
            tcp.write_all(&Preamble::new(Mode::Plaintext).encode())
                .await?;
            Ok(Box::new(tcp))
        }
    }
}

/// Answers with mode `E` and one error frame, then closes gracefully: half-close, and read
/// until the client closes (bounded), so unread client bytes do not turn the close into a reset
/// that would destroy the error before the client reads it.
pub(crate) async fn refuse(mut tcp: TcpStream, refusal: &Refusal) {
    let linger = async {
        tcp.write_all(&Preamble::new(Mode::Refused).encode())
            .await?;
        let mut conn = Connection::new(tcp);
        conn.write_message(&Message::Error(refusal.clone())).await?;
        conn.shutdown().await?;
        let mut sink = [0u8; 1024];
        while conn.get_mut().read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
}

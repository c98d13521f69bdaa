//! The client's side of the transport: preamble, TLS, and the pin check. Mirror of
//! `server::accept`.

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::preamble_answer::{Answer, AnswerFirst};
use super::{ClientError, ClientOptions};
use crate::connection::{BoxedStream, FrameReader};
use crate::protocol::frame::MIN_MAX_FRAME;
use crate::protocol::preamble::{PREAMBLE_LEN, PROTOCOL_VERSION};
use crate::protocol::{Message, Mode, Preamble};
use crate::tls::{KnownServers, PinStatus, fingerprint, rustls_config};

/// The established transport and, for TLS, the server's fingerprint and what the pin store said.
pub(crate) struct Transport {
    pub stream: BoxedStream,
    pub tls: Option<(String, PinStatus)>,
}

/// Sends the preamble for the wanted transport, reads the answer, and sets up TLS with a pin
/// check against `home`'s pin store. Nothing but the preamble and the TLS handshake is sent
/// before the pin is confirmed. With TLS, the handshake starts right behind the preamble and
/// the answer is read in front of the server's first TLS bytes ([`AnswerFirst`]): one round
/// trip less.
///
/// # Errors
/// A refusal, a non-ferry peer, a version mismatch, a TLS failure or a changed identity.
pub(crate) async fn connect_transport(
    mut tcp: TcpStream,
    server: &str,
    options: &ClientOptions,
) -> Result<Transport, ClientError> {
    let wanted = if options.plaintext {
        Mode::Plaintext
    } else {
        Mode::Tls
    };
    tcp.write_all(&Preamble::new(wanted).encode()).await?;
    if options.plaintext {
        let mut bytes = [0u8; PREAMBLE_LEN];
        let answer = match tcp.read_exact(&mut bytes).await {
            Ok(_) => Answer::of(&bytes),
            Err(e) => return Err(unanswered(e, server)),
        };
        return Ok(Transport {
            stream: Box::new(check_answer(answer, wanted, tcp, server).await?),
            tls: None,
        });
    }
    let connector = TlsConnector::from(rustls_config::client_config());
    let handshake = connector
        .connect(server_name(server), AnswerFirst::new(tcp))
        .into_fallible()
        .await;
    let tls = match handshake {
        Ok(tls) => tls,
        Err((source, answered)) => {
            return Err(match answered.answer() {
                Answer::Short => unanswered(source, server),
                Answer::Ferry(p) if p.version == PROTOCOL_VERSION && p.mode == Mode::Tls => {
                    ClientError::Tls {
                        server: server.to_string(),
                        source,
                    }
                }
                answer => match check_answer(answer, wanted, answered.into_inner(), server).await {
                    Err(e) => e,
                    Ok(_) => ClientError::Tls {
                        server: server.to_string(),
                        source,
                    },
                },
            });
        }
    };
    let (presented, status) = check_pin(&tls, server, options)?;
    Ok(Transport {
        stream: Box::new(tls),
        tls: Some((presented, status)),
    })
}

/// The connection ended or failed before the server's 8-byte answer was in.
fn unanswered(e: std::io::Error, server: &str) -> ClientError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
            ClientError::NotFerry {
                server: server.to_string(),
            }
        }
        _ => ClientError::Io(e),
    }
}

/// The stream back, when the server's preamble answer lets `wanted` follow; else why not (a
/// refusal's error frame is read from `tcp`).
async fn check_answer(
    answer: Answer,
    wanted: Mode,
    tcp: TcpStream,
    server: &str,
) -> Result<TcpStream, ClientError> {
    let answer = match answer {
        Answer::Ferry(answer) => answer,
        Answer::Short | Answer::NotFerry => {
            return Err(ClientError::NotFerry {
                server: server.to_string(),
            });
        }
    };
    if answer.mode == Mode::Refused {
        return Err(read_refusal(tcp, server).await);
    }
    if answer.version != PROTOCOL_VERSION {
        return Err(ClientError::Version {
            server: server.to_string(),
            theirs: answer.version,
            ours: PROTOCOL_VERSION,
        });
    }
    if answer.mode != wanted {
        return Err(ClientError::Protocol(format!(
            "asked for {wanted:?}, server answered {:?}",
            answer.mode
        )));
    }
    Ok(tcp)
}

/// TLS over `tcp`, then the pin check against the pin store in `options.home`, keyed by
/// `server` (`HOST:PORT`): the server's fingerprint and what the store said. Nothing of the
/// caller's is sent before the pin is confirmed.
///
/// # Errors
/// A TLS failure, an unknown server without `accept_new`, or a changed identity.
pub(crate) async fn tls_pinned(
    tcp: TcpStream,
    server: &str,
    options: &ClientOptions,
) -> Result<(TlsStream<TcpStream>, String, PinStatus), ClientError> {
    let connector = TlsConnector::from(rustls_config::client_config());
    let tls = connector
        .connect(server_name(server), tcp)
        .await
        .map_err(|source| ClientError::Tls {
            server: server.to_string(),
            source,
        })?;
    let (presented, status) = check_pin(&tls, server, options)?;
    Ok((tls, presented, status))
}

/// The pin check of an established TLS stream: the server's fingerprint and what the pin
/// store said.
///
/// # Errors
/// An unknown server without `accept_new`, or a changed identity.
fn check_pin<S>(
    tls: &TlsStream<S>,
    server: &str,
    options: &ClientOptions,
) -> Result<(String, PinStatus), ClientError> {
    let home = options.home.as_path();
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or_else(|| ClientError::Protocol("the server sent no certificate".into()))?;
    let presented = fingerprint(cert);
    let store = KnownServers::in_home(home);
    let pin_error = |source| ClientError::PinStore {
        path: store.path().to_path_buf(),
        source,
    };
    if !options.accept_new && store.lookup(server).map_err(pin_error)?.is_none() {
        return Err(ClientError::UnknownServer {
            server: server.to_string(),
            presented,
        });
    }
    let status =
        store
            .check_or_pin(server, &presented)
            .map_err(|source| ClientError::PinStore {
                path: store.path().to_path_buf(),
                source,
            })?;
    if let PinStatus::Changed { pinned } = status {
        return Err(ClientError::IdentityChanged {
            server: server.to_string(),
            presented,
            pinned,
            store: store.path().to_path_buf(),
        });
    }
    Ok((presented, status))
}

/// Reads the single error frame that follows a refusal preamble.
async fn read_refusal(tcp: TcpStream, server: &str) -> ClientError {
    match FrameReader::new(tcp, MIN_MAX_FRAME).read_message().await {
        Ok(Message::Error(refusal)) => ClientError::Refused {
            server: server.to_string(),
            refusal,
        },
        _ => ClientError::Protocol("the server refused the connection without a reason".into()),
    }
}

/// The SNI name: the host part if it is a valid name, else a fixed one. Certificates are
/// checked by pin, not by name, so this only matters to middleboxes.
fn server_name(server: &str) -> ServerName<'static> {
    let host = server
        .rsplit_once(':')
        .map_or(server, |(h, _)| h)
        .trim_matches(|c| c == '[' || c == ']');
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::try_from("ferry").expect("a valid DNS name"))
}

//! A small client of a running `ssh-agent` (draft-miller-ssh-agent): list its keys, and ask
//! it to sign. The private keys never leave the agent.
//!
//! Written by hand: ferry needs two requests of a simple framed protocol (`uint32` length,
//! a type byte, SSH-encoded fields), and the crates that speak it (`ssh-agent-lib`) bring a
//! whole agent framework with their own runtime choices for those two messages.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const FAILURE: u8 = 5;
const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;
/// Sign with SHA-512 when the key is RSA (`rsa-sha2-512`), never SHA-1.
const RSA_SHA2_512: u32 = 4;
/// An answer longer than this is not an agent's (256 KiB: hundreds of keys).
const MOST: usize = 256 * 1024;

/// A key the agent holds: its wire blob and comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentKey {
    /// The public key's SSH wire encoding.
    pub blob: Vec<u8>,
    /// What `ssh-add` recorded with it.
    pub comment: String,
}

/// An open connection to the agent at `SSH_AUTH_SOCK`.
pub struct Agent {
    stream: UnixStream,
}

impl Agent {
    /// Connects to the agent's socket.
    ///
    /// # Errors
    /// The socket cannot be reached.
    pub async fn connect(socket: &Path) -> std::io::Result<Agent> {
        Ok(Agent {
            stream: UnixStream::connect(socket).await?,
        })
    }

    /// The keys the agent holds, in its order.
    ///
    /// # Errors
    /// The agent failed or answered something else.
    pub async fn keys(&mut self) -> std::io::Result<Vec<AgentKey>> {
        let answer = self.request(REQUEST_IDENTITIES, &[]).await?;
        let mut body = Fields::expect(&answer, IDENTITIES_ANSWER)?;
        let count = body.u32()?;
        let mut keys = Vec::new();
        for _ in 0..count {
            let blob = body.string()?.to_vec();
            let comment = String::from_utf8_lossy(body.string()?).into_owned();
            keys.push(AgentKey { blob, comment });
        }
        Ok(keys)
    }

    /// The agent's signature (an SSH signature blob) of `data` with the key `blob`.
    ///
    /// # Errors
    /// The agent refused (the key was removed, or a confirmation was denied) or failed.
    pub async fn sign(&mut self, blob: &[u8], data: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut request = Vec::new();
        put_string(&mut request, blob);
        put_string(&mut request, data);
        request.extend_from_slice(&RSA_SHA2_512.to_be_bytes());
        let answer = self.request(SIGN_REQUEST, &request).await?;
        let mut body = Fields::expect(&answer, SIGN_RESPONSE)?;
        Ok(body.string()?.to_vec())
    }

    async fn request(&mut self, kind: u8, body: &[u8]) -> std::io::Result<Vec<u8>> {
        let len = u32::try_from(body.len() + 1).map_err(std::io::Error::other)?;
        let mut message = len.to_be_bytes().to_vec();
        message.push(kind);
        message.extend_from_slice(body);
        self.stream.write_all(&message).await?;
        let len = self.stream.read_u32().await? as usize;
        if len == 0 || len > MOST {
            return Err(std::io::Error::other(format!(
                "the agent answered {len} bytes"
            )));
        }
        let mut answer = vec![0u8; len];
        self.stream.read_exact(&mut answer).await?;
        Ok(answer)
    }
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The fields of an answer, read in order; any shortfall is an error, never a panic.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn expect(answer: &'a [u8], kind: u8) -> std::io::Result<Fields<'a>> {
        match answer.split_first() {
            Some((&k, rest)) if k == kind => Ok(Fields { rest }),
            Some((&FAILURE, _)) => Err(std::io::Error::other("the agent refused")),
            Some((&k, _)) => Err(std::io::Error::other(format!(
                "the agent answered message {k}, not {kind}"
            ))),
            None => Err(std::io::Error::other("the agent answered nothing")),
        }
    }

    fn u32(&mut self) -> std::io::Result<u32> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or_else(|| std::io::Error::other("the agent's answer is cut short"))?;
        self.rest = rest;
        Ok(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> std::io::Result<&'a [u8]> {
        let len = self.u32()? as usize;
        if len > self.rest.len() {
            return Err(std::io::Error::other("the agent's answer is cut short"));
        }
        let (field, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(field)
    }
}

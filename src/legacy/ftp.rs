//! The seed's toy FTP: `get FILENAME` answers the file's size as ASCII digits, waits for the
//! client's ack, sends the file's bytes, then its MD5 as 32 hex characters. Names resolve under
//! the server root through ferry's sandbox; anything else gets one clear error line. Callers
//! are anonymous (the seed had no login), so files are served only while the server's
//! `[anonymous]` rights include `read`.

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::LegacyContext;
use crate::protocol::Permission;

/// What a received chunk asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `get NAME`: send the file.
    Get(String),
    /// Anything else: the error line to send.
    Invalid(String),
}

/// Parses one chunk: `get NAME` (the seed split on white space).
pub fn parse(chunk: &[u8]) -> Request {
    let text = String::from_utf8_lossy(chunk);
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("get"), Some(name), None) => Request::Get(name.to_string()),
        _ => Request::Invalid("error: expected 'get FILENAME'\n".into()),
    }
}

/// Serves one caller until it leaves.
///
/// # Errors
/// Socket errors.
pub async fn serve(mut tcp: TcpStream, ctx: &LegacyContext) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = super::read_chunk(&mut tcp, &mut buf, ctx.idle).await?;
        if n == 0 {
            return Ok(());
        }
        let name = match parse(&buf[..n]) {
            Request::Get(name) => name,
            Request::Invalid(line) => {
                tcp.write_all(line.as_bytes()).await?;
                continue;
            }
        };
        // Looked up at each request: a reload may have changed the anonymous rights.
        if !ctx.auth.anonymous_permissions().contains(Permission::Read) {
            let line = "error: this server does not let callers without a token read files\n";
            tcp.write_all(line.as_bytes()).await?;
            continue;
        }
        if let Ok(peer) = tcp.peer_addr() {
            ctx.audit(peer.ip(), "ftp", "get", Some(name.clone()));
        }
        // Opened off the runtime and without blocking (a FIFO must not hang the listener), and
        // checked on the descriptor that is then streamed: nothing is opened again by name.
        let resolver = ctx.sandbox.clone();
        let opened = tokio::task::spawn_blocking(move || resolver.open_regular(&name))
            .await
            .map_err(std::io::Error::other)?;
        let (file, size) = match opened {
            Ok((file, meta)) => (file, meta.len()),
            Err(e) => {
                tcp.write_all(format!("error: {}\n", e.message).as_bytes())
                    .await?;
                continue;
            }
        };
        tcp.write_all(size.to_string().as_bytes()).await?;
        if super::read_chunk(&mut tcp, &mut buf, ctx.idle).await? == 0 {
            return Ok(()); // no ack: the caller left
        }
        let mut file = tokio::fs::File::from_std(file);
        let mut md5 = Md5::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left).map_or(chunk.len(), |l| l.min(chunk.len()));
            let got = file.read(&mut chunk[..want]).await?;
            if got == 0 {
                break; // the file shrank; the client's MD5 check will say so
            }
            md5.update(&chunk[..got]);
            tcp.write_all(&chunk[..got]).await?;
            left -= got as u64;
        }
        let digest = crate::protocol::hex::encode(&md5.finalize());
        tcp.write_all(digest.as_bytes()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_get_and_refuses_the_rest() {
        assert_eq!(parse(b"get data.bin"), Request::Get("data.bin".into()));
        assert_eq!(parse(b"  get   a.txt \n"), Request::Get("a.txt".into()));
        for bad in [&b"put x"[..], b"get", b"get a b", b"\xff\xfe", b""] {
            assert!(matches!(parse(bad), Request::Invalid(_)), "{bad:?}");
        }
    }
}

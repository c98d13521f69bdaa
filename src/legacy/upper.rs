//! The seed's echo "phone": every chunk comes back upper-cased. Only ASCII letters change, so
//! UTF-8 text such as `世界你好` comes back intact.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The answer to one chunk.
pub fn respond(chunk: &[u8]) -> Vec<u8> {
    chunk.to_ascii_uppercase()
}

/// Serves one caller until it leaves (an empty read).
///
/// # Errors
/// Socket errors.
pub async fn serve(mut tcp: TcpStream, idle: std::time::Duration) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = super::read_chunk(&mut tcp, &mut buf, idle).await?;
        if n == 0 {
            return Ok(());
        }
        tcp.write_all(&respond(&buf[..n])).await?;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn upper_cases_ascii_and_keeps_utf8() {
        assert_eq!(super::respond(b"haha"), b"HAHA");
        assert_eq!(
            super::respond("世界你好 ok".as_bytes()),
            "世界你好 OK".as_bytes()
        );
    }
}

//! The seed's chat bot: greets on connect, answers every chunk `X` with `X好`, and ends the
//! conversation on `q`. Greeting and rule come from the same `[chat.bot]` config as ferry's bot.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::config::BotConfig;
use crate::services::chat::bot::reply;

/// What the bot says to one received chunk, or `None` when the caller said `q` (goodbye).
pub fn respond(config: &BotConfig, chunk: &[u8]) -> Option<Vec<u8>> {
    if chunk == b"q" {
        return None;
    }
    let line = String::from_utf8_lossy(chunk);
    Some(reply(&config.reply, &line).into_bytes())
}

/// Serves one caller.
///
/// # Errors
/// Socket errors (the caller vanished).
pub async fn serve(
    mut tcp: TcpStream,
    config: &BotConfig,
    idle: std::time::Duration,
) -> std::io::Result<()> {
    tcp.write_all(config.greeting.as_bytes()).await?;
    let mut buf = [0u8; 1024];
    loop {
        let n = super::read_chunk(&mut tcp, &mut buf, idle).await?;
        if n == 0 {
            return Ok(()); // the caller left (the seed's server looped forever here)
        }
        match respond(config, &buf[..n]) {
            Some(answer) => tcp.write_all(&answer).await?,
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_like_the_seed() {
        let config = BotConfig::default();
        assert_eq!(
            respond(&config, "我".as_bytes()).unwrap(),
            "我好".as_bytes()
        );
        assert_eq!(respond(&config, b"q"), None);
        assert_eq!(respond(&config, b"qq").unwrap(), "qq好".as_bytes());
    }
}

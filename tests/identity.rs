//! Nobody can pass for someone else in chat: nicks are unique across the server, compared by
//! what they look like, and a configured user's name belongs to that user's sessions.

mod common;

use common::{TestServer, config_with_user};
use ferry::client::ClientError;
use ferry::client::chat::{ChatTarget, join};
use ferry::protocol::ErrorCode;

async fn try_join(
    server: &TestServer,
    token: Option<&str>,
    room: &str,
    nick: &str,
) -> Result<(), ClientError> {
    let client = server.client(token.map(|t| t.parse().unwrap())).await;
    let (tx, rx, _) = join(
        client.into_connection(),
        ChatTarget::Room(room.into()),
        nick,
        false,
    )
    .await?;
    // Keep the member online for the rest of the test.
    std::mem::forget((tx, rx));
    Ok(())
}

fn code(result: Result<(), ClientError>) -> Option<ErrorCode> {
    match result {
        Err(ClientError::Server(refusal)) => Some(refusal.code),
        Err(e) => panic!("not a refusal: {e}"),
        Ok(()) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_name_is_reserved_and_look_alike_nicks_are_refused() {
    let (config, token) = config_with_user("alice", "chat");
    let server = TestServer::start_plaintext(config).await;
    let token = token.to_string();

    // An anonymous session cannot take alice's name, in any room, whether she is online or not.
    assert_eq!(
        code(try_join(&server, None, "elsewhere", "alice").await),
        Some(ErrorCode::NickInUse)
    );
    try_join(&server, Some(&token), "lobby", "alice")
        .await
        .unwrap();
    for alike in [
        "Alice",
        "\u{430}lice",
        "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",
    ] {
        assert_eq!(
            code(try_join(&server, None, "elsewhere", alike).await),
            Some(ErrorCode::NickInUse),
            "{alike}"
        );
    }
    assert_eq!(
        code(try_join(&server, None, "elsewhere", "alice\u{200b}").await),
        Some(ErrorCode::InvalidName)
    );

    // Any nick is unique server-wide, not per room.
    try_join(&server, None, "lobby", "bob").await.unwrap();
    assert_eq!(
        code(try_join(&server, None, "another", "bob").await),
        Some(ErrorCode::NickInUse)
    );
    assert_eq!(
        code(try_join(&server, None, "another", "B\u{43e}b").await),
        Some(ErrorCode::NickInUse)
    );
    // Room names may not hide format characters either.
    assert_eq!(
        code(try_join(&server, None, "lob\u{202e}by", "carol").await),
        Some(ErrorCode::InvalidName)
    );
    server.stop().await;
}

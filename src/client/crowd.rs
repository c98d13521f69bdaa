//! Many sessions at once, opened with bounded parallelism: for load tests and the bench.

use super::{Client, ClientError, ClientOptions};

/// Opens up to `count` sessions, at most `parallel` handshakes at a time (a burst of thousands
/// would only measure the accept queue). After the first failure it starts no more, but keeps
/// those already under way that succeed. Returns the open sessions and, if short, why.
pub async fn connect_many(
    options: &ClientOptions,
    count: usize,
    parallel: usize,
) -> (Vec<Client>, Option<ClientError>) {
    let mut opened = Vec::with_capacity(count);
    let mut pending = tokio::task::JoinSet::new();
    let mut started = 0;
    let mut failure = None;
    loop {
        while failure.is_none() && started < count && pending.len() < parallel.max(1) {
            let options = options.clone();
            pending.spawn(async move { Client::connect(&options).await });
            started += 1;
        }
        let Some(joined) = pending.join_next().await else {
            break;
        };
        match joined {
            Ok(Ok(client)) => opened.push(client),
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(ClientError::Protocol(format!(
                    "a connecting task failed: {e}"
                )));
            }
        }
    }
    (opened, failure)
}

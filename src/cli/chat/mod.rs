//! `ferry chat`: interactive chat on a terminal, line-by-line chat in pipes.
//!
//! On a terminal, rustyline edits the input line and incoming messages are printed above it, so
//! they never garble what is being typed. In a pipe, each input line is sent and the command
//! exits at end of input only after the server confirmed every line, so replies (the bot's, for
//! one) are printed first.

mod printer;
mod session;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;
use tokio::sync::mpsc;

use super::ClientArgs;
use ferry::client::ClientError;
use ferry::client::chat::ChatTarget;
use ferry::protocol::ErrorCode;
use ferry::services::chat::names::default_nick;
use printer::{Printer, spawn_line_editor, spawn_stdin_reader};
use session::Session;

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Room to join (created on first join) [default: lobby].
    #[arg(long, value_name = "ROOM", conflicts_with = "with")]
    pub room: Option<String>,
    /// Hold a direct conversation with one nick instead (e.g. the bot, babyshen).
    #[arg(long, value_name = "NICK")]
    pub with: Option<String>,
    /// Your nick [default: your token's user name, else your local user name; a taken default
    /// gets a free number, as guest2].
    #[arg(long, value_name = "NICK")]
    pub nick: Option<String>,
    /// Do not replay the room's recent messages on join.
    #[arg(long)]
    pub no_history: bool,
}

/// What the input side produces.
enum Input {
    Line(String),
    End,
}

pub async fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.connect().await?;
    let target = match (args.room, args.with) {
        (_, Some(with)) => ChatTarget::With(with),
        (room, None) => ChatTarget::Room(room.unwrap_or_else(|| "lobby".into())),
    };
    let history = !args.no_history;
    let (sender, receiver, joined) = match args.nick {
        Some(nick) => match client.chat(target, &nick, history).await {
            Err(ClientError::Server(refusal)) if refusal.code == ErrorCode::NickInUse => {
                anyhow::bail!(
                    "{}; choose another nick with --nick",
                    refusal.message.trim_end_matches('.')
                );
            }
            joined => joined?,
        },
        None => {
            // The signed-in user's name, else the local account's: a name people recognise.
            let user = client.info().granted.user.clone().or_else(|| {
                std::env::var("USER")
                    .or_else(|_| std::env::var("LOGNAME"))
                    .ok()
            });
            let nick = default_nick(user.as_deref(), 32);
            client.chat_picking_nick(target, &nick, history).await?
        }
    };
    let place = match (&joined.room, &joined.with) {
        (Some(room), _) => format!("room {room}"),
        (_, Some(with)) => format!("a direct conversation with {with}"),
        _ => "chat".into(),
    };
    eprintln!(
        "ferry: in {place} as {}; here: {}. /help lists the commands; 'q' or /quit leaves.",
        joined.nick,
        joined.members.join(", ")
    );
    if let Some(topic) = &joined.topic {
        eprintln!("ferry: topic: {}", ferry::safe_text::escape(topic));
    }

    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (inputs_tx, inputs) = mpsc::channel(64);
    let _terminal = super::terminal::TerminalMode::save();
    let printer = if interactive {
        Printer::Terminal(spawn_line_editor(inputs_tx)?)
    } else {
        spawn_stdin_reader(inputs_tx);
        Printer::Plain
    };
    let session = Session {
        sender,
        printer,
        replay_left: joined.replayed.unwrap_or(0),
        nick: joined.nick,
        room: joined.room,
        pending: HashMap::new(),
        pending_joins: 0,
        failures: 0,
    };
    session.run(receiver, inputs).await
}

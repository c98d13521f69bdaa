//! `ferry chat`: interactive chat on a terminal, line-by-line chat in pipes.
//!
//! On a terminal, rustyline edits the input line and incoming messages are printed above it, so
//! they never garble what is being typed. In a pipe, each input line is sent and the command
//! exits at end of input only after the server confirmed every line, so replies (the bot's, for
//! one) are printed first.

use ferry::protocol::{
    ChatAck, ChatJoined, ChatMembers, ChatMessage, ChatNotice, Goodbye, Refusal,
};
use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Args;
use rustyline::ExternalPrinter;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::ClientArgs;
use ferry::client::chat::{ChatReceiver, ChatSender, ChatTarget};
use ferry::protocol::Message;
use ferry::services::chat::names::default_nick;

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
    /// Your nick [default: your local user name].
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
    let nick = args.nick.unwrap_or_else(|| {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok();
        default_nick(user.as_deref(), 32)
    });
    let target = match (args.room, args.with) {
        (_, Some(with)) => ChatTarget::With(with),
        (room, None) => ChatTarget::Room(room.unwrap_or_else(|| "lobby".into())),
    };
    let (sender, receiver, joined) = client.chat(target, &nick, !args.no_history).await?;
    let place = match (&joined.room, &joined.with) {
        (Some(room), _) => format!("room {room}"),
        (_, Some(with)) => format!("a direct conversation with {with}"),
        _ => "chat".into(),
    };
    eprintln!(
        "ferry: in {place} as {}; here: {}. 'q' or /quit leaves.",
        joined.nick,
        joined.members.join(", ")
    );

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
        pending: HashSet::new(),
        pending_joins: 0,
        failures: 0,
    };
    session.run(receiver, inputs).await
}

/// The running chat: what was sent and not yet confirmed, and how to print.
struct Session {
    sender: ChatSender,
    printer: Printer,
    /// Request ids awaiting `chat_ack`, `chat_members` or an `error`.
    pending: HashSet<u64>,
    /// `/join`s awaiting `chat_joined` or an error.
    pending_joins: usize,
    /// Lines the server refused.
    failures: usize,
}

impl Session {
    async fn run(
        mut self,
        mut receiver: ChatReceiver,
        mut inputs: mpsc::Receiver<Input>,
    ) -> anyhow::Result<ExitCode> {
        let mut input_done = false;
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            if input_done && self.pending.is_empty() && self.pending_joins == 0 {
                break;
            }
            tokio::select! {
                input = inputs.recv(), if !input_done => match input {
                    Some(Input::Line(line)) => input_done = self.line(&line).await?,
                    Some(Input::End) | None => input_done = true,
                },
                message = receiver.next() => match message? {
                    Some(message) => self.incoming(message)?,
                    None => anyhow::bail!("the server closed the connection"),
                },
                _ = &mut interrupted => break,
            }
        }
        let _ = self.sender.leave().await;
        let _ = self.sender.close().await;
        Ok(if self.failures == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }

    /// Sends one input line; returns whether the user asked to leave.
    async fn line(&mut self, line: &str) -> anyhow::Result<bool> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return Ok(false);
        }
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        let id = match command {
            "q" | "/quit" if rest.is_empty() => return Ok(true),
            "/who" => self.sender.who().await?,
            "/nick" if !rest.trim().is_empty() => self.sender.nick(rest.trim()).await?,
            "/join" if !rest.trim().is_empty() => {
                self.sender.join(rest.trim()).await?;
                self.pending_joins += 1;
                return Ok(false);
            }
            "/msg" => match rest.split_once(' ') {
                Some((to, text)) if !text.is_empty() => self.sender.direct(to, text).await?,
                _ => {
                    self.printer.err("usage: /msg NICK TEXT");
                    return Ok(false);
                }
            },
            c if c.starts_with('/') => {
                self.printer.err(&format!(
                    "unknown command '{c}': try /who, /nick NEW, /join ROOM, /msg NICK TEXT, /quit"
                ));
                return Ok(false);
            }
            _ => self.sender.say(line).await?,
        };
        self.pending.insert(id);
        Ok(false)
    }

    fn incoming(&mut self, message: Message) -> anyhow::Result<()> {
        match message {
            Message::ChatMessage(ChatMessage {
                room,
                from,
                text,
                history,
                ..
            }) => {
                let place = room.map_or_else(|| "[direct]".to_string(), |r| format!("[{r}]"));
                let earlier = if history { " (earlier)" } else { "" };
                self.printer
                    .out(&format!("{place}{earlier} {from}: {text}"));
            }
            Message::ChatNotice(ChatNotice { room, text }) => {
                let place = room.map_or_else(|| "[direct]".to_string(), |r| format!("[{r}]"));
                self.printer.out(&format!("{place} * {text}"));
            }
            Message::ChatAck(ChatAck { id }) => {
                self.pending.remove(&id);
            }
            Message::ChatMembers(ChatMembers { id, room, nicks }) => {
                self.pending.remove(&id);
                let place = if room.is_empty() {
                    "direct".to_string()
                } else {
                    room
                };
                self.printer
                    .out(&format!("[{place}] members: {}", nicks.join(", ")));
            }
            Message::ChatJoined(ChatJoined {
                room,
                nick,
                members,
                ..
            }) => {
                self.pending_joins = self.pending_joins.saturating_sub(1);
                let room = room.unwrap_or_default();
                self.printer.err(&format!(
                    "now in room {room} as {nick}; here: {}",
                    members.join(", ")
                ));
            }
            Message::Error(Refusal { message, id, .. }) => {
                self.failures += 1;
                match id {
                    Some(id) => {
                        self.pending.remove(&id);
                    }
                    None => self.pending_joins = self.pending_joins.saturating_sub(1),
                }
                self.printer.err(&message);
            }
            Message::Goodbye(Goodbye { reason }) => {
                anyhow::bail!("server closed the session: {reason}")
            }
            _ => {}
        }
        Ok(())
    }
}

/// Where output goes: above the line being edited, or plainly to stdout/stderr.
enum Printer {
    Terminal(Box<dyn ExternalPrinter + Send>),
    Plain,
}

impl Printer {
    fn out(&mut self, line: &str) {
        let line = &*super::safe_text::escape(line);
        match self {
            Printer::Terminal(p) => {
                let _ = p.print(line.to_string());
            }
            Printer::Plain => {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{line}");
                let _ = stdout.flush();
            }
        }
    }

    fn err(&mut self, line: &str) {
        let line = &*super::safe_text::escape(line);
        match self {
            Printer::Terminal(p) => {
                let _ = p.print(format!("ferry: {line}"));
            }
            Printer::Plain => eprintln!("ferry: {line}"),
        }
    }
}

/// Runs rustyline on its own thread (it blocks) and returns a printer for incoming lines.
fn spawn_line_editor(
    inputs: mpsc::Sender<Input>,
) -> anyhow::Result<Box<dyn ExternalPrinter + Send>> {
    let mut editor = rustyline::DefaultEditor::new()?;
    let printer = editor.create_external_printer()?;
    std::thread::spawn(move || {
        loop {
            match editor.readline("> ") {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    if inputs.blocking_send(Input::Line(line)).is_err() {
                        break;
                    }
                }
                Err(_) => {
                    // Ctrl-D, Ctrl-C or a terminal error: leave.
                    let _ = inputs.blocking_send(Input::End);
                    break;
                }
            }
        }
    });
    Ok(Box::new(printer))
}

/// Reads stdin line by line (invalid UTF-8 is replaced, not fatal).
fn spawn_stdin_reader(inputs: mpsc::Sender<Input>) {
    tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if inputs.send(Input::Line(line)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = inputs.send(Input::End).await;
    });
}

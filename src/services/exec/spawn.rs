//! Starting a command: its argv run directly (no shell), in the server root, with a minimal
//! explicit environment, leading its own process group — on pipes, or on a pseudo-terminal.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use rustix::process::Pid;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::Child;

use super::cgroup_join::CgroupJoin;
use crate::config::ExecConfig;
use crate::protocol::{ErrorCode, Refusal, TtySize};

/// A started command and the ends of its standard streams.
pub struct Process {
    /// The command (the leader of its process group).
    pub child: Child,
    /// Its process group (its pid: it leads the group).
    pub pgid: Pid,
    /// Where its stdout (or the terminal's output) is read.
    pub stdout: Box<dyn AsyncRead + Unpin + Send>,
    /// Where its stderr is read; `None` on a terminal, which merges both.
    pub stderr: Option<Box<dyn AsyncRead + Unpin + Send>>,
    /// Where its stdin is written.
    pub stdin: Input,
}

/// The command's input side.
pub enum Input {
    /// Pipes: the command's stdin.
    Pipe(tokio::process::ChildStdin),
    /// The terminal's master side: written to, and resized.
    Pty(pty_process::OwnedWritePty),
}

impl Input {
    /// The writer.
    pub fn writer(&mut self) -> &mut (dyn AsyncWrite + Unpin + Send) {
        match self {
            Input::Pipe(pipe) => pipe,
            Input::Pty(pty) => pty,
        }
    }
}

/// What to run.
pub enum Program {
    /// A program and its arguments, run directly.
    Argv(Vec<String>),
    /// The server account's login shell.
    LoginShell,
}

/// Starts `program` in `root`, inside its cgroup when it has one (`contained`). Blocking: a
/// cgroup migration may wait for an RCU grace period, so call it off the async runtime.
///
/// # Errors
/// The refusal when the program does not exist (`not_found`, which clients report as exit 127,
/// as shells do), is not executable (`exec_failed`, 126), or the pty fails.
pub fn spawn(
    program: Program,
    tty: Option<&TtySize>,
    root: &Path,
    config: &ExecConfig,
    ferry_user: &str,
    contained: &super::containment::Contained,
) -> Result<Process, Refusal> {
    let account = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten();
    let (program, args, arg0) = match program {
        Program::Argv(argv) => {
            let (first, rest) = argv.split_first().ok_or_else(|| {
                Refusal::new(
                    ErrorCode::BadMessage,
                    "'exec' needs a non-empty 'argv' (or 'shell' with a 'tty')",
                )
            })?;
            (first.clone(), rest.to_vec(), None)
        }
        Program::LoginShell => {
            let shell = config
                .shell
                .clone()
                .or_else(|| {
                    account
                        .as_ref()
                        .map(|a| a.shell.to_string_lossy().into_owned())
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".into());
            let name = shell.rsplit('/').next().unwrap_or("sh").to_string();
            // A leading '-' in argv[0] is how a shell learns it is a login shell.
            (shell, Vec::new(), Some(format!("-{name}")))
        }
    };
    let mut env = environment(config, account.as_ref(), tty, ferry_user);
    env.push(contained.env());
    let start = |join: Option<CgroupJoin>| match tty {
        None => spawn_on_pipes(&program, &args, arg0.as_deref(), root, &env, join),
        Some(size) => spawn_on_pty(&program, &args, arg0.as_deref(), root, &env, size, join),
    };
    let started = contained.start(start);
    started.map_err(|e| describe(&program, &e))
}

/// The whole environment a command gets: nothing of the server's own (which may hold secrets).
pub(crate) fn environment(
    config: &ExecConfig,
    account: Option<&nix::unistd::User>,
    tty: Option<&TtySize>,
    ferry_user: &str,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), config.path.clone()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
        ("FERRY_USER".to_string(), ferry_user.to_string()),
        (
            "TERM".to_string(),
            tty.map_or_else(|| "dumb".to_string(), |t| t.term.clone()),
        ),
    ];
    if let Some(account) = account {
        env.push(("HOME".into(), account.dir.to_string_lossy().into_owned()));
        env.push(("USER".into(), account.name.clone()));
        env.push(("LOGNAME".into(), account.name.clone()));
        let shell = config
            .shell
            .clone()
            .unwrap_or_else(|| account.shell.to_string_lossy().into_owned());
        env.push(("SHELL".into(), shell));
    }
    env
}

fn spawn_on_pipes(
    program: &str,
    args: &[String],
    arg0: Option<&str>,
    root: &Path,
    env: &[(String, String)],
    join: Option<CgroupJoin>,
) -> std::io::Result<Process> {
    // Resolved here with the command's own PATH: given a bare name and a PATH of its own, std
    // cannot use posix_spawn (whose search would use the server's PATH) and forks instead —
    // and forking a server that holds thousands of connections copies its page tables, which
    // the load test measured as half the server's CPU at ~150 commands/s.
    let resolved = resolve_program(program, path_of(env), root)?;
    let mut command = tokio::process::Command::new(&resolved);
    if arg0.is_none() {
        command.arg0(program);
    }
    command
        .args(args)
        .current_dir(root)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(arg0) = arg0 {
        command.arg0(arg0);
    }
    if let Some(join) = join {
        join.apply(&mut command);
    }
    let mut child = command.spawn()?;
    let pgid = pid_of(&child)?;
    let (stdin, stdout, stderr) =
        match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(i), Some(o), Some(e)) => (i, o, e),
            _ => return Err(std::io::Error::other("the child's pipes are missing")),
        };
    Ok(Process {
        child,
        pgid,
        stdout: Box::new(stdout),
        stderr: Some(Box::new(stderr)),
        stdin: Input::Pipe(stdin),
    })
}

/// The value of PATH in `env` (empty when absent: then only paths with a '/' run).
fn path_of(env: &[(String, String)]) -> &str {
    env.iter()
        .find(|(k, _)| k == "PATH")
        .map_or("", |(_, v)| v.as_str())
}

/// Finds `program` as execvp(3) would with `path` (relative entries are relative to `root`,
/// the command's working directory): a name with a '/' is taken as it is; otherwise the first
/// executable regular file named so in a PATH entry. Not found is `NotFound`; found only
/// without execute permission is `PermissionDenied`.
fn resolve_program(program: &str, path: &str, root: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let mut denied = false;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = root.join(dir).join(program);
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
                return Ok(candidate);
            }
            Ok(meta) if meta.is_file() => denied = true,
            _ => {}
        }
    }
    Err(if denied {
        std::io::ErrorKind::PermissionDenied.into()
    } else {
        std::io::ErrorKind::NotFound.into()
    })
}

fn spawn_on_pty(
    program: &str,
    args: &[String],
    arg0: Option<&str>,
    root: &Path,
    env: &[(String, String)],
    size: &TtySize,
    join: Option<CgroupJoin>,
) -> std::io::Result<Process> {
    let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
    pty.resize(pty_process::Size::new(size.rows, size.cols))
        .map_err(std::io::Error::other)?;
    let mut command = pty_process::Command::new(program)
        .args(args)
        .current_dir(root)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true);
    if let Some(arg0) = arg0 {
        command = command.arg0(arg0);
    }
    if let Some(join) = join {
        command = join.apply_to_pty(command);
    }
    // The child becomes a session leader with the pty as its controlling terminal, so its pid
    // is also its process group.
    let child = command.spawn(pts).map_err(|e| match e {
        pty_process::Error::Io(io) => io,
        other => std::io::Error::other(other),
    })?;
    let pgid = pid_of(&child)?;
    let (read, write) = pty.into_split();
    Ok(Process {
        child,
        pgid,
        stdout: Box::new(read),
        stderr: None,
        stdin: Input::Pty(write),
    })
}

fn pid_of(child: &Child) -> std::io::Result<Pid> {
    child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::other("the child has no pid"))
}

fn describe(program: &str, e: &std::io::Error) -> Refusal {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            Refusal::new(ErrorCode::NotFound, format!("{program}: command not found"))
        }
        std::io::ErrorKind::PermissionDenied => Refusal::new(
            ErrorCode::ExecFailed,
            format!("{program}: permission denied"),
        ),
        _ => Refusal::new(ErrorCode::ExecFailed, format!("{program}: cannot run: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn programs_are_found_as_execvp_would() {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = bin.join("plain");
        std::fs::write(&plain, "data").unwrap();

        // A relative PATH entry is relative to the command's directory, the root.
        assert_eq!(
            resolve_program("tool", "/nonexistent:bin", root.path()).unwrap(),
            root.path().join("bin").join("tool")
        );
        assert_eq!(
            resolve_program("./x/y", "", root.path()).unwrap(),
            PathBuf::from("./x/y")
        );
        let sh = resolve_program("sh", "/usr/bin:/bin", root.path()).unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"));
        let missing = resolve_program("no-such-program", "/usr/bin:/bin", root.path()).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let denied = resolve_program("plain", "bin", root.path()).unwrap_err();
        assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            resolve_program("tool", "", root.path()).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
    }
}

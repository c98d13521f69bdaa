//! rsync is the oracle: for generated trees and mutation scripts, `ferry put -r --delete
//! --exclude ... SRC/ DST` and `rsync -a --delete --exclude ... SRC/ DST2` leave identical trees
//! (bytes, modes, mtimes, symlink texts), and so do `ferry get -r` and rsync the other way.
//! A fixed seed and a few cases in the default suite; `FERRY_ORACLE_CASES=N` runs more (and
//! `FERRY_ORACLE_SEED` another series).
//!
//! Also here: what a mirror must never do — remove outside its target, follow a link, mirror
//! the root without `--force`, or change anything in a dry run.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestServer, config_with_user, output};

/// What one path of a tree is, as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File {
        bytes: Vec<u8>,
        mode: u32,
        mtime: (i64, i64),
    },
    Dir {
        mode: u32,
        mtime: (i64, i64),
    },
    Link {
        target: PathBuf,
        mtime: (i64, i64),
    },
}

/// Every path under `root` (the top included as ""), without following links.
fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((path, rel)) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mtime = (meta.mtime(), meta.mtime_nsec());
        let node = if meta.file_type().is_symlink() {
            Node::Link {
                target: std::fs::read_link(&path).unwrap(),
                mtime,
            }
        } else if meta.is_dir() {
            for child in std::fs::read_dir(&path).unwrap() {
                let child = child.unwrap();
                let name = child.file_name().into_string().unwrap();
                let child_rel = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                pending.push((child.path(), child_rel));
            }
            Node::Dir {
                mode: meta.permissions().mode() & 0o7777,
                mtime,
            }
        } else {
            Node::File {
                bytes: std::fs::read(&path).unwrap(),
                mode: meta.permissions().mode() & 0o7777,
                mtime,
            }
        };
        out.insert(rel, node);
    }
    out
}

/// The first difference between two snapshots, told plainly.
fn differences(ferry: &BTreeMap<String, Node>, rsync: &BTreeMap<String, Node>) -> Vec<String> {
    let mut out = Vec::new();
    for (path, node) in ferry {
        match rsync.get(path) {
            None => out.push(format!("'{path}': ferry has it, rsync does not")),
            Some(other) if other != node => out.push(format!(
                "'{path}': ferry {}, rsync {}",
                describe(node),
                describe(other)
            )),
            Some(_) => {}
        }
    }
    for path in rsync.keys().filter(|p| !ferry.contains_key(*p)) {
        out.push(format!("'{path}': rsync has it, ferry does not"));
    }
    out
}

fn describe(node: &Node) -> String {
    match node {
        Node::File { bytes, mode, mtime } => format!(
            "file of {} bytes (blake3 {}) mode {mode:o} mtime {mtime:?}",
            bytes.len(),
            &blake3::hash(bytes).to_hex()[..12]
        ),
        Node::Dir { mode, mtime } => format!("dir mode {mode:o} mtime {mtime:?}"),
        Node::Link { target, mtime } => format!("link to {} mtime {mtime:?}", target.display()),
    }
}

/// Every time the generator sets is at least a year old: rsync (3.5.0 here) leaves a directory
/// it creates with its own time when the source's time falls in the current second (it compares
/// whole seconds), which would make the oracle wrong, not ferry.
///
/// A small deterministic generator (xorshift), so a failing case can be replayed by its seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        // Text-like runs and noise, so deltas find both matches and changes.
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let word = *self.pick(&[&b"ferry "[..], b"rsync ", b"delta ", b"\n"]);
            if self.below(4) == 0 {
                out.push(self.next() as u8);
            } else {
                out.extend_from_slice(word);
            }
        }
        out.truncate(len);
        out
    }
}

const NAMES: &[&str] = &[
    "a", "b", "c.txt", "d.log", "e.tmp", "café", "sub", "x y", "data.bin",
];
const EXCLUDES: &[&str] = &["*.tmp", "cache/", "/top-only"];

fn set_mtime(path: &Path, dice: &mut Dice) {
    let secs = 1_600_000_000 + dice.below(100_000_000) as i64;
    let nanos = dice.below(1_000_000_000) as i64;
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn write_file(path: &Path, dice: &mut Dice) {
    // Mostly small; now and then large enough to go as a delta (over 64 KiB).
    let len = match dice.below(6) {
        0 => 0,
        1 => 80_000 + dice.below(200_000) as usize,
        _ => dice.below(5_000) as usize,
    };
    std::fs::write(path, dice.bytes(len)).unwrap();
    let mode = *dice.pick(&[0o644, 0o600, 0o755, 0o640]);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(path, dice);
}

/// A random tree under `root`: files, directories, symlinks (to files, dangling, outward),
/// and names the filters exclude.
fn grow(root: &Path, dice: &mut Dice, depth: u32) {
    std::fs::create_dir_all(root).unwrap();
    for _ in 0..2 + dice.below(5) {
        let name = *dice.pick(NAMES);
        let path = root.join(name);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        match dice.below(8) {
            0 | 1 if depth < 3 => grow(&path, dice, depth + 1),
            2 => {
                let target = *dice.pick(&["a", "../a", "nowhere", "/etc/hostname", "sub/b"]);
                std::os::unix::fs::symlink(target, &path).unwrap();
                set_mtime(&path, dice);
            }
            3 if depth == 0 => {
                std::fs::create_dir_all(root.join("cache")).unwrap();
                write_file(&root.join("cache/blob"), dice);
                set_mtime(&root.join("cache"), dice);
            }
            _ => write_file(&path, dice),
        }
    }
    let mode = *dice.pick(&[0o755, 0o750, 0o700]);
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(root, dice);
}

/// Every path under `root`, deepest last, without following links.
fn paths(root: &Path) -> Vec<PathBuf> {
    snapshot(root)
        .into_keys()
        .filter(|p| !p.is_empty())
        .map(|p| root.join(p))
        .collect()
}

/// One random change to the tree: add, delete, edit in place, insert, truncate, rename,
/// chmod, touch, retarget a link, add an excluded name, remove a directory.
fn mutate(root: &Path, dice: &mut Dice) {
    let all = paths(root);
    let files: Vec<&PathBuf> = all
        .iter()
        .filter(|p| p.symlink_metadata().unwrap().is_file())
        .collect();
    let dirs: Vec<&PathBuf> = all
        .iter()
        .filter(|p| {
            let m = p.symlink_metadata().unwrap();
            m.is_dir()
        })
        .collect();
    let links: Vec<&PathBuf> = all
        .iter()
        .filter(|p| p.symlink_metadata().unwrap().is_symlink())
        .collect();
    let touch_parent = |path: &Path, dice: &mut Dice| {
        if let Some(parent) = path.parent() {
            set_mtime(parent, dice);
        }
    };
    match dice.below(11) {
        0 => {
            let dir = dirs
                .get(dice.below(dirs.len().max(1) as u64) as usize)
                .map_or(root, |d| d.as_path());
            let path = dir.join(format!("new{}", dice.below(1000)));
            write_file(&path, dice);
            touch_parent(&path, dice);
        }
        1 if !files.is_empty() => {
            let path = dice.pick(&files).to_path_buf();
            std::fs::remove_file(&path).unwrap();
            touch_parent(&path, dice);
        }
        2..=4 if !files.is_empty() => {
            let path = dice.pick(&files).to_path_buf();
            let mut bytes = std::fs::read(&path).unwrap();
            let at = dice.below(bytes.len() as u64 + 1) as usize;
            match dice.below(3) {
                0 => {
                    let end = (at + 10).min(bytes.len());
                    bytes[at..end].iter_mut().for_each(|b| *b ^= 0x5a);
                }
                1 => {
                    let len = 1 + dice.below(4096) as usize;
                    let more = dice.bytes(len);
                    bytes.splice(at..at, more);
                }
                _ => bytes.truncate(at),
            }
            let mode = std::fs::metadata(&path).unwrap().permissions();
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, mode).unwrap();
            set_mtime(&path, dice);
        }
        5 if !files.is_empty() => {
            let from = dice.pick(&files).to_path_buf();
            let to = from.with_file_name(format!("moved{}", dice.below(1000)));
            std::fs::rename(&from, &to).unwrap();
            touch_parent(&from, dice);
        }
        6 if !files.is_empty() => {
            let path = dice.pick(&files).to_path_buf();
            let mode = *dice.pick(&[0o600, 0o644, 0o700, 0o755]);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        7 if !files.is_empty() => {
            let path = dice.pick(&files).to_path_buf();
            set_mtime(&path, dice);
        }
        8 if !links.is_empty() => {
            let path = dice.pick(&links).to_path_buf();
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink(format!("retargeted{}", dice.below(100)), &path).unwrap();
            set_mtime(&path, dice);
            touch_parent(&path, dice);
        }
        9 => {
            let path = root.join(format!("scratch{}.tmp", dice.below(100)));
            write_file(&path, dice);
            touch_parent(&path, dice);
        }
        _ if dirs.len() > 1 => {
            let dir = dice.pick(&dirs[1..]).to_path_buf();
            std::fs::remove_dir_all(&dir).unwrap();
            touch_parent(&dir, dice);
        }
        _ => {}
    }
}

/// rsync -a --delete with the excludes, locally: the oracle.
fn rsync(from: &Path, to: &Path, excludes: &[&str]) {
    let mut cmd = Command::new("rsync");
    cmd.arg("-a").arg("--delete");
    for e in excludes {
        cmd.arg(format!("--exclude={e}"));
    }
    cmd.arg(format!("{}/", from.display()))
        .arg(format!("{}/", to.display()));
    let out = cmd
        .output()
        .expect("rsync is installed (./test.sh installs it)");
    assert!(
        out.status.success(),
        "rsync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn ferry_mirror(
    server: &TestServer,
    token: &str,
    verb: &str,
    from: &str,
    to: &str,
    excludes: &[&str],
) {
    let mut cmd = server.ferry(verb);
    cmd.env("FERRY_TOKEN", token)
        .args(["-r", "--delete", "--force"]);
    for e in excludes {
        cmd.arg("--exclude").arg(e);
    }
    cmd.arg(from).arg(to);
    let out = output(cmd).await;
    assert!(
        out.status.success(),
        "ferry {verb} {from} {to}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_same(ferry: &Path, rsync: &Path, what: &str) {
    let found = differences(&snapshot(ferry), &snapshot(rsync));
    assert!(found.is_empty(), "{what}:\n{}", found.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_mirror_as_rsync_does() {
    let cases: u64 = std::env::var("FERRY_ORACLE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("FERRY_ORACLE_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20261206);
    let (config, token) = config_with_user("mirror", "read,write");
    let server = TestServer::start_plaintext(config).await;
    let token = token.to_string();
    let root = server.dir.path().join("root");
    for case in 0..cases {
        let mut dice = Dice(seed.wrapping_mul(2654435761).wrapping_add(case) | 1);
        let work = tempfile::tempdir().unwrap();
        let src = work.path().join("src");
        let oracle = work.path().join("oracle");
        let remote = format!("case{case}");
        let dst = root.join(&remote);
        let excludes: Vec<&str> = EXCLUDES
            .iter()
            .copied()
            .filter(|_| dice.below(2) == 0)
            .collect();
        grow(&src, &mut dice, 0);
        // A first mirror of each, then rounds of changes mirrored again.
        for round in 0..3 {
            ferry_mirror(
                &server,
                &token,
                "put",
                &format!("{}/", src.display()),
                &remote,
                &excludes,
            )
            .await;
            rsync(&src, &oracle, &excludes);
            assert_same(
                &dst,
                &oracle,
                &format!("seed {seed} case {case} round {round}: put"),
            );
            for _ in 0..1 + dice.below(6) {
                mutate(&src, &mut dice);
            }
            // What only the targets hold: excluded names are spared, the rest removed.
            write_file(&dst.join("only-here.tmp"), &mut dice);
            set_mtime(&dst, &mut dice);
            let copied = Command::new("cp")
                .arg("-a")
                .arg(dst.join("only-here.tmp"))
                .arg(oracle.join("only-here.tmp"))
                .status()
                .unwrap();
            assert!(copied.success());
        }
        // The other way: the server's tree changes, and get mirrors it as rsync does.
        let got = work.path().join("got");
        let oracle_got = work.path().join("oracle-got");
        for round in 0..2 {
            ferry_mirror(
                &server,
                &token,
                "get",
                &format!("{remote}/"),
                &got.display().to_string(),
                &excludes,
            )
            .await;
            rsync(&dst, &oracle_got, &excludes);
            assert_same(
                &got,
                &oracle_got,
                &format!("seed {seed} case {case} round {round}: get"),
            );
            for _ in 0..1 + dice.below(6) {
                mutate(&dst, &mut dice);
            }
        }
    }
}

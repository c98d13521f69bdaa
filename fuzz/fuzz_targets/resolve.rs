//! Descriptor-based resolution against a real tree with symlinks that stay inside, symlinks
//! that leave (relative, absolute, through /proc), nested directories and a FIFO: whatever
//! path a client sends, what the sandbox opens is inside the root, and it never blocks.
#![no_main]

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;

use ferry::services::files::sandbox::Sandbox;
use libfuzzer_sys::fuzz_target;
use rustix::fs::OFlags;

struct Tree {
    _dir: tempfile::TempDir,
    sandbox: Sandbox,
    /// (dev, ino) of everything inside the root.
    inside: HashSet<(u64, u64)>,
}

fn id(path: &Path) -> (u64, u64) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.dev(), meta.ino())
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        for d in ["a/b/c", "d"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        for f in ["f", "a/g", "a/b/h", "a/b/c/i", "d/j"] {
            std::fs::write(root.join(f), f).unwrap();
        }
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(target, root.join(at)).unwrap();
        };
        link("a/b", "in");
        link("../f", "a/up");
        link("../../..", "a/b/top");
        link("../outside", "out");
        link("../../../outside/secret", "a/b/deep");
        link(outside.to_str().unwrap(), "abs");
        link("/proc/self/root", "magic");
        link("/etc/passwd", "etc");
        link("loop", "loop");
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let mut inside = HashSet::new();
        inside.insert(id(&root));
        for d in ["a", "a/b", "a/b/c", "d", "f", "a/g", "a/b/h", "a/b/c/i", "d/j", "fifo"] {
            inside.insert(id(&root.join(d)));
        }
        let sandbox = Sandbox::at(&root).unwrap();
        Tree {
            _dir: dir,
            sandbox,
            inside,
        }
    })
}

fn fd_id(fd: std::os::fd::OwnedFd) -> (u64, u64) {
    let meta = std::fs::File::from(fd).metadata().unwrap();
    (meta.dev(), meta.ino())
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let tree = tree();
    if let Ok((file, _)) = tree.sandbox.open_regular(path) {
        let meta = file.metadata().unwrap();
        assert!(tree.inside.contains(&(meta.dev(), meta.ino())), "{path:?} read outside");
    }
    if let Ok(fd) = tree.sandbox.open(path, OFlags::PATH | OFlags::CLOEXEC) {
        assert!(tree.inside.contains(&fd_id(fd)), "{path:?} opened outside");
    }
    if let Ok(place) = tree.sandbox.place(path) {
        let dir = place.dir.try_clone().unwrap();
        assert!(tree.inside.contains(&fd_id(dir)), "{path:?} placed outside");
        assert!(!place.name.contains('/') && place.name != ".." && place.name != ".");
    }
});

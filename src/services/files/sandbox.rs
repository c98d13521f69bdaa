//! The server root as a sandbox: every client path is resolved under it and nothing outside it
//! is ever read or written — not through `..`, an absolute path, or a symlink.
//!
//! Two layers: [`components`] is a pure check of the path text (only plain names), and
//! [`Sandbox`] resolves the result on disk, canonicalising it and refusing anything that lands
//! outside the canonical root. Targets of writes must not be symlinks themselves, and temporary
//! files are created exclusively, so a write never follows a link.

use std::path::{Path, PathBuf};

use crate::protocol::ErrorCode;

/// Why a path was refused, with its wire code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PathError {
    pub code: ErrorCode,
    pub message: String,
}

fn refuse(code: ErrorCode, message: String) -> PathError {
    PathError { code, message }
}

/// Longest path accepted from a client, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// Splits a client path into its names. `""`, `"."` and `"/"`-free relative paths are fine;
/// absolute paths, `..`, NUL bytes and over-long paths are refused. Pure, so it can be fuzzed.
///
/// # Errors
/// [`ErrorCode::BadPath`] naming the problem.
pub fn components(path: &str) -> Result<Vec<&str>, PathError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(refuse(ErrorCode::BadPath, "path is too long".into()));
    }
    if path.contains('\0') {
        return Err(refuse(
            ErrorCode::BadPath,
            "path contains a NUL byte".into(),
        ));
    }
    if path.starts_with('/') {
        return Err(refuse(
            ErrorCode::BadPath,
            format!("'{path}' is absolute; paths are relative to the server root"),
        ));
    }
    let mut names = Vec::new();
    for name in path.split('/') {
        match name {
            "" | "." => {}
            ".." => {
                return Err(refuse(
                    ErrorCode::BadPath,
                    format!("'{path}' contains '..'; paths may not leave the server root"),
                ));
            }
            name => names.push(name),
        }
    }
    Ok(names)
}

/// The root directory, canonical.
#[derive(Debug, Clone)]
pub struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    /// A sandbox at `root`, which must be canonical (the server canonicalises it at start).
    pub fn new(root: &Path) -> Self {
        Sandbox {
            root: root.to_path_buf(),
        }
    }

    /// Resolves an existing path, following symlinks only as far as they stay under the root.
    ///
    /// # Errors
    /// `bad_path` (outside the root), `not_found`, `io`.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, PathError> {
        let joined = components(path)?
            .into_iter()
            .fold(self.root.clone(), |p, name| p.join(name));
        let real = joined.canonicalize().map_err(|e| io_error(path, &e))?;
        self.check_inside(path, &real)?;
        Ok(real)
    }

    /// Resolves the place a file is written: its parent must exist under the root, and the
    /// target itself, if it exists, must be a regular file (never a symlink).
    ///
    /// # Errors
    /// `bad_path` (no name, outside the root, a symlink target), `not_a_file`, `not_found`.
    pub fn resolve_for_write(&self, path: &str) -> Result<PathBuf, PathError> {
        let names = components(path)?;
        let Some((name, parents)) = names.split_last() else {
            return Err(refuse(ErrorCode::BadPath, "a file needs a name".into()));
        };
        let parent = parents
            .iter()
            .fold(self.root.clone(), |p, n| p.join(n))
            .canonicalize()
            .map_err(|e| io_error(path, &e))?;
        self.check_inside(path, &parent)?;
        if !parent.is_dir() {
            return Err(refuse(
                ErrorCode::NotAFile,
                format!("the parent of '{path}' is not a directory"),
            ));
        }
        let target = parent.join(name);
        match target.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => Err(refuse(
                ErrorCode::BadPath,
                format!("'{path}' is a symlink; ferry does not write through symlinks"),
            )),
            Ok(meta) if !meta.is_file() => Err(refuse(
                ErrorCode::NotAFile,
                format!("'{path}' exists and is not a regular file"),
            )),
            _ => Ok(target),
        }
    }

    /// The path relative to the root, for messages.
    pub fn relative<'a>(&self, real: &'a Path) -> &'a Path {
        real.strip_prefix(&self.root).unwrap_or(real)
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn check_inside(&self, path: &str, real: &Path) -> Result<(), PathError> {
        if real.starts_with(&self.root) {
            Ok(())
        } else {
            Err(refuse(
                ErrorCode::BadPath,
                format!("'{path}' leads outside the server root (through a symlink)"),
            ))
        }
    }
}

/// A file system error about `path`, with the matching code.
pub fn io_error(path: &str, e: &std::io::Error) -> PathError {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            refuse(ErrorCode::NotFound, format!("'{path}' does not exist"))
        }
        _ => refuse(ErrorCode::Io, format!("'{path}': {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_relative_paths_split_into_names() {
        assert_eq!(
            components("a/b c/世界.txt").unwrap(),
            vec!["a", "b c", "世界.txt"]
        );
        assert_eq!(components("./a//b/").unwrap(), vec!["a", "b"]);
        assert!(components("").unwrap().is_empty());
        assert!(components(".").unwrap().is_empty());
    }

    #[test]
    fn escapes_are_refused() {
        for bad in [
            "/etc/passwd",
            "..",
            "a/../../b",
            "a/..",
            "x\0y",
            &"a/".repeat(3000),
        ] {
            assert_eq!(
                components(bad).unwrap_err().code,
                ErrorCode::BadPath,
                "{bad:?}"
            );
        }
    }

    proptest! {
        /// Whatever a client sends, an accepted path has only plain names.
        #[test]
        fn accepted_paths_have_only_plain_names(path in "[a-z./\\\\ ]{0,40}") {
            if let Ok(names) = components(&path) {
                for name in names {
                    prop_assert!(!name.is_empty() && name != "." && name != ".." && !name.contains('/'));
                }
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_root_are_refused_and_inside_ones_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::fs::write(root.join("sub/ok.txt"), "ok").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/ok.txt", root.join("in")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("outdir")).unwrap();
        let sandbox = Sandbox::new(&root.canonicalize().unwrap());
        assert_eq!(sandbox.resolve("out").unwrap_err().code, ErrorCode::BadPath);
        assert_eq!(
            sandbox.resolve("outdir/secret").unwrap_err().code,
            ErrorCode::BadPath
        );
        assert!(sandbox.resolve("in").unwrap().ends_with("sub/ok.txt"));
        assert_eq!(
            sandbox.resolve("nope").unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            sandbox.resolve_for_write("in").unwrap_err().code,
            ErrorCode::BadPath
        );
        assert_eq!(
            sandbox.resolve_for_write("outdir/new").unwrap_err().code,
            ErrorCode::BadPath
        );
        assert_eq!(
            sandbox.resolve_for_write("sub").unwrap_err().code,
            ErrorCode::NotAFile
        );
        assert!(sandbox.resolve_for_write("sub/new.txt").is_ok());
    }
}

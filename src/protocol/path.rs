//! The rule for a path on the wire: relative, `/`-separated, plain names only.
//!
//! Both ends apply it: the server before it touches its disk, the client before it writes a
//! name a server listed. Pure, so it is fuzzed with the rest of the protocol.

use super::{ErrorCode, Refusal};

/// Longest path accepted from a client, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// Splits a client path into its names. `""`, `"."` and `"/"`-free relative paths are fine;
/// absolute paths, `..`, NUL bytes and over-long paths are refused. Pure, so it can be fuzzed.
///
/// # Errors
/// [`ErrorCode::BadPath`] naming the problem.
pub fn components(path: &str) -> Result<Vec<&str>, Refusal> {
    if path.len() > MAX_PATH_BYTES {
        return Err(Refusal::new(ErrorCode::BadPath, "path is too long"));
    }
    if path.contains('\0') {
        return Err(Refusal::new(ErrorCode::BadPath, "path contains a NUL byte"));
    }
    if path.starts_with('/') {
        return Err(Refusal::new(
            ErrorCode::BadPath,
            format!("'{path}' is absolute; paths are relative to the server root"),
        ));
    }
    let mut names = Vec::new();
    for name in path.split('/') {
        match name {
            "" | "." => {}
            ".." => {
                return Err(Refusal::new(
                    ErrorCode::BadPath,
                    format!("'{path}' contains '..'; paths may not leave the server root"),
                ));
            }
            name => names.push(name),
        }
    }
    Ok(names)
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
}

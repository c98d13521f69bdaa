//! Which paths of a tree take part in a copy: rsync's `--exclude` / `--include` rules, and a
//! `.ferryignore` file in the tree's root read with gitignore's rules (the `ignore` crate).
//!
//! rsync's rules, as its manual states them: the rules are tried in the order given and the
//! first that matches decides; a path no rule matches is included. A pattern that starts with
//! `/` is anchored at the tree's root; one that contains another `/` or a `**` is matched
//! against the end of the path at a name boundary; any other is matched against the last name
//! only. A trailing `/` matches directories only. `*` and `?` stop at `/`, `**` does not,
//! `[...]` is a class. An excluded directory is not entered. The command-line rules come
//! first, then `.ferryignore`, so `--include` can bring back what the file leaves out.
//!
//! Written by hand over `globset` because no crate implements rsync's filter semantics (its
//! anchoring, name-only matching and first-match order); `globset` does the globbing.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The name of the ignore file read from a tree's root.
pub const IGNORE_FILE: &str = ".ferryignore";

/// One `--include` or `--exclude`, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `--include PATTERN`.
    Include(String),
    /// `--exclude PATTERN`.
    Exclude(String),
}

#[derive(Debug, Clone)]
struct Compiled {
    include: bool,
    glob: GlobMatcher,
    dir_only: bool,
    /// Matched against the last name only.
    on_name: bool,
}

/// The rules of one copy.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    rules: Vec<Compiled>,
    ignore: Option<Gitignore>,
}

impl Filter {
    /// The rules, in order.
    ///
    /// # Errors
    /// A pattern that is not a valid glob.
    pub fn new(rules: &[Rule]) -> Result<Filter, String> {
        let rules = rules
            .iter()
            .map(|rule| {
                let (include, pattern) = match rule {
                    Rule::Include(p) => (true, p.as_str()),
                    Rule::Exclude(p) => (false, p.as_str()),
                };
                compile(include, pattern)
            })
            .collect::<Result<_, _>>()?;
        Ok(Filter {
            rules,
            ignore: None,
        })
    }

    /// Adds the gitignore-style rules of `text` (a `.ferryignore`'s content), tried after the
    /// command line's.
    ///
    /// # Errors
    /// A line that is not a valid pattern.
    pub fn with_ignore_file(mut self, text: &str) -> Result<Filter, String> {
        let mut builder = GitignoreBuilder::new("/");
        for line in text.lines() {
            builder
                .add_line(None, line)
                .map_err(|e| format!("{IGNORE_FILE}: {e}"))?;
        }
        self.ignore = Some(builder.build().map_err(|e| format!("{IGNORE_FILE}: {e}"))?);
        Ok(self)
    }

    /// Whether this filter leaves everything in.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.ignore.is_none()
    }

    /// Whether the path `rel` (relative to the tree's root, `/`-separated) is left out. Its
    /// parents are not looked at: a walk does not enter an excluded directory (see
    /// [`Filter::excludes_or_parent`] for flat listings).
    pub fn excludes(&self, rel: &str, is_dir: bool) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        for rule in &self.rules {
            if rule.dir_only && !is_dir {
                continue;
            }
            let subject = if rule.on_name { name } else { rel };
            if rule.glob.is_match(subject) {
                return !rule.include;
            }
        }
        match &self.ignore {
            Some(ignore) => ignore.matched(Path::new("/").join(rel), is_dir).is_ignore(),
            None => false,
        }
    }

    /// Whether `rel` or one of the directories above it is left out: for a listing that was
    /// not walked with this filter.
    pub fn excludes_or_parent(&self, rel: &str, is_dir: bool) -> bool {
        let mut at = 0;
        while let Some(slash) = rel[at..].find('/') {
            let parent = &rel[..at + slash];
            if self.excludes(parent, true) {
                return true;
            }
            at += slash + 1;
        }
        self.excludes(rel, is_dir)
    }
}

fn compile(include: bool, pattern: &str) -> Result<Compiled, String> {
    let dir_only = pattern.ends_with('/') && pattern.len() > 1;
    let trimmed = if dir_only {
        pattern.trim_end_matches('/')
    } else {
        pattern
    };
    let (anchored, body) = match trimmed.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let on_name = !anchored && !body.contains('/') && !body.contains("**");
    let glob = if anchored || on_name {
        body.to_string()
    } else {
        format!("**/{body}")
    };
    let glob = GlobBuilder::new(&glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("the pattern '{pattern}': {e}"))?
        .compile_matcher();
    Ok(Compiled {
        include,
        glob,
        dir_only,
        on_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(rules: &[(&str, bool)]) -> Filter {
        let rules: Vec<Rule> = rules
            .iter()
            .map(|(p, include)| {
                if *include {
                    Rule::Include(p.to_string())
                } else {
                    Rule::Exclude(p.to_string())
                }
            })
            .collect();
        Filter::new(&rules).unwrap()
    }

    #[test]
    fn rsync_s_pattern_rules() {
        let f = filter(&[("*.o", false)]);
        assert!(f.excludes("a.o", false) && f.excludes("x/y/a.o", false));
        assert!(!f.excludes("a.c", false));
        // Anchored at the root.
        let f = filter(&[("/build", false)]);
        assert!(f.excludes("build", true) && !f.excludes("x/build", true));
        // A slash inside: the end of the path, at a name boundary.
        let f = filter(&[("src/*.rs", false)]);
        assert!(f.excludes("src/a.rs", false) && f.excludes("x/src/a.rs", false));
        assert!(!f.excludes("src/x/a.rs", false) && !f.excludes("mysrc/a.rs", false));
        // `**` crosses directories.
        let f = filter(&[("/a/**/z", false)]);
        assert!(f.excludes("a/z", false) && f.excludes("a/b/c/z", false));
        // Directories only.
        let f = filter(&[("cache/", false)]);
        assert!(f.excludes("cache", true) && !f.excludes("cache", false));
        // `?` and classes stop at names.
        let f = filter(&[("f?[0-9]", false)]);
        assert!(f.excludes("fa1", false) && !f.excludes("fa", false));
    }

    #[test]
    fn the_first_matching_rule_decides() {
        // rsync's classic: only *.c files, in every directory.
        let f = filter(&[("*/", true), ("*.c", true), ("*", false)]);
        assert!(!f.excludes("src", true) && !f.excludes("src/a.c", false));
        assert!(f.excludes("src/a.h", false));
        let f = filter(&[("keep.log", true), ("*.log", false)]);
        assert!(!f.excludes("keep.log", false) && f.excludes("other.log", false));
    }

    #[test]
    fn ferryignore_follows_gitignore_and_comes_after_the_command_line() {
        let f = filter(&[("important.tmp", true)])
            .with_ignore_file("# comment\n*.tmp\n/target/\n!keep.tmp\n")
            .unwrap();
        assert!(f.excludes("a.tmp", false) && f.excludes("d/a.tmp", false));
        assert!(!f.excludes("keep.tmp", false) && !f.excludes("important.tmp", false));
        assert!(f.excludes("target", true) && !f.excludes("d/target", true));
        assert!(f.excludes_or_parent("target/x/y.rs", false));
    }
}

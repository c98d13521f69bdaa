//! What a tree copy will do, decided before anything changes: from the source's entries and
//! the target's, the directories to make, the files to send (new, or changed: a delta when the
//! target holds an older version), the links to make, and — for a mirror (`--delete`) — what
//! to remove from the target. A dry run prints this plan; a copy carries it out.
//!
//! Removals never reach outside the target (they are the target's own listed paths), never
//! follow a link (a link is removed as itself), and spare what the filter protects: an
//! excluded path is neither sent nor removed unless `--delete-excluded`, and the directories
//! above a spared path stay too.

use std::collections::{HashMap, HashSet};

use super::Change;
use super::filter::Filter;
use super::links::HardLinks;
use crate::protocol::{FileEntry, FileKind};

/// What a mirror removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delete {
    /// Nothing: the target only gains and changes (a copy).
    #[default]
    Nothing,
    /// What the source no longer has, except what the filter excludes (`--delete`).
    Unmatched,
    /// That, and what the filter excludes too (`--delete-excluded`).
    UnmatchedAndExcluded,
}

/// The plan of one tree copy. Paths are relative to the tree's top (`""`).
#[derive(Debug, Default)]
pub struct Plan {
    /// Source directories, parents first (the top included).
    pub dirs: Vec<FileEntry>,
    /// Source files to consider, each with the file the target holds at its path, if any.
    pub files: Vec<(FileEntry, Option<FileEntry>)>,
    /// Source symlinks the target lacks or holds with other text.
    pub links: Vec<FileEntry>,
    /// Target entries to remove, deepest first (so each directory is empty in its turn).
    pub removals: Vec<FileEntry>,
    /// Source paths not copied, with why.
    pub skipped: Vec<(String, String)>,
    /// Symlinks already the same on both sides.
    pub same_links: Vec<String>,
}

impl Plan {
    /// Files and bytes the removals take away (files and links count as files).
    pub fn removed(&self) -> (u64, u64, u64) {
        let dirs = self
            .removals
            .iter()
            .filter(|e| e.kind == FileKind::Dir)
            .count() as u64;
        let files = self.removals.len() as u64 - dirs;
        let bytes = self.removals.iter().map(|e| e.size).sum();
        (files, dirs, bytes)
    }
}

/// Plans copying `source` onto `target` (both listed from their tops, parents first; the
/// source already without what `filter` excludes).
pub fn plan(source: &[FileEntry], target: &[FileEntry], filter: &Filter, delete: Delete) -> Plan {
    let held: HashMap<&str, &FileEntry> = target
        .iter()
        .filter(|e| !e.path.is_empty())
        .map(|e| (e.path.as_str(), e))
        .collect();
    let wanted: HashMap<&str, &FileEntry> = source.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut plan = Plan::default();
    // Target paths removed because the source puts something else there.
    let mut in_the_way: HashSet<&str> = HashSet::new();
    // Target paths that must stay: what the filter protects, and their parents.
    let protected = |e: &FileEntry| {
        delete != Delete::UnmatchedAndExcluded
            && filter.excludes_or_parent(&e.path, e.kind == FileKind::Dir)
    };
    let kept: Vec<&str> = target
        .iter()
        .filter(|e| protected(e))
        .map(|e| e.path.as_str())
        .collect();
    let holds_kept = |dir: &str| {
        kept.iter().any(|k| {
            *k == dir
                || k.strip_prefix(dir)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    };
    for entry in source {
        let there = held.get(entry.path.as_str()).copied();
        match entry.kind {
            FileKind::Dir => {
                if there.is_some_and(|t| t.kind != FileKind::Dir) {
                    in_the_way.insert(entry.path.as_str());
                }
                plan.dirs.push(entry.clone());
            }
            FileKind::File | FileKind::Symlink => {
                if let Some(t) = there {
                    let replace_dir = t.kind == FileKind::Dir;
                    if replace_dir && (delete == Delete::Nothing || holds_kept(&t.path)) {
                        plan.skipped.push((
                            entry.path.clone(),
                            "a directory is in the way (--delete replaces it)".into(),
                        ));
                        continue;
                    }
                    // A file never goes through a link, and a link never into a directory.
                    if replace_dir || (entry.kind == FileKind::File && t.kind != FileKind::File) {
                        in_the_way.insert(entry.path.as_str());
                    }
                }
                if entry.kind == FileKind::File {
                    let same_kind = there.filter(|t| t.kind == FileKind::File).cloned();
                    plan.files.push((entry.clone(), same_kind));
                } else if there
                    .is_some_and(|t| t.kind == FileKind::Symlink && t.target == entry.target)
                {
                    plan.same_links.push(entry.path.clone());
                } else {
                    plan.links.push(entry.clone());
                }
            }
            FileKind::Other => plan
                .skipped
                .push((entry.path.clone(), "not a regular file".into())),
        }
    }
    for t in target.iter().filter(|t| !t.path.is_empty()) {
        let under_removed = in_the_way.iter().any(|w| {
            t.path
                .strip_prefix(w)
                .is_some_and(|rest| rest.starts_with('/'))
        });
        let removed = if in_the_way.contains(t.path.as_str()) || under_removed {
            true
        } else {
            delete != Delete::Nothing && !wanted.contains_key(t.path.as_str())
        };
        if removed && !protected(t) && !(t.kind == FileKind::Dir && holds_kept(&t.path)) {
            plan.removals.push(t.clone());
        }
    }
    plan.removals.sort_by(|a, b| {
        let depth = |e: &FileEntry| e.path.matches('/').count();
        depth(b).cmp(&depth(a)).then_with(|| a.path.cmp(&b.path))
    });
    plan
}

/// A dry run's lines, in the order a copy would act: removals, directories the target lacks,
/// files (`wanted`: path, size and whether it is new or changed), symlinks, hard links.
pub fn itemize(
    plan: &Plan,
    held: &[FileEntry],
    wanted: &[(String, u64, Change)],
    hard: &HardLinks,
) -> Vec<(String, Change, u64)> {
    let there: HashSet<&str> = held
        .iter()
        .filter(|e| e.kind == FileKind::Dir)
        .map(|e| e.path.as_str())
        .collect();
    let removed: HashSet<&str> = plan.removals.iter().map(|e| e.path.as_str()).collect();
    let mut lines: Vec<(String, Change, u64)> = plan
        .removals
        .iter()
        .map(|e| (e.path.clone(), Change::Delete, e.size))
        .collect();
    lines.extend(
        plan.dirs
            .iter()
            .filter(|d| !there.contains(d.path.as_str()) || removed.contains(d.path.as_str()))
            .map(|d| (d.path.clone(), Change::Mkdir, 0)),
    );
    lines.extend(
        wanted
            .iter()
            .map(|(p, size, change)| (p.clone(), *change, *size)),
    );
    lines.extend(plan.links.iter().map(|l| (l.path.clone(), Change::Link, 0)));
    lines.extend(hard.links().map(|(p, _)| (p.clone(), Change::HardLink, 0)));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tree::filter::Rule;

    fn e(path: &str, kind: FileKind) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind,
            size: u64::from(kind == FileKind::File),
            mode: 0o644,
            mtime_ns: 0,
            target: (kind == FileKind::Symlink).then(|| "t".into()),
            not_utf8: false,
            hard_link_of: None,
        }
    }

    fn paths(entries: &[FileEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn a_mirror_removes_what_the_source_lost_deepest_first_and_spares_the_excluded() {
        use FileKind::*;
        let source = vec![e("", Dir), e("a", File)];
        let target = vec![
            e("", Dir),
            e("a", File),
            e("gone", Dir),
            e("gone/x", File),
            e("keep.log", File),
            e("old", Dir),
            e("old/b.log", File),
            e("old/c", File),
        ];
        let filter = Filter::new(&[Rule::Exclude("*.log".into())]).unwrap();
        let copy = plan(&source, &target, &filter, Delete::Nothing);
        assert!(copy.removals.is_empty());
        let mirror = plan(&source, &target, &filter, Delete::Unmatched);
        // old/b.log is excluded, so old stays too.
        assert_eq!(paths(&mirror.removals), vec!["gone/x", "old/c", "gone"]);
        let all = plan(&source, &target, &filter, Delete::UnmatchedAndExcluded);
        assert_eq!(
            paths(&all.removals),
            vec!["gone/x", "old/b.log", "old/c", "gone", "keep.log", "old"]
        );
        assert_eq!(all.removed(), (4, 2, 4));
    }

    #[test]
    fn what_is_in_the_way_is_replaced_and_links_are_compared_by_text() {
        use FileKind::*;
        let source = vec![
            e("", Dir),
            e("f", File),
            e("d", Dir),
            e("l", Symlink),
            e("m", Symlink),
        ];
        let mut other = e("m", Symlink);
        other.target = Some("elsewhere".into());
        let target = vec![
            e("", Dir),
            e("f", Symlink),
            e("d", File),
            e("l", Symlink),
            other,
        ];
        let p = plan(&source, &target, &Filter::default(), Delete::Nothing);
        // A link where a file goes and a file where a directory goes are removed first.
        assert_eq!(paths(&p.removals), vec!["d", "f"]);
        assert_eq!(p.same_links, vec!["l".to_string()]);
        assert_eq!(paths(&p.links), vec!["m"]);
        assert_eq!(
            p.files[0].1, None,
            "the link at f is not a file to compare with"
        );
        // A directory where a file goes is replaced only by a mirror.
        let target = vec![e("", Dir), e("f", Dir), e("f/x", File)];
        let p = plan(&source, &target, &Filter::default(), Delete::Nothing);
        assert_eq!(p.skipped.len(), 1);
        let p = plan(&source, &target, &Filter::default(), Delete::Unmatched);
        assert_eq!(paths(&p.removals), vec!["f/x", "f"]);
    }
}

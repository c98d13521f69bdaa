//! What the cache keeps, what it refuses to keep, and that it survives a restart.

use std::time::{Duration, SystemTime};

use super::*;
use crate::transfer::delta::Signature;

fn big_file(dir: &Path, name: &str) -> Fingerprint {
    let path = dir.join(name);
    std::fs::write(&path, vec![1u8; MIN_SIZE as usize]).unwrap();
    Fingerprint::of(&std::fs::metadata(&path).unwrap())
}

/// A moment by which every file made in the test has settled.
fn later() -> SystemTime {
    SystemTime::now() + SETTLED + Duration::from_secs(1)
}

#[test]
fn a_settled_file_is_found_again_only_in_the_same_version() {
    let dir = tempfile::tempdir().unwrap();
    let file = big_file(dir.path(), "a");
    let cache = HashCache::in_memory();
    cache.remember(file, later(), HashAlgorithm::Blake3, "h1");
    assert_eq!(
        cache.lookup(file, HashAlgorithm::Blake3).as_deref(),
        Some("h1")
    );
    // Another algorithm, another version of the file: not known.
    assert_eq!(cache.lookup(file, HashAlgorithm::Sha256), None);
    for changed in [
        Fingerprint {
            size: file.size + 1,
            ..file
        },
        Fingerprint {
            mtime_ns: file.mtime_ns + 1,
            ..file
        },
        Fingerprint {
            ctime_ns: file.ctime_ns + 1,
            ..file
        },
    ] {
        assert_eq!(cache.lookup(changed, HashAlgorithm::Blake3), None);
    }
}

#[test]
fn a_file_changed_just_before_hashing_or_a_small_one_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let file = big_file(dir.path(), "a");
    let cache = HashCache::in_memory();
    // Hashing began right after the last change: a change within the same clock tick could
    // keep the same ctime, so the hash must not be trusted later.
    cache.remember(file, SystemTime::now(), HashAlgorithm::Blake3, "h1");
    assert_eq!(cache.lookup(file, HashAlgorithm::Blake3), None);
    let small = Fingerprint {
        size: MIN_SIZE - 1,
        ..file
    };
    cache.remember(small, later(), HashAlgorithm::Blake3, "h2");
    assert_eq!(cache.lookup(small, HashAlgorithm::Blake3), None);
}

#[test]
fn the_cache_survives_a_restart_and_is_compacted_when_it_grew() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hash-cache");
    let file = big_file(dir.path(), "a");
    {
        let cache = HashCache::open(&path);
        // Many versions of one file: one entry, many lines.
        for i in 0..200 {
            let version = Fingerprint {
                mtime_ns: file.mtime_ns - 1000 + i,
                ..file
            };
            cache.remember(version, later(), HashAlgorithm::Blake3, &format!("v{i}"));
        }
        cache.remember(file, later(), HashAlgorithm::Blake3, "now");
    }
    let grown = std::fs::read_to_string(&path).unwrap().lines().count();
    assert_eq!(grown, 201);
    std::fs::write(
        &path,
        std::fs::read_to_string(&path).unwrap() + "not json\n",
    )
    .unwrap();
    let cache = HashCache::open(&path);
    assert_eq!(
        cache.lookup(file, HashAlgorithm::Blake3).as_deref(),
        Some("now")
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
}

#[test]
fn a_signature_is_kept_beside_the_hashes_for_exactly_one_version_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hash-cache");
    let file = big_file(dir.path(), "a");
    let opened = File::open(dir.path().join("a")).unwrap();
    let signature = Signature::compute(&opened, file.size).unwrap();
    {
        let cache = HashCache::open(&path);
        cache.remember_signature(file, later(), &signature);
        // Not settled when read: not kept.
        let fresh = Fingerprint {
            ino: file.ino + 1,
            ..file
        };
        cache.remember_signature(fresh, SystemTime::now(), &signature);
        assert_eq!(cache.signature(fresh), None);
    }
    // Found again after a restart, only for this version of the file.
    let cache = HashCache::open(&path);
    assert_eq!(cache.signature(file), Some(signature));
    let touched = Fingerprint {
        ctime_ns: file.ctime_ns + 1,
        ..file
    };
    assert_eq!(cache.signature(touched), None);
    // A damaged signature file is no signature.
    let kept = dir.path().join("hash-cache.signatures");
    for entry in std::fs::read_dir(&kept).unwrap() {
        let entry = entry.unwrap().path();
        let mut bytes = std::fs::read(&entry).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&entry, bytes).unwrap();
    }
    assert_eq!(cache.signature(file), None);
}

//! The metadata a transfer carries besides the bytes — permission bits and modification time —
//! read from and applied to files on either end, in one place.

use std::fs::File;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Sets permission bits and modification time, for every file and directory a transfer
/// creates, on either end. Only the rwx bits are applied: setuid, setgid and sticky bits from
/// the peer are dropped, so neither end can plant a setuid program on the other.
///
/// # Errors
/// I/O errors.
pub fn apply_metadata(
    file: &File,
    mode: Option<u32>,
    mtime_ns: Option<i64>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(mode) = mode {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
    }
    if let Some(mtime) = mtime_ns.and_then(time_from_ns) {
        file.set_modified(mtime)?;
    }
    Ok(())
}

/// Sets the modification time of the symlink `name` in `dir` itself (not of what it points to),
/// as rsync's `-a` keeps it.
///
/// # Errors
/// I/O errors.
pub fn set_link_mtime(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &str,
    mtime_ns: i64,
) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, Timespec, Timestamps, UTIME_OMIT};
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000),
        },
    };
    rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// A modification time in ns since the epoch as a `SystemTime`.
pub fn time_from_ns(ns: i64) -> Option<SystemTime> {
    if ns >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_nanos(ns as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_nanos(ns.unsigned_abs()))
    }
}

/// A file's modification time in ns since the epoch (saturating), as entries and transfers
/// carry it.
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// A `SystemTime` as ns since the epoch (saturating).
pub fn ns_from_time(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_both_sides_of_the_epoch() {
        for ns in [0, 1, -1, 1_700_000_000_123_456_789, -86_400_000_000_000] {
            assert_eq!(ns_from_time(time_from_ns(ns).unwrap()), ns);
        }
    }
}

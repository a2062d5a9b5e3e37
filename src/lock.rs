//! The run lock: an exclusive, non-blocking `flock(2)` held for the whole of a pruning run.
//!
//! Two prunegate runs never overlap, and any other program can keep prunegate out by holding a
//! *shared* lock on the same file for as long as it works, e.g. a deploy:
//! `flock -s /run/lock/prunegate.lock ./deploy.sh`. prunegate does not wait: a run that cannot
//! take the lock is skipped (exit 10) and says who holds it, read from `/proc/locks`.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _lock: Flock<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the run lock {path} is held {holders}")]
    Held { path: PathBuf, holders: String },
    #[error("cannot use the run lock {path} (lock.path): {error}")]
    Io { path: PathBuf, error: String },
}

fn open(path: &Path) -> std::io::Result<File> {
    // Open without O_CREAT first: in a sticky /run/lock, O_CREAT on a file another user created
    // is refused when fs.protected_regular is set, though plain opening is allowed.
    match OpenOptions::new().read(true).open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)?;
            // Readable by all whatever the umask, so unprivileged deploy scripts can share it.
            let _ = f.set_permissions(std::fs::Permissions::from_mode(0o644));
            Ok(f)
        }
        Err(e) => Err(e),
    }
}

/// Takes the lock or says why not. Never blocks.
pub fn acquire(path: &Path) -> Result<RunLock, LockError> {
    let io = |e: &dyn std::fmt::Display| LockError::Io {
        path: path.to_path_buf(),
        error: e.to_string(),
    };
    let file = open(path).map_err(|e| io(&e))?;
    let inode = file.metadata().map_err(|e| io(&e))?.ino();
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(RunLock { _lock: lock }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Held {
            path: path.to_path_buf(),
            holders: holders_of(inode),
        }),
        Err((_, errno)) => Err(io(&errno)),
    }
}

/// Who holds the lock on `inode`, read from `/proc/locks` up to five times. The kernel hands that
/// file out a page per read and walks a list other processes change meanwhile, so on a busy
/// host (a Podman creating containers takes and drops its storage locks by the hundred) one
/// pass can step over the holder's line: seen in CI, where a held lock was described only as
/// "by another process".
fn holders_of(inode: u64) -> String {
    let mut described = String::new();
    for attempt in 0..5 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        described = describe_holders(
            &std::fs::read_to_string("/proc/locks").unwrap_or_default(),
            inode,
        );
        if described != UNKNOWN_HOLDER {
            break;
        }
    }
    described
}

const UNKNOWN_HOLDER: &str = "by another process";

/// "shared by pid 412 (flock), exclusive by pid 9 (prunegate)" from `/proc/locks` lines like
/// `1: FLOCK  ADVISORY  READ  412 fd:01:1234 0 EOF` for the lock file's inode.
pub fn describe_holders(proc_locks: &str, inode: u64) -> String {
    let holders: Vec<String> = proc_locks
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Blocked waiters are listed as "N: -> FLOCK …"; they hold nothing.
            if f.len() < 6 || f[1] != "FLOCK" {
                return None;
            }
            let ino: u64 = f[5].rsplit(':').next()?.parse().ok()?;
            if ino != inode {
                return None;
            }
            let kind = if f[3] == "READ" {
                "shared"
            } else {
                "exclusive"
            };
            let pid = f[4];
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok();
            Some(match comm {
                Some(c) => format!("{kind} by pid {pid} ({})", c.trim()),
                None => format!("{kind} by pid {pid}"),
            })
        })
        .collect();
    if holders.is_empty() {
        UNKNOWN_HOLDER.to_string()
    } else {
        holders.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_exclusive_lock_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        let held = acquire(&path).unwrap();
        let err = acquire(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("held exclusive by pid"), "{text}");
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        drop(held);
        assert!(acquire(&path).is_ok(), "released on drop");
    }

    #[test]
    fn parses_proc_locks() {
        let locks = "1: FLOCK  ADVISORY  READ  4242424 fd:01:77 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242425 fd:01:78 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 4242426 fd:01:77 0 EOF\n";
        assert_eq!(describe_holders(locks, 77), "shared by pid 4242424");
        assert_eq!(describe_holders(locks, 1), "by another process");
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_key() {
        let err = acquire(Path::new("/nonexistent/dir/prunegate.lock")).unwrap_err();
        assert!(err.to_string().contains("lock.path"));
    }
}

//! The run lock: an exclusive, non-blocking `flock(2)` held for the whole of a pruning run.
//!
//! Two prunegate runs never overlap, and any other program can keep prunegate out by holding a
//! *shared* lock on the same file for as long as it works, e.g. a deploy:
//! `flock -s /run/prunegate/run.lock ./deploy.sh`. prunegate does not wait: a run that cannot
//! take the lock is skipped (exit 10) and says who holds it, read from `/proc/locks`.
//!
//! The lock file is an input other local users may reach, so it is opened as hostile: never
//! through a symbolic link, never blocking (a FIFO put at the path would hang an `open`), and
//! used only when it is a regular file that root or prunegate's own user owns, that nobody
//! else can write, in a directory where nobody else can remove and recreate it (a deploy
//! holding the old inode would then no longer keep prunegate out). Anything else is refused
//! with what is wrong: a run that cannot trust its lock does not prune.

use nix::fcntl::{Flock, FlockArg, OFlag};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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

/// Opens the lock file read-only (`flock` needs no more, and deploy users need only read it):
/// without following a symbolic link and without blocking. Created 0644 when missing, with
/// `O_EXCL`, so a file another user puts there in between is never opened as created.
fn open(path: &Path) -> Result<File, String> {
    let flags = (OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits();
    let opened = OpenOptions::new().read(true).custom_flags(flags).open(path);
    let file = match opened {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Outside systemd-tmpfiles (a container, a hand-run): the lock's own directory is
            // made here, 0755, as tmpfiles would. Only the last component: a missing /run is
            // not prunegate's to make.
            if let Some(dir) = path.parent().filter(|d| !d.exists()) {
                match std::fs::DirBuilder::new().mode(0o755).create(dir) {
                    // Another run made it meanwhile: the checks below judge it as any other.
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(format!("creating its directory {}: {e}", dir.display()));
                    }
                    _ => {}
                }
            }
            let created = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o644)
                .custom_flags(flags)
                .open(path);
            let file = match created {
                // Another run made it between the two opens: open that one, as any other.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return OpenOptions::new()
                        .read(true)
                        .custom_flags(flags)
                        .open(path)
                        .map_err(|e| describe_open_error(&e, path));
                }
                other => other.map_err(|e| describe_open_error(&e, path))?,
            };
            // Readable by all whatever the umask (fchmod: the file opened, never the path), so
            // unprivileged deploy scripts can share it.
            file.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|e| format!("setting its mode: {e}"))?;
            file
        }
        other => other.map_err(|e| describe_open_error(&e, path))?,
    };
    Ok(file)
}

fn describe_open_error(e: &std::io::Error, path: &Path) -> String {
    if e.raw_os_error() == Some(nix::libc::ELOOP) {
        format!(
            "{} is a symbolic link; a lock is never taken through one",
            path.display()
        )
    } else {
        e.to_string()
    }
}

/// Whether the opened lock file and its directory can be trusted; why not otherwise.
fn check(file: &File, path: &Path) -> Result<(), String> {
    let st = file
        .metadata()
        .map_err(|e| format!("reading its status: {e}"))?;
    let kind = st.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(format!("it is {what}, not a regular file; remove it"));
    }
    let me = nix::unistd::geteuid().as_raw();
    if st.uid() != 0 && st.uid() != me {
        return Err(format!(
            "it is owned by uid {}, not by root or prunegate's user (uid {me}): its owner could \
             hold it or replace it; remove it",
            st.uid()
        ));
    }
    if st.mode() & 0o022 != 0 {
        return Err(format!(
            "its mode {:04o} lets others write it; it must be 0644 or stricter",
            st.mode() & 0o7777
        ));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let d = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sticky = d.mode() & 0o1000 != 0;
    if d.mode() & 0o022 != 0 && !sticky {
        return Err(format!(
            "its directory {} (mode {:04o}) lets others remove and recreate the file; use a \
             directory only root can write, such as /run/prunegate",
            dir.display(),
            d.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Takes the lock or says why not. Never blocks.
pub fn acquire(path: &Path) -> Result<RunLock, LockError> {
    let io = |e: String| LockError::Io {
        path: path.to_path_buf(),
        error: e,
    };
    let file = open(path).map_err(io)?;
    check(&file, path).map_err(io)?;
    let st = file.metadata().map_err(|e| io(e.to_string()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            // The path must still name the file locked: one removed and recreated meanwhile
            // would be a lock no deploy holds.
            match std::fs::symlink_metadata(path) {
                Ok(now) if now.ino() == st.ino() && now.dev() == st.dev() => {
                    Ok(RunLock { _lock: lock })
                }
                _ => Err(io(
                    "the file was removed or replaced while it was being locked".into(),
                )),
            }
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Held {
            path: path.to_path_buf(),
            holders: holders_of(st.ino()),
        }),
        Err((_, errno)) => Err(io(errno.to_string())),
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

    /// A FIFO at the lock path hung every run (628 s, deaf to SIGTERM) before the lock was
    /// opened non-blocking; now the run is refused at once and says what is there.
    #[test]
    fn a_fifo_at_the_lock_path_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || tx.send(acquire(&p).map(|_| ()).map_err(|e| e.to_string())));
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("acquire returned instead of blocking on the FIFO");
        let err = got.unwrap_err();
        assert!(err.contains("a FIFO, not a regular file"), "{err}");
    }

    /// A dangling symbolic link made root create a file where it pointed.
    #[test]
    fn a_symbolic_link_is_refused_and_its_target_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = acquire(&path).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(!target.exists(), "the link's target was created");
    }

    /// A lock file squatted by another user (who can hold it shared for ever, or remove and
    /// recreate it under a deploy) is refused, naming the owner.
    #[test]
    fn a_file_another_user_owns_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            panic!("this test needs root (it gives the lock file to uid 65534)");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let err = acquire(&path).unwrap_err().to_string();
        assert!(err.contains("owned by uid 65534"), "{err}");
    }

    #[test]
    fn a_file_others_can_write_or_a_directory_they_can_empty_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = acquire(&path).unwrap_err().to_string();
        assert!(err.contains("mode 0666"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = acquire(&path).unwrap_err().to_string();
        assert!(err.contains("lets others remove and recreate"), "{err}");
        // Sticky, as /run/lock is: others cannot remove root's file.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(acquire(&path).is_ok());
    }

    /// Two runs starting at once both find no file (nor its directory); the one whose
    /// creation loses opens the winner's (it once failed with "File exists").
    #[test]
    fn runs_racing_to_create_the_lock_never_fail_on_it() {
        for _ in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("prunegate").join("run.lock");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let (p, b) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        b.wait();
                        open(&p).map(|_| ())
                    })
                })
                .collect();
            for r in racers {
                r.join().unwrap().unwrap();
            }
        }
    }

    #[test]
    fn a_created_lock_file_is_0644() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        acquire(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_key() {
        let err = acquire(Path::new("/nonexistent/dir/prunegate.lock")).unwrap_err();
        assert!(err.to_string().contains("lock.path"));
    }
}

//! The retention class's use history on disk: `retention.json` in `state.dir`, rewritten
//! atomically at the end of each run that learned something. Reading it says precisely what is
//! wrong when it cannot be used, because the class then removes nothing and the report says why.

use super::atomic::{load_json, save_json};
use crate::retention::History;
use std::path::{Path, PathBuf};

const NAME: &str = "retention.json";

/// The history's file.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(NAME)
}

/// The history kept, `Ok(None)` when there is none yet, or why it cannot be read.
pub fn load(dir: &Path) -> Result<Option<History>, String> {
    load_json(dir, NAME, "the use history")
}

pub fn save(dir: &Path, history: &History) -> Result<(), String> {
    save_json(dir, NAME, history)
}

/// Held while a writer loads, updates and saves the history: a run and the recorder
/// (`prunegate record`) both write it, and neither may overwrite what the other just merged.
pub struct HistoryLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Takes the history's lock (`retention.lock` in `state.dir`, made 0600), waiting up to 10 s:
/// its holders keep it for a load and a save, milliseconds.
pub async fn lock(dir: &Path) -> Result<HistoryLock, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = super::atomic::state_dir(dir)?;
    let path = dir.join("retention.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits())
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for _ in 0..200 {
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(HistoryLock { _lock: lock }),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                file = f;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err((_, e)) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Err(format!("{}: still held after 10 s", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_corrupt_and_kept_histories() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), Ok(None));
        std::fs::write(path(dir.path()), "{not json").unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(err.contains("retention.json is unreadable"), "{err}");
        let h = History::fresh("D", 1_700_000_000, &["a"], None);
        save(dir.path(), &h).unwrap();
        assert_eq!(load(dir.path()), Ok(Some(h)));
    }
}

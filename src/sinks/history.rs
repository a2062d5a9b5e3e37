//! The retention class's use history on disk: `retention.json` in `state.dir`, rewritten
//! atomically at the end of each run that learned something. Reading it says precisely what is
//! wrong when it cannot be used, because the class then removes nothing and the report says why.

use super::atomic::write_atomically;
use crate::retention::History;
use std::path::{Path, PathBuf};

pub fn path(dir: &Path) -> PathBuf {
    dir.join("retention.json")
}

/// The history kept, `Ok(None)` when there is none yet, or why it cannot be read.
pub fn load(dir: &Path) -> Result<Option<History>, String> {
    let p = path(dir);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("the use history {} is unreadable: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("the use history {}: {e}", p.display())),
    }
}

pub fn save(dir: &Path, history: &History) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("creating the state directory {}: {e}", dir.display()))?;
    let bytes = serde_json::to_vec_pretty(history).map_err(|e| e.to_string())?;
    write_atomically(&path(dir), &bytes)
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
        let h =
            History::default().observe("D", 5, &["a"], &Default::default(), &Default::default());
        save(dir.path(), &h).unwrap();
        assert_eq!(load(dir.path()), Ok(Some(h)));
    }
}

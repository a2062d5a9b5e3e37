//! The retention class's use history on disk: `retention.json` in `state.dir`, rewritten
//! atomically at the end of each run that learned something. Reading it says precisely what is
//! wrong when it cannot be used, because the class then removes nothing and the report says why.

use super::atomic::{load_json, save_json};
use crate::retention::History;
use std::path::{Path, PathBuf};

const NAME: &str = "retention.json";

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

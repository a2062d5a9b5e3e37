//! The tagged images' layers the retention class has read, by image id: `layers.json` in
//! `state.dir`. An image id names the image's content, so its layers never change: a retention
//! run inspects only images it has not seen before. A cache, nothing more — missing or
//! unreadable, it is rebuilt by reading the layers again.

use super::atomic::{load_json, save_json};
use std::collections::HashMap;
use std::path::Path;

const NAME: &str = "layers.json";

/// The layers remembered; empty when there is no file or it cannot be read.
pub fn load(dir: &Path) -> HashMap<String, Vec<String>> {
    load_json(dir, NAME, "the layers remembered")
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Remembers `layers` (the images present now: the ones gone are forgotten).
pub fn save(dir: &Path, layers: &HashMap<String, Vec<String>>) -> Result<(), String> {
    save_json(dir, NAME, layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_and_forgiving() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).is_empty());
        let layers = HashMap::from([("sha256:a".to_string(), vec!["sha256:l".to_string()])]);
        save(dir.path(), &layers).unwrap();
        assert_eq!(load(dir.path()), layers);
        std::fs::write(dir.path().join(NAME), "{not json").unwrap();
        assert!(
            load(dir.path()).is_empty(),
            "a broken cache is rebuilt, not an error"
        );
    }
}

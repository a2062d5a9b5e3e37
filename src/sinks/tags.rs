//! The tags prunegate saw each image hold ([`crate::junk::SeenTags`]): `tags.json` in
//! `state.dir`, read by the images step and its dry run, written by the images step under the
//! run lock. Without it no pull counts as superseded, so a missing or unreadable file only
//! keeps more images (the report says why), never fewer.

use super::atomic::{load_json, save_json};
use crate::junk::SeenTags;
use std::path::Path;

const NAME: &str = "tags.json";

#[cfg(test)]
fn path(dir: &Path) -> std::path::PathBuf {
    dir.join(NAME)
}

/// The tags seen, empty when there is no file yet, or why it cannot be read.
pub fn load(dir: &Path) -> Result<SeenTags, String> {
    Ok(load_json(dir, NAME, "the file of tags seen")?.unwrap_or_default())
}

pub fn save(dir: &Path, seen: &SeenTags) -> Result<(), String> {
    save_json(dir, NAME, seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ImageSummary;

    #[test]
    fn missing_corrupt_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), Ok(SeenTags::default()));
        std::fs::write(path(dir.path()), "{not json").unwrap();
        assert!(load(dir.path())
            .unwrap_err()
            .contains("tags.json is unreadable"));
        let seen = SeenTags {
            daemon_id: "D".into(),
            ..Default::default()
        }
        .observe(&[ImageSummary {
            id: "sha256:a".into(),
            repo_tags: vec!["x:1".into()],
            ..Default::default()
        }]);
        save(dir.path(), &seen).unwrap();
        assert_eq!(load(dir.path()), Ok(seen));
    }
}

//! The tags prunegate saw each image hold ([`crate::junk::SeenTags`]): `tags.json` in
//! `state.dir`, read by the images step and its dry run, written by the images step under the
//! run lock. Without it no pull counts as superseded, so a missing or unreadable file only
//! keeps more images (the report says why), never fewer.

use super::atomic::write_atomically;
use crate::junk::SeenTags;
use std::path::{Path, PathBuf};

pub fn path(dir: &Path) -> PathBuf {
    dir.join("tags.json")
}

/// The tags seen, empty when there is no file yet, or why it cannot be read.
pub fn load(dir: &Path) -> Result<SeenTags, String> {
    let p = path(dir);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("the tags seen, {}, are unreadable: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SeenTags::default()),
        Err(e) => Err(format!("the tags seen, {}: {e}", p.display())),
    }
}

pub fn save(dir: &Path, seen: &SeenTags) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("creating the state directory {}: {e}", dir.display()))?;
    let bytes = serde_json::to_vec(seen).map_err(|e| e.to_string())?;
    write_atomically(&path(dir), &bytes)
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
            .contains("tags.json, are unreadable"));
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

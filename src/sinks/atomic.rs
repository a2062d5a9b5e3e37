//! Writing a whole file so that no reader ever sees half of it, and the files of `state.dir`.
//!
//! The directories written to may belong to someone else (a metrics directory node-exporter's
//! operator owns, a state directory made by hand), so nothing here acts on a path after the
//! file is made: the temporary file is created `O_EXCL` (tempfile), its mode is set on its file
//! descriptor, and the rename replaces the name whatever it was (a symbolic link included)
//! without following it. A chmod by path let a user owning the metrics directory swap the
//! temporary file for a link to a root-only file and have it made world-readable.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Files readable by others: the metrics textfile, which node-exporter reads as its own user.
pub const PUBLIC: u32 = 0o644;
/// Files only prunegate's user reads: everything in `state.dir`.
pub const PRIVATE: u32 = 0o600;

/// Writes `bytes` to `path` with `mode` by way of a temporary file in the same directory and a
/// rename, so a reader (node-exporter, the next run) never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".prunegate-")
        .tempfile_in(dir)
        .map_err(|e| {
            format!(
                "{}: creating a temporary file in {}: {e}",
                path.display(),
                dir.display()
            )
        })?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|_| tmp.write_all(bytes))
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// `state.dir`, made 0700 (with any missing parent) when it does not exist yet.
pub fn state_dir(dir: &Path) -> Result<&Path, String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("creating the state directory {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Writes `name` in `state.dir` as JSON, 0600.
pub fn save_json<T: serde::Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    write_atomically(&state_dir(dir)?.join(name), &bytes, PRIVATE)
}

/// Reads `name` in `state.dir` as JSON: `Ok(None)` when there is none yet; otherwise the value
/// or why it cannot be read, `what` naming the file's content in the error.
pub fn load_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
    what: &str,
) -> Result<Option<T>, String> {
    let p: PathBuf = dir.join(name);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{what} {} is unreadable: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{what} {}: {e}", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// The finding: a user owning the directory swaps the temporary file for a symbolic link
    /// to a root-only file between its creation and a chmod by path. An attacker thread does
    /// that as fast as it can while files are written; the target must stay 0600.
    #[test]
    fn swapping_the_temporary_file_for_a_link_never_changes_another_files_mode() {
        let dir = tempfile::tempdir().unwrap();
        let secret_dir = tempfile::tempdir().unwrap();
        let secret = secret_dir.path().join("shadow");
        std::fs::write(&secret, b"root only").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let attacker = {
            let (dir, secret, stop) = (dir.path().to_path_buf(), secret.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                        let name = entry.file_name();
                        if name.to_string_lossy().starts_with(".prunegate-")
                            && std::fs::remove_file(entry.path()).is_ok()
                            && std::os::unix::fs::symlink(&secret, entry.path()).is_ok()
                        {
                            swaps += 1;
                        }
                    }
                }
                swaps
            })
        };
        let target = dir.path().join("prunegate.prom");
        for _ in 0..300 {
            let _ = write_atomically(&target, &[b'x'; 4096], PUBLIC);
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = attacker.join().unwrap();
        let mode = std::fs::metadata(&secret).unwrap().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "the root-only file became {mode:o} ({swaps} swaps)"
        );
        assert!(
            swaps > 0,
            "the attacker never got in: the test proves nothing"
        );
    }

    #[test]
    fn state_files_are_0600_in_a_0700_directory_and_metrics_0644() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state/sub");
        save_json(&dir, "x.json", &serde_json::json!({"a": 1})).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("state")), 0o700);
        assert_eq!(mode(&dir.join("x.json")), 0o600);
        let v: Option<serde_json::Value> = load_json(&dir, "x.json", "x").unwrap();
        assert_eq!(v.unwrap()["a"], 1);
        assert_eq!(
            load_json::<serde_json::Value>(&dir, "none.json", "x"),
            Ok(None)
        );
        let prom = root.path().join("m.prom");
        write_atomically(&prom, b"m 1\n", PUBLIC).unwrap();
        assert_eq!(mode(&prom), 0o644);
    }
}

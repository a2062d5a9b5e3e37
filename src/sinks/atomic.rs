//! Writing a whole file so that no reader ever sees half of it.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` by way of a temporary file in the same directory and a rename, so
/// a reader (node-exporter, the next run) never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
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
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let _ = std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    );
    tmp.persist(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

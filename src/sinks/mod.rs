//! Where a finished report goes besides stdout: the Prometheus textfile, the audit log, and the
//! state file behind the metrics' totals. Sinks only render the report; they decide nothing.

pub mod audit;
pub mod metrics;

use crate::config::Config;
use crate::report::Report;
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

/// Runs every configured sink for a finished pruning run. Failures do not undo anything; they
/// are returned as warnings for the report and the log.
pub fn write_all(config: &Config, report: &Report) -> Vec<String> {
    let mut warnings = Vec::new();
    let now = chrono::Utc::now().timestamp();
    if let Some(path) = &config.audit.path {
        if let Err(e) = audit::append(path, report) {
            warnings.push(format!("audit log not written: {e}"));
        }
    }
    if let Some(path) = &config.metrics.path {
        let state = match crate::state::load(&config.state.dir) {
            Ok(mut state) => {
                state.record(report, now);
                if let Err(e) = crate::state::save(&config.state.dir, &state) {
                    warnings.push(format!("state not saved (totals will not advance): {e}"));
                }
                Some(state)
            }
            Err(e) => {
                warnings.push(format!("totals left out of the metrics: {e}"));
                None
            }
        };
        let text = metrics::render(config, report, state.as_ref(), now);
        if let Err(e) = write_atomically(path, text.as_bytes()) {
            warnings.push(format!("metrics not written: {e}"));
        }
    }
    warnings
}

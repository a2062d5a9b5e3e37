//! The audit log: one JSON line per object a run removed, appended to `audit.path`, and one
//! per prune step that failed: a prune cut short (daemon killed, connection lost) may have
//! removed objects the daemon never got to report, and the log must not look complete then.
//!
//! Lines are only ever appended (O_APPEND, one write per run, then fsync); prunegate never
//! truncates or rotates the file. It grows by roughly 300–500 bytes per removed object; rotate
//! it with logrotate's `copytruncate` or by renaming it between runs (docs/operations.md).

use crate::report::{Report, StepStatus};
use serde_json::json;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The lines a report contributes, without the trailing newline.
pub fn lines(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for step in report
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
    {
        out.push(
            json!({
                "time": report.finished_at,
                "run_id": report.run_id,
                "command": report.command,
                "docker_host": report.docker_host,
                "class": step.class,
                "id": null,
                "failed": step.reason,
            })
            .to_string(),
        );
    }
    for step in report.steps.iter().filter(|s| s.status == StepStatus::Done) {
        for o in step.objects.iter().flatten() {
            out.push(
                json!({
                    "time": report.finished_at,
                    "run_id": report.run_id,
                    "command": report.command,
                    "docker_host": report.docker_host,
                    "class": step.class,
                    "id": o.id,
                    "size_bytes": o.size_bytes,
                    "description": o.description,
                    "what": o.what,
                })
                .to_string(),
            );
        }
    }
    out
}

pub fn append(path: &Path, report: &Report) -> Result<(), String> {
    let lines = lines(report);
    if lines.is_empty() {
        return Ok(());
    }
    let mut text = lines.join("\n");
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| format!("{} (audit.path): {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(|e| format!("{} (audit.path): {e}", path.display()))
}

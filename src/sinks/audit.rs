//! The audit log: one JSON line per object a run removed, appended to `audit.path`, and one
//! per prune step that failed: a prune cut short (daemon killed, connection lost) may have
//! removed objects the daemon never got to report, and the log must not look complete then.
//!
//! Lines are only ever appended (O_APPEND, one write per run, then fsync); prunegate never
//! truncates or rotates the file. It grows by roughly 300–500 bytes per removed object; rotate
//! it with logrotate's `copytruncate` or by renaming it between runs (docs/operations.md).

use crate::report::{Report, StepReport, StepStatus};
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One line: the run's fields and the step's class, then `fields`.
fn line(report: &Report, step: &StepReport, fields: Value) -> String {
    let mut l = json!({
        "time": report.finished_at,
        "run_id": report.run_id,
        "command": report.command,
        "docker_host": report.docker_host,
        "class": step.class,
    });
    if let (Some(l), Value::Object(fields)) = (l.as_object_mut(), fields) {
        l.extend(fields);
    }
    l.to_string()
}

/// The lines a report contributes, without the trailing newline.
pub fn lines(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for step in &report.steps {
        match step.status {
            StepStatus::Failed => {
                out.push(line(
                    report,
                    step,
                    json!({ "id": null, "failed": step.reason }),
                ));
            }
            StepStatus::Done => {
                for o in step.objects.iter().flatten() {
                    let fields = json!({
                        "id": o.id,
                        "size_bytes": o.size_bytes,
                        "description": o.description,
                        "what": o.what,
                    });
                    out.push(line(report, step, fields));
                }
            }
            StepStatus::Skipped | StepStatus::WouldRemove => {}
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

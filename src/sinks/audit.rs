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
    // A gap in the use history is part of why the class judged as it did: in the log too.
    for g in &report.history_gaps {
        let mut l = json!({
            "time": report.finished_at,
            "run_id": report.run_id,
            "command": report.command,
            "docker_host": report.docker_host,
            "class": "tagged_images",
            "history_gap": g,
        });
        l["history_gap"]["text"] = json!(g.describe());
        out.push(l.to_string());
    }
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

/// Opens the audit log for appending, as hostile input: never through a symbolic link (an append
/// into a root-only file it pointed to was reproduced), never blocking (a FIFO), and only a
/// regular file that root or prunegate's user owns. Created 0640 when missing.
fn open(path: &Path) -> Result<std::fs::File, String> {
    use nix::fcntl::OFlag;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) {
                "it is a symbolic link; the audit log is never written through one".to_string()
            } else {
                e.to_string()
            }
        })?;
    let st = f.metadata().map_err(|e| e.to_string())?;
    if !st.file_type().is_file() {
        let what = if st.file_type().is_fifo() {
            "a FIFO"
        } else {
            "not a regular file"
        };
        return Err(format!(
            "it is {what}; the audit log must be a regular file"
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if st.uid() != 0 && st.uid() != me {
        return Err(format!(
            "it is owned by uid {}, not by root or prunegate's user (uid {me})",
            st.uid()
        ));
    }
    Ok(f)
}

pub fn append(path: &Path, report: &Report) -> Result<(), String> {
    let lines = lines(report);
    if lines.is_empty() {
        return Ok(());
    }
    let mut text = lines.join("\n");
    text.push('\n');
    let mut f = open(path).map_err(|e| format!("{} (audit.path): {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(|e| format!("{} (audit.path): {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_link_a_fifo_or_another_users_file_is_never_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("root-only");
        std::fs::write(&secret, b"secret\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("audit.log");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let err = open(&link).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(&secret).unwrap(), b"secret\n");

        let fifo = dir.path().join("fifo.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = open(&fifo).unwrap_err();
        assert!(
            err.contains("FIFO") || err.contains("No such device"),
            "{err}"
        );

        let theirs = dir.path().join("theirs.log");
        std::fs::write(&theirs, b"").unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None)
            .expect("this test needs root (it gives a file to uid 65534)");
        let err = open(&theirs).unwrap_err();
        assert!(err.contains("owned by uid 65534"), "{err}");
        let fresh = dir.path().join("new.log");
        open(&fresh).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o640);
    }
}

//! One pruning job as a timer or `prunegate daemon` runs it: judge a configured disk gate (the
//! common, cheap way out), take the run lock, connect, run, write the sinks, log one summary
//! line. The lock is held until the sinks are written.

use super::inputs::disk_before_daemon;
use super::runner;
use super::Interrupt;
use crate::gates::{self, GateName, GateResult};
use crate::lock::{self, LockError};
use crate::model::Command;
use crate::report::{Report, StepStatus};
use crate::settings::Settings;

/// Runs `command` and returns its report; every failure is in the report, none is a panic.
/// The sinks are written (and the lock released) once the report is complete.
pub async fn run(
    command: Command,
    settings: &Settings,
    dry_run: bool,
    interrupt: &Interrupt,
) -> Report {
    let started = std::time::Instant::now();
    let prunes = command != Command::Check && !dry_run;
    let (mut report, lock) = judge_and_run(command, settings, dry_run, interrupt).await;
    report.finish(started);
    let report = finish(&settings.sinks, report, prunes);
    drop(lock);
    report
}

/// The job up to its report: the early disk gate, the lock (returned, so that it is held
/// while the sinks are written), the connection and the run.
async fn judge_and_run(
    command: Command,
    settings: &Settings,
    dry_run: bool,
    interrupt: &Interrupt,
) -> (Report, Option<lock::RunLock>) {
    let prunes = command != Command::Check && !dry_run;
    let host = settings.address.as_str();
    let until = settings.prune.until();
    // Configured disk paths are judged first: on a healthy host that is the whole run.
    let early = disk_before_daemon(&settings.gates.disk, command);
    if let Some(readings) = &early {
        let gate = gates::disk::evaluate(&settings.gates.disk, &Ok(readings.clone()));
        if !gate.open {
            // Use is learned while the disk is fine.
            let learned = match settings.retention.is_some() && prunes {
                true => Some(super::retention::learn_only(settings).await),
                false => None,
            };
            let mut report = Report::skipped_by(command, host, until, gate);
            if let Some((gaps, warning)) = learned {
                report.history_gaps = gaps;
                report.warnings.extend(warning);
            }
            return (report, None);
        }
    }
    let held = match settings.lock.as_deref().filter(|_| prunes) {
        None => None,
        Some(path) => match lock::acquire(path) {
            Ok(l) => Some(l),
            Err(held @ LockError::Held { .. }) => {
                let gate = GateResult::closed(
                    GateName::Lock,
                    format!("{held}; another prunegate run or a deploy holding `flock -s` on it"),
                    serde_json::json!({ "path": path }),
                );
                return (Report::skipped_by(command, host, until, gate), None);
            }
            Err(e) => return (Report::failed(command, host, until, e.to_string()), None),
        },
    };
    match super::inputs::connect(settings) {
        Ok(daemon) => {
            let daemon = daemon.with_interrupt(interrupt);
            let report = runner::execute(command, settings, &daemon, dry_run, interrupt, early);
            (report.await, held)
        }
        Err(e) => {
            let error = format!("cannot reach the Docker daemon at {host}: {e}");
            (Report::failed(command, host, until, error), held)
        }
    }
}

/// Writes the sinks of a pruning run and logs the warnings and one summary line.
fn finish(sinks: &crate::settings::SinkSettings, mut report: Report, prunes: bool) -> Report {
    if prunes {
        report
            .warnings
            .extend(crate::sinks::write_all(sinks, &report));
    }
    for w in &report.warnings {
        tracing::error!(run_id = %report.run_id, "{w}");
    }
    let gates: Vec<String> = report
        .gates
        .iter()
        .map(|g| {
            format!(
                "{}={}",
                g.name.as_str(),
                if !g.enabled {
                    "off"
                } else if g.open {
                    "open"
                } else {
                    "closed"
                }
            )
        })
        .collect();
    tracing::info!(
        run_id = %report.run_id,
        command = report.command.as_str(),
        outcome = report.outcome_name(),
        gates = %gates.join(" "),
        removed = report.steps.iter().filter(|s| s.status == StepStatus::Done).map(|s| s.count).sum::<usize>(),
        reclaimed_bytes = report.reclaimed_bytes,
        api_calls = report.api_calls,
        duration_ms = report.duration_ms,
        error = report.error.as_deref().unwrap_or(""),
        "prunegate {} {}",
        report.command.as_str(),
        report.outcome_name()
    );
    report
}

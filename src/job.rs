//! One pruning job as a timer or `prunegate daemon` runs it: judge a configured disk gate (the
//! common, cheap way out), take the run lock, connect, run, write the sinks, log one summary
//! line. The lock is held until the sinks are written.

use crate::config::Config;
use crate::docker::Daemon;
use crate::gates::{GateName, GateResult};
use crate::lock::{self, LockError};
use crate::report::Report;
use crate::runner::{self, Command, Interrupt};

/// Runs `command` and returns its report; every failure is in the report, none is a panic.
pub async fn run(
    command: Command,
    config: &Config,
    host: &str,
    dry_run: bool,
    interrupt: &Interrupt,
) -> Report {
    let started = std::time::Instant::now();
    let prunes = command != Command::Check && !dry_run;
    let older_than = config.prune.older_than.as_str();
    let done = |mut report: Report| {
        report.finish(started);
        finish(config, report, prunes)
    };
    if let Some(closed) = runner::disk_closed_up_front(command, config) {
        return done(Report::skipped_by(
            command.as_str(),
            host,
            older_than,
            closed,
        ));
    }
    let _lock = if prunes && config.lock.enabled {
        match lock::acquire(&config.lock.path) {
            Ok(l) => Some(l),
            Err(held @ LockError::Held { .. }) => {
                let gate = GateResult::closed(
                    GateName::Lock,
                    format!("{held}; another prunegate run or a deploy holding `flock -s` on it"),
                    serde_json::json!({ "path": config.lock.path }),
                );
                return done(Report::skipped_by(command.as_str(), host, older_than, gate));
            }
            Err(e) => {
                return done(Report::failed(
                    command.as_str(),
                    host,
                    older_than,
                    e.to_string(),
                ))
            }
        }
    } else {
        None
    };
    match Daemon::connect(
        host,
        config.docker.read_timeout.as_std(),
        config.docker.prune_timeout.as_std(),
    ) {
        Ok(daemon) => finish(
            config,
            runner::execute(command, config, &daemon, dry_run, interrupt).await,
            prunes,
        ),
        Err(e) => {
            let error = format!("cannot reach the Docker daemon at {host}: {e}");
            done(Report::failed(command.as_str(), host, older_than, error))
        }
    }
}

fn finish(config: &Config, mut report: Report, prunes: bool) -> Report {
    if prunes {
        report
            .warnings
            .extend(crate::sinks::write_all(config, &report));
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
        command = report.command,
        outcome = report.outcome_name(),
        gates = %gates.join(" "),
        removed = report.steps.iter().filter(|s| s.status == crate::report::StepStatus::Done).map(|s| s.count).sum::<usize>(),
        reclaimed_bytes = report.reclaimed_bytes,
        api_calls = report.api_calls,
        duration_ms = report.duration_ms,
        error = report.error.as_deref().unwrap_or(""),
        "prunegate {} {}",
        report.command,
        report.outcome_name()
    );
    report
}

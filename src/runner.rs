//! The order of a run: snapshot → gates → plan → steps, each step behind a fresh re-check.
//!
//! This is the only module that both holds a daemon connection and calls the gates, and it
//! decides nothing itself: the gates decide whether to go on, the plan what a dry run lists, the
//! daemon's prune endpoints what goes.

use crate::config::Config;
use crate::docker::inventory::Inventory;
use crate::docker::snapshot::{read_disk, Snapshot};
use crate::docker::{Daemon, ReadError};
use crate::gates::{self, GateName, GateResult};
use crate::plan::{self, Class, Policy};
use crate::report::{Outcome, Report, StepReport, StepStatus};
use crate::support;
use crate::uptime::{self, Uptime};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Check,
    Run,
    Reclaim,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Check => "check",
            Command::Run => "run",
            Command::Reclaim => "reclaim",
        }
    }
}

/// Gates that depend only on what the daemon is doing: re-checked before every step.
fn activity_gates(config: &Config, snapshot: &Snapshot) -> [GateResult; 2] {
    [
        gates::live_runs::evaluate(&config.gates.live_runs, &config.live_runs_regex(), snapshot),
        gates::converging::evaluate(&config.gates.converging, snapshot),
    ]
}

/// Every gate over one snapshot and one uptime reading. `reclaim` does not judge the disk gate,
/// and says so.
pub fn evaluate_gates(
    command: Command,
    config: &Config,
    snapshot: &Snapshot,
    uptime: &Uptime,
) -> Vec<GateResult> {
    let disk = if command == Command::Reclaim {
        GateResult::open(
            GateName::Disk,
            "not judged: reclaim skips the disk gate",
            serde_json::Value::Null,
        )
    } else {
        gates::disk::evaluate(
            &config.gates.disk,
            &read_disk(config.gates.disk.path.as_ref(), snapshot),
        )
    };
    let [live, converging] = activity_gates(config, snapshot);
    let grace = gates::grace::evaluate(&config.gates.grace, uptime);
    vec![disk, live, converging, grace]
}

/// The disk gate of a `run`, when it can be judged without the daemon and is closed: the common
/// case on a healthy host, which then costs one statvfs (no lock, no connection, no request).
pub fn disk_closed_up_front(command: Command, config: &Config) -> Option<GateResult> {
    let d = &config.gates.disk;
    let path = d
        .path
        .as_ref()
        .filter(|_| command == Command::Run && d.enabled)?;
    let reading = crate::disk::read(
        path.clone(),
        crate::docker::snapshot::DiskPathSource::Config,
    );
    Some(gates::disk::evaluate(d, &Ok(reading))).filter(|g| !g.open)
}

fn enabled_classes(config: &Config) -> Vec<Class> {
    Class::ORDER
        .into_iter()
        .filter(|c| match c {
            Class::Containers => config.prune.containers,
            Class::Images => config.prune.images,
            Class::BuildCache => config.prune.build_cache,
        })
        .collect()
}

/// Set by SIGTERM/SIGINT; checked only between steps, so a decision is never cut in half and a
/// prune the daemon has started is allowed to finish.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Interrupt {
    pub fn raise(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn raised(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Runs one command against the daemon and returns its report; never panics on daemon errors.
pub async fn execute(
    command: Command,
    config: &Config,
    daemon: &Daemon,
    dry_run: bool,
    interrupt: &Interrupt,
) -> Report {
    let started = Instant::now();
    let mut report = Report::new(
        command.as_str(),
        &daemon.host,
        config.prune.older_than.as_str(),
        Outcome::Error,
    );
    let snapshot = Snapshot::take(daemon).await;
    let uptime = if config.gates.grace.enabled {
        uptime::read(&daemon.host)
    } else {
        Uptime::unknown()
    };
    report.gates = evaluate_gates(command, config, &snapshot, &uptime);
    let all_open = report.gates.iter().all(|g| g.open);
    report.outcome = if let Err(e) = &snapshot.info {
        report.error = Some(format!(
            "cannot reach the Docker daemon at {}: {e}",
            daemon.host
        ));
        Outcome::Error
    } else if command == Command::Check {
        if all_open {
            Outcome::Open
        } else {
            Outcome::Closed
        }
    } else if !all_open {
        Outcome::Skipped
    } else if dry_run {
        dry_run_steps(config, daemon, &mut report, server_version(&snapshot)).await
    } else {
        let outcome = prune_steps(config, daemon, &mut report, interrupt).await;
        if matches!(outcome, Outcome::Pruned | Outcome::NothingToDo) {
            report.advisory = advisory(config, daemon, &snapshot).await;
        }
        outcome
    };
    report.reclaimed_bytes = report.steps.iter().map(|s| s.reclaimed_bytes).sum();
    report.api_calls = daemon.api_calls();
    report.finish(started);
    report
}

/// After a full pass: if the disk is still over a threshold, how much space the policy keeps.
async fn advisory(
    config: &Config,
    daemon: &Daemon,
    snapshot: &Snapshot,
) -> Option<crate::report::Advisory> {
    let reading = read_disk(config.gates.disk.path.as_ref(), snapshot).ok()?;
    let stat = reading.stat.ok()?;
    let (blocks, inodes) = gates::disk::over_thresholds(&config.gates.disk, &stat);
    if !(blocks || inodes) {
        return None;
    }
    match daemon.disk_usage().await {
        Ok(usage) => Some(usage.advisory(stat.used_percent())),
        Err(e) => {
            tracing::warn!(error = %e, "disk still over the threshold, but /system/df could not be read for the advisory");
            None
        }
    }
}

fn policy(config: &Config) -> Policy {
    let older = config.prune.older_than.as_std();
    Policy {
        cutoff: chrono::Utc::now().timestamp() - older.as_secs() as i64,
        no_age_limit: config.prune.older_than.is_zero(),
        containers: config.prune.containers,
    }
}

/// The engine version the daemon reported, for [`support::refuse`].
fn server_version(snapshot: &Snapshot) -> Option<&str> {
    snapshot.info.as_ref().ok()?.server_version.as_deref()
}

async fn dry_run_steps(
    config: &Config,
    daemon: &Daemon,
    report: &mut Report,
    version: Option<&str>,
) -> Outcome {
    let classes = enabled_classes(config);
    let inventory = Inventory::take(daemon, classes.contains(&Class::BuildCache)).await;
    let policy = policy(config);
    let mut failed = None;
    let mut images_step_removes = false;
    for class in classes {
        if let Some(why) = support::refuse(class, version) {
            report.steps.push(StepReport::skipped(class, why));
            continue;
        }
        report.steps.push(
            match plan::predict(class, &inventory, &policy, images_step_removes) {
                Ok(prediction) => {
                    let objects = prediction.remove;
                    images_step_removes |= class == Class::Images && !objects.is_empty();
                    StepReport {
                        class,
                        status: StepStatus::WouldRemove,
                        count: objects.len(),
                        reclaimed_bytes: objects.iter().filter_map(|o| o.size_bytes).sum(),
                        items: objects.iter().map(|o| o.id.clone()).collect(),
                        reason: None,
                        objects: Some(objects),
                        may_also_remove: Some(prediction.may_also_remove).filter(|m| !m.is_empty()),
                    }
                }
                Err(e) => {
                    failed.get_or_insert_with(|| format!("cannot list {}: {e}", class.as_str()));
                    StepReport {
                        status: StepStatus::Failed,
                        ..StepReport::skipped(class, format!("cannot list: {e}"))
                    }
                }
            },
        );
    }
    match failed {
        Some(e) => {
            report.error = Some(e);
            Outcome::Error
        }
        None => Outcome::DryRun,
    }
}

/// Whether a failed prune is a reason to skip the step rather than a failure of the run.
fn skip_reason(class: Class, e: &ReadError) -> Option<String> {
    match e.status {
        Some(409) => Some(format!(
            "another prune is already running on the daemon: {}",
            e.message
        )),
        Some(404) if class == Class::BuildCache => {
            Some("this daemon has no build-cache prune endpoint (404)".to_string())
        }
        // Never retried without the filter: that could remove what the cut-off keeps.
        Some(400) if e.message.contains("filter") => Some(format!(
            "this daemon does not accept prunegate's filters ({}): not pruned without them",
            e.message
        )),
        _ => None,
    }
}

async fn prune_steps(
    config: &Config,
    daemon: &Daemon,
    report: &mut Report,
    interrupt: &Interrupt,
) -> Outcome {
    let until = config.prune.older_than.as_str();
    let classes = enabled_classes(config);
    let mut stop: Option<(Outcome, String)> = None;
    for class in classes {
        if stop.is_none() && interrupt.raised() {
            stop = Some((
                Outcome::Interrupted,
                "not run: interrupted by a signal".into(),
            ));
        }
        if let Some((_, why)) = &stop {
            report.steps.push(StepReport::skipped(class, why.clone()));
            continue;
        }
        // Re-read and re-judge the activity gates right before this destructive step.
        let fresh = Snapshot::take(daemon).await;
        if let Err(e) = &fresh.info {
            report.error = Some(format!(
                "lost the Docker daemon before the {} step: {e}",
                class.as_str()
            ));
            stop = Some((
                Outcome::Error,
                "not run: the daemon stopped answering".into(),
            ));
            report.steps.push(StepReport::skipped(
                class,
                "not run: the daemon stopped answering",
            ));
            continue;
        }
        if let Some(closed) = gates::first_closed(&activity_gates(config, &fresh)) {
            let why = format!(
                "not run: gate {} closed: {}",
                closed.name.as_str(),
                closed.reason
            );
            report.stopped_by = Some(closed.clone());
            report.steps.push(StepReport::skipped(class, why.clone()));
            stop = Some((Outcome::Skipped, why));
            continue;
        }
        if let Some(why) = support::refuse(class, server_version(&fresh)) {
            report.steps.push(StepReport::skipped(class, why));
            continue;
        }
        let result = match class {
            Class::Containers => daemon.prune_containers(until).await,
            Class::Images => daemon.prune_images(until).await,
            Class::BuildCache => {
                daemon
                    .prune_build_cache(until, config.audit.path.is_some())
                    .await
            }
        };
        report.steps.push(match result {
            Ok(p) => StepReport {
                class,
                status: StepStatus::Done,
                count: p.objects.len(),
                reclaimed_bytes: p.reclaimed_bytes,
                items: p.objects.iter().map(|o| o.id.clone()).collect(),
                reason: None,
                objects: Some(p.objects),
                may_also_remove: None,
            },
            Err(e) => match skip_reason(class, &e) {
                Some(reason) => StepReport::skipped(class, reason),
                None => {
                    let why = format!("{} prune failed: {e}", class.as_str());
                    report.error = Some(why.clone());
                    stop = Some((Outcome::Error, "not run: an earlier step failed".into()));
                    StepReport {
                        status: StepStatus::Failed,
                        ..StepReport::skipped(class, why)
                    }
                }
            },
        });
    }
    match stop {
        Some((outcome, _)) => outcome,
        None if report.steps.iter().any(|s| s.count > 0) => Outcome::Pruned,
        None => Outcome::NothingToDo,
    }
}

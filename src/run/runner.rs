//! The order of a command: gate inputs → gates → plan or steps, each step behind a fresh
//! re-check. Decisions are the gates', the engine's and the plan's; this module only sequences
//! them and the daemon calls they lead to.

use super::images;
use super::inputs::{self, disk_reading};
use super::recheck::{halted, recheck, Halt};
use super::retention;
use super::Interrupt;
use crate::disk::DiskReading;
use crate::docker::inventory::Inventory;
use crate::docker::prune::Pruned;
use crate::docker::snapshot::Snapshot;
use crate::docker::Daemon;
use crate::engine::{self, Engine};
use crate::gates::{
    self,
    disk::{fullest, over_thresholds},
};
use crate::model::{Class, Command, PruneClass};
use crate::plan::{self, Policy};
use crate::report::{
    self, Advisory, Course, ManagerCalls, Outcome, Report, StepReport, StepStatus,
};
use crate::settings::{DiskGate, Settings};
use std::time::Instant;

/// Runs one command against the daemon and returns its report; never panics on daemon errors.
/// `early` is a disk reading the job took before connecting, reused for the disk gate.
pub async fn execute(
    command: Command,
    settings: &Settings,
    daemon: &Daemon,
    dry_run: bool,
    interrupt: &Interrupt,
    early: Option<Vec<DiskReading>>,
) -> Report {
    let started = Instant::now();
    let mut report = Report::new(
        command,
        daemon.address.as_str(),
        settings.prune.until(),
        Outcome::Error,
    );
    let inputs = inputs::read(&settings.gates, command, daemon, early).await;
    report.gates = gates::evaluate_all(&settings.gates, command, &inputs);
    // A signal during the reads cut them short: nothing was decided on them, nothing removed.
    if interrupt.raised() {
        report.outcome = Outcome::Interrupted;
        report.error = Some("interrupted by a signal while reading the daemon".into());
        report.api_calls = daemon.api_calls();
        return report;
    }
    let all_open = report.gates.iter().all(|g| g.open);
    // Use is learned on every run that could prune, whatever the gates say.
    let learned = retention::learned(
        settings.retention.as_ref(),
        &settings.sinks.state_dir,
        daemon,
        &inputs,
        command,
        dry_run,
    )
    .await;
    if let Some(l) = &learned {
        report.warnings.extend(l.warning.clone());
        report.history_gaps = l.gaps.clone();
    }
    let engine = inputs.snapshot.engine.as_ref().map(Engine::unsupported);
    let course = report::course(command, dry_run, engine, all_open, daemon.address.as_str());
    // The steps run (or are predicted) first; the report takes their outcome once.
    let ran = match (course, &inputs.snapshot.engine) {
        (Course::End(outcome, error), _) => Ran::Ended(outcome, error),
        (Course::DryRun, Ok(engine)) => {
            let (steps, error) =
                dry_run_steps(settings, daemon, engine, &inputs.snapshot, learned.as_ref()).await;
            Ran::Predicted(steps, error)
        }
        (Course::Prune, Ok(_)) => {
            let (steps, halt) = prune_steps(settings, daemon, interrupt, learned.as_ref()).await;
            // Only a full pass is advised on; a halted one is not read for it.
            let advice = match &halt {
                None => advisory(&settings.gates.disk, daemon, &inputs.snapshot).await,
                Some(_) => None,
            };
            Ran::Pruned(steps, halt, advice)
        }
        // `course` goes on only with an engine.
        (_, Err(_)) => Ran::Ended(report.outcome, None),
    };
    match ran {
        Ran::Ended(outcome, error) => {
            report.outcome = outcome;
            report.error = error;
        }
        Ran::Predicted(steps, error) => report.predicted(steps, error),
        Ran::Pruned(steps, halt, advice) => report.pruned(steps, halt, advice),
    }
    report.api_calls = daemon.api_calls();
    report.manager_api_calls = daemon
        .managers
        .iter()
        .flatten()
        .filter(|m| m.api_calls() > 0)
        .map(|m| ManagerCalls {
            address: m.address.as_str().to_string(),
            api_calls: m.api_calls(),
        })
        .collect();
    report.finish(started);
    report
}

/// How a command's course ended: without steps, with the steps predicted (and the first
/// listing error), or with the steps run (the halt that stopped them, the advisory).
enum Ran {
    Ended(Outcome, Option<String>),
    Predicted(Vec<StepReport>, Option<String>),
    Pruned(Vec<StepReport>, Option<Halt>, Option<Advisory>),
}

/// After a full pass: if the disk is still over a threshold, how much space the policy keeps.
/// The disk is read again on purpose: the question is how full it is after the prune.
async fn advisory(gate: &DiskGate, daemon: &Daemon, snapshot: &Snapshot) -> Option<Advisory> {
    let readings = disk_reading(gate, &snapshot.engine).ok()?;
    let (_, stat) = fullest(gate, &readings)?;
    let (blocks, inodes) = over_thresholds(gate, &stat);
    if !(blocks || inodes) {
        return None;
    }
    match daemon.disk_usage().await {
        Ok(usage) => Some(Advisory::from_usage(&usage, stat.used_percent())),
        Err(e) => {
            tracing::warn!(error = %e, "disk still over the threshold, but /system/df could not be read for the advisory");
            None
        }
    }
}

/// The dry run's steps, predicted from one inventory, and the first listing error if any
/// (the run's error; the other classes are still listed).
async fn dry_run_steps(
    settings: &Settings,
    daemon: &Daemon,
    engine: &Engine,
    snapshot: &Snapshot,
    learned: Option<&retention::Learned>,
) -> (Vec<StepReport>, Option<String>) {
    let classes = &settings.prune.classes;
    let until = engine
        .image_until_is_record_time()
        .then(|| settings.prune.until());
    let judged = classes.contains(&Class::Images) && engine.images_step_judges();
    let (inventory, known) = tokio::join!(
        Inventory::take(daemon, classes.contains(&Class::BuildCache), until),
        async {
            match judged {
                true => Some(images::knowledge(&settings.sinks.state_dir, daemon, snapshot).await),
                false => None,
            }
        }
    );
    let judging = known.as_ref().map(|k| k.judging());
    let policy = Policy::at(&settings.prune, chrono::Utc::now().timestamp());
    let mut failed = None;
    let mut images_step_removes = false;
    let mut steps = Vec::new();
    for &class in classes {
        let Some(prune) = class.prune() else {
            // The retention class, judged on the disk less what the safe classes free.
            let freed: u64 = steps.iter().map(|s: &StepReport| s.reclaimed_bytes).sum();
            steps.push(match (&settings.retention, learned) {
                (Some(r), Some(l)) => {
                    let (gate, dir) = (&settings.gates.disk, &settings.sinks.state_dir);
                    retention::predict(r, gate, dir, daemon, snapshot, l, freed).await
                }
                _ => StepReport::skipped(class, "removes nothing: the use history was not read"),
            });
            continue;
        };
        if let Some(why) = engine.refuse(class) {
            steps.push(StepReport::skipped(class, why));
            continue;
        }
        steps.push(
            match plan::predict(
                prune,
                &inventory,
                &policy,
                judging.as_ref(),
                images_step_removes,
            ) {
                Ok(prediction) => {
                    images_step_removes |= class == Class::Images
                        && (!prediction.remove.is_empty() || prediction.pending);
                    let reclaimed = prediction.remove.iter().filter_map(|o| o.size_bytes).sum();
                    let mut step = StepReport::with_objects(
                        class,
                        StepStatus::WouldRemove,
                        prediction.remove,
                        reclaimed,
                        Some(prediction.may_also_remove).filter(|m| !m.is_empty()),
                    );
                    if class == Class::Images && judged {
                        step.kept = Some(prediction.kept.into_iter().map(Into::into).collect());
                        step.reason = known.as_ref().and_then(|k| k.warning.clone());
                    }
                    step
                }
                Err(e) => {
                    failed.get_or_insert_with(|| format!("cannot list {}: {e}", class.as_str()));
                    StepReport::failed(class, format!("cannot list: {e}"))
                }
            },
        );
    }
    (steps, failed)
}

/// The real steps, in class order; after a halt the remaining classes are listed as not run.
async fn prune_steps(
    settings: &Settings,
    daemon: &Daemon,
    interrupt: &Interrupt,
    learned: Option<&retention::Learned>,
) -> (Vec<StepReport>, Option<Halt>) {
    let mut steps = Vec::new();
    let mut halt: Option<Halt> = None;
    for &class in &settings.prune.classes {
        if halt.is_none() && interrupt.raised() {
            halt = Some(Halt::Interrupted);
        }
        if let Some(h) = &halt {
            steps.push(StepReport::skipped(class, h.note()));
            continue;
        }
        let (step, stop) = match (class.prune(), &settings.retention, learned) {
            (Some(prune), _, _) => prune_step(prune, settings, daemon, interrupt).await,
            (None, Some(r), Some(l)) => match recheck(class, &settings.gates, daemon).await {
                Ok(fresh) => {
                    let (gates, dir) = (&settings.gates, &settings.sinks.state_dir);
                    retention::remove(r, gates, dir, daemon, &fresh, l, interrupt).await
                }
                Err(halt) => halted(class, halt),
            },
            (None, _, _) => (
                StepReport::skipped(class, "removes nothing: the use history was not read"),
                None,
            ),
        };
        steps.push(step);
        halt = stop;
    }
    (steps, halt)
}

/// One step: re-read and re-judge the activity gates right before it, then prune (or skip it
/// where the engine refuses the class or answers with a known refusal). Its report, and the
/// halt it ends the run with, if it does.
async fn prune_step(
    prune: PruneClass,
    settings: &Settings,
    daemon: &Daemon,
    interrupt: &Interrupt,
) -> (StepReport, Option<Halt>) {
    let class = Class::from(prune);
    let fresh = match recheck(class, &settings.gates, daemon).await {
        Ok(fresh) => fresh,
        Err(halt) => return halted(class, halt),
    };
    let engine = &fresh.engine;
    if let Some(why) = engine.refuse(class) {
        return (StepReport::skipped(class, why), None);
    }
    if class == Class::Images && engine.images_step_judges() {
        let (prune, gates, dir) = (&settings.prune, &settings.gates, &settings.sinks.state_dir);
        return images::remove_junk(
            prune,
            gates,
            dir,
            daemon,
            &fresh.snapshot,
            engine,
            interrupt,
        )
        .await;
    }
    let until = settings.prune.until();
    let result = match prune {
        PruneClass::Containers => daemon.prune_containers(until).await,
        PruneClass::Images => daemon.prune_images(until).await,
        PruneClass::BuildCache => {
            daemon
                .prune_build_cache(until, settings.prune.describe_build_cache)
                .await
        }
    };
    match result {
        Ok(Pruned {
            objects,
            reclaimed_bytes,
        }) => (
            StepReport::with_objects(class, StepStatus::Done, objects, reclaimed_bytes, None),
            None,
        ),
        Err(e) => match engine::skip_reason(class, &e) {
            Some(reason) => (StepReport::skipped(class, reason), None),
            None => {
                let why = format!("{} prune failed: {e}", class.as_str());
                (
                    StepReport::failed(class, why.clone()),
                    Some(Halt::Failed(why)),
                )
            }
        },
    }
}

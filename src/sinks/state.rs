//! What must outlive a run: cumulative totals and the streaks the metrics report. A small JSON
//! file in `state.dir`, rewritten atomically after each run that writes metrics.

use super::atomic::{load_json, save_json};
use crate::gates::GateName;
use crate::report::{Outcome, Report};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Objects removed, per class, over all runs.
    pub removed_objects: BTreeMap<String, u64>,
    /// Bytes the daemon reported freed, per class, over all runs.
    pub reclaimed_bytes: BTreeMap<String, u64>,
    /// Runs, per outcome.
    pub runs: BTreeMap<String, u64>,
    /// Since when (Unix seconds) the disk has been under pressure but another gate kept every
    /// run from pruning; `None` when not blocked.
    pub blocked_since: Option<i64>,
    /// When a run last completed a pruning pass.
    pub last_pruned: Option<i64>,
}

/// Reads the state; a missing file is a fresh start, an unreadable one is an error (the totals
/// would otherwise restart silently from zero).
pub fn load(dir: &Path) -> Result<State, String> {
    Ok(load_json(dir, "state.json", "state file")?.unwrap_or_default())
}

pub fn save(dir: &Path, state: &State) -> Result<(), String> {
    save_json(dir, "state.json", state)
}

impl State {
    /// Folds one finished run into the totals.
    pub fn record(&mut self, report: &Report, now: i64) {
        *self
            .runs
            .entry(report.outcome_name().to_string())
            .or_default() += 1;
        for step in &report.steps {
            *self
                .removed_objects
                .entry(step.class.as_str().to_string())
                .or_default() += if step.status == crate::report::StepStatus::Done {
                step.count as u64
            } else {
                0
            };
            *self
                .reclaimed_bytes
                .entry(step.class.as_str().to_string())
                .or_default() += if step.status == crate::report::StepStatus::Done {
                step.reclaimed_bytes
            } else {
                0
            };
        }
        let pressure = report
            .gates
            .iter()
            .any(|g| g.name == GateName::Disk && g.enabled && g.open && g.evidence.is_object());
        match report.outcome {
            Outcome::Pruned | Outcome::NothingToDo => {
                self.blocked_since = None;
                self.last_pruned = Some(now);
            }
            Outcome::Skipped if pressure => {
                self.blocked_since.get_or_insert(now);
            }
            Outcome::Skipped => self.blocked_since = None,
            _ => {}
        }
    }
}

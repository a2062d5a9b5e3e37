//! Prometheus metrics in the node-exporter textfile format (docs/operations.md lists them).

use super::state::State;
use crate::gates::GateName;
use crate::model::Class;
use crate::report::{Advisory, Outcome, Report, StepStatus};
use std::fmt::Write as _;

const OUTCOMES: [Outcome; 5] = [
    Outcome::Pruned,
    Outcome::NothingToDo,
    Outcome::Skipped,
    Outcome::Error,
    Outcome::Interrupted,
];

struct Out(String);

impl Out {
    /// A family with one sample per prune class.
    fn per_class(&mut self, name: &str, kind: &str, help: &str, value: impl Fn(Class) -> u64) {
        self.family(name, kind, help);
        for class in Class::ALL {
            self.sample(name, &[("class", class.as_str())], value(class) as f64);
        }
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}=\"{}\"",
                    v.replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n")
                )
            })
            .collect();
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

fn b(v: bool) -> f64 {
    if v {
        1.0
    } else {
        0.0
    }
}

/// The whole textfile for one finished run; `threshold_percent` is `gates.disk.used_percent`
/// and `state` the totals, when they could be read.
pub fn render(threshold_percent: u8, report: &Report, state: Option<&State>, now: i64) -> String {
    let mut m = Out(String::new());
    last_run(&mut m, report, now);
    gates(&mut m, report);
    disk(&mut m, report, threshold_percent);
    removed(&mut m, report);
    if let Some(a) = &report.advisory {
        advisory(&mut m, a);
    }
    history_gaps(&mut m, report);
    if let Some(state) = state {
        totals(&mut m, state);
    }
    m.0
}

/// The use history's gaps the last run found: how many, how long, how many images each made
/// count as used (0 when none: an alert can watch it).
fn history_gaps(m: &mut Out, report: &Report) {
    m.family(
        "prunegate_retention_history_gaps",
        "gauge",
        "Stretches of time the last run found the retention use history could not observe.",
    );
    m.sample(
        "prunegate_retention_history_gaps",
        &[],
        report.history_gaps.len() as f64,
    );
    m.family(
        "prunegate_retention_history_gap_seconds",
        "gauge",
        "Their total length.",
    );
    m.sample(
        "prunegate_retention_history_gap_seconds",
        &[],
        report
            .history_gaps
            .iter()
            .map(|g| (g.to - g.from).max(0) as f64)
            .sum(),
    );
    m.family(
        "prunegate_retention_history_gap_images",
        "gauge",
        "Images the last run's gaps made count as used at their end.",
    );
    m.sample(
        "prunegate_retention_history_gap_images",
        &[],
        report.history_gaps.iter().map(|g| g.images as f64).sum(),
    );
}

/// When the last run finished, how long it took, how it ended, what it cost.
fn last_run(m: &mut Out, report: &Report, now: i64) {
    m.family(
        "prunegate_last_run_timestamp_seconds",
        "gauge",
        "Unix time at which the last run finished.",
    );
    m.sample("prunegate_last_run_timestamp_seconds", &[], now as f64);
    m.family(
        "prunegate_last_run_duration_seconds",
        "gauge",
        "Wall time of the last run.",
    );
    m.sample(
        "prunegate_last_run_duration_seconds",
        &[],
        report.duration_ms as f64 / 1000.0,
    );
    m.family(
        "prunegate_last_run_outcome",
        "gauge",
        "1 for the outcome of the last run, 0 for the others.",
    );
    for o in OUTCOMES {
        m.sample(
            "prunegate_last_run_outcome",
            &[("outcome", o.name())],
            b(report.outcome == o),
        );
    }
    m.family(
        "prunegate_last_run_api_calls",
        "gauge",
        "Engine API requests the last run made.",
    );
    m.sample("prunegate_last_run_api_calls", &[], report.api_calls as f64);
}

/// Each gate's state in the last run.
fn gates(m: &mut Out, report: &Report) {
    m.family(
        "prunegate_gate_open",
        "gauge",
        "1 if the gate was open in the last run, 0 if closed (a disabled gate is open).",
    );
    for g in &report.gates {
        m.sample(
            "prunegate_gate_open",
            &[("gate", g.name.as_str())],
            b(g.open),
        );
    }
    m.family(
        "prunegate_gate_enabled",
        "gauge",
        "1 if the gate is enabled in the configuration.",
    );
    for g in &report.gates {
        m.sample(
            "prunegate_gate_enabled",
            &[("gate", g.name.as_str())],
            b(g.enabled),
        );
    }
}

/// The watched filesystem's use, and the threshold the disk gate opens at.
fn disk(m: &mut Out, report: &Report, threshold_percent: u8) {
    if let Some(disk) = report.gates.iter().find(|g| g.name == GateName::Disk) {
        let ev = &disk.evidence;
        let path = ev["path"].as_str().unwrap_or("");
        m.family(
            "prunegate_disk_used_percent",
            "gauge",
            "Use% of the watched filesystem, as df computes it.",
        );
        if let Some(v) = ev["used_percent"].as_u64() {
            m.sample("prunegate_disk_used_percent", &[("path", path)], v as f64);
        }
        m.family(
            "prunegate_disk_inodes_used_percent",
            "gauge",
            "IUse% of the watched filesystem, as df -i computes it.",
        );
        if let Some(v) = ev["inodes_used_percent"].as_u64() {
            m.sample(
                "prunegate_disk_inodes_used_percent",
                &[("path", path)],
                v as f64,
            );
        }
    }
    m.family(
        "prunegate_disk_threshold_percent",
        "gauge",
        "gates.disk.used_percent: the disk gate opens at or above it.",
    );
    m.sample(
        "prunegate_disk_threshold_percent",
        &[],
        f64::from(threshold_percent),
    );
}

/// What the last run removed, per class.
fn removed(m: &mut Out, report: &Report) {
    let done = |class: Class| {
        report
            .steps
            .iter()
            .find(|s| s.class == class && s.status == StepStatus::Done)
    };
    m.per_class(
        "prunegate_last_run_removed_objects",
        "gauge",
        "Objects removed by the last run, per class.",
        |class| done(class).map_or(0, |s| s.count as u64),
    );
    m.per_class(
        "prunegate_last_run_reclaimed_bytes",
        "gauge",
        "Bytes the daemon reported freed in the last run, per class.",
        |class| done(class).map_or(0, |s| s.reclaimed_bytes),
    );
}

/// What the policy keeps that a blanket prune would take.
fn advisory(m: &mut Out, a: &Advisory) {
    m.family(
        "prunegate_advisory_reclaimable_bytes",
        "gauge",
        "After a full pass with the disk still over the threshold: space held by what prunegate never removes.",
    );
    m.sample(
        "prunegate_advisory_reclaimable_bytes",
        &[("kind", "unused_tagged_images")],
        a.unused_tagged_images_bytes as f64,
    );
    m.sample(
        "prunegate_advisory_reclaimable_bytes",
        &[("kind", "unused_volumes")],
        a.unused_volumes_bytes as f64,
    );
}

/// The totals over all runs, from the state file.
fn totals(m: &mut Out, state: &State) {
    let total = |map: &std::collections::BTreeMap<String, u64>, class: Class| {
        map.get(class.as_str()).copied().unwrap_or(0)
    };
    m.per_class(
        "prunegate_removed_objects_total",
        "counter",
        "Objects removed over all runs, per class.",
        |class| total(&state.removed_objects, class),
    );
    m.per_class(
        "prunegate_reclaimed_bytes_total",
        "counter",
        "Bytes freed over all runs, per class.",
        |class| total(&state.reclaimed_bytes, class),
    );
    m.family(
        "prunegate_runs_total",
        "counter",
        "Runs over all time, per outcome.",
    );
    for o in OUTCOMES {
        let n = state.runs.get(o.name()).copied().unwrap_or(0);
        m.sample("prunegate_runs_total", &[("outcome", o.name())], n as f64);
    }
    m.family(
        "prunegate_blocked_since_timestamp_seconds",
        "gauge",
        "Since when the disk has been over the threshold while another gate kept every run from pruning; 0 if not blocked.",
    );
    m.sample(
        "prunegate_blocked_since_timestamp_seconds",
        &[],
        state.blocked_since.unwrap_or(0) as f64,
    );
    m.family(
        "prunegate_last_pruned_timestamp_seconds",
        "gauge",
        "Unix time of the last completed pruning pass; 0 if none yet.",
    );
    m.sample(
        "prunegate_last_pruned_timestamp_seconds",
        &[],
        state.last_pruned.unwrap_or(0) as f64,
    );
}

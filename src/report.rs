//! The one report every command produces, and how it is shown.
//!
//! Built once at the end of a command from what happened; the sinks (text on a terminal, JSON
//! for scripts) only render it. The JSON field names are a documented contract (docs/report.md).

use crate::docker::usage::{DiskUsage, ImageUsage, VolumeUsageData};
use crate::gates::GateResult;
use crate::model::{human_bytes, Candidate, Class, Command};
use serde::Serialize;
use std::fmt::Write as _;

/// Why the prune steps stopped before the last one: the one channel a step reports a stop on.
pub enum Halt {
    Interrupted,
    /// The daemon stopped answering before a step; the run's error.
    Lost(String),
    /// An activity gate closed before a step.
    Gate(GateResult),
    /// A prune call failed; the run's error.
    Failed(String),
}

impl Halt {
    /// What stopped: `gate live_runs closed: …`, `interrupted by a signal`, the error.
    pub fn why(&self) -> String {
        match self {
            Halt::Interrupted => "interrupted by a signal".into(),
            Halt::Lost(e) | Halt::Failed(e) => e.clone(),
            Halt::Gate(g) => format!("gate {} closed: {}", g.name.as_str(), g.reason),
        }
    }

    /// The reason given for every step not run because of this halt.
    pub fn note(&self) -> String {
        match self {
            Halt::Interrupted => "not run: interrupted by a signal".into(),
            Halt::Lost(_) => "not run: the daemon stopped answering".into(),
            Halt::Gate(g) => format!("not run: gate {} closed: {}", g.name.as_str(), g.reason),
            Halt::Failed(_) => "not run: an earlier step failed".into(),
        }
    }

    /// Writes the halt into the report and gives the run's outcome.
    fn into_report(self, report: &mut Report) -> Outcome {
        match self {
            Halt::Interrupted => Outcome::Interrupted,
            Halt::Lost(error) | Halt::Failed(error) => {
                report.error = Some(error);
                Outcome::Error
            }
            Halt::Gate(gate) => {
                report.stopped_by = Some(gate);
                Outcome::Skipped
            }
        }
    }
}

/// What a command does once its gates are judged ([`course`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Course {
    /// Nothing more to do: the outcome, with the run's error if it is one.
    End(Outcome, Option<String>),
    /// Predict every step.
    DryRun,
    /// Run the steps.
    Prune,
}

/// The decision the runner only carries out: a daemon that cannot be read or is not supported
/// ends the command with an error; `check` ends with the gates' verdict; a closed gate skips
/// the prune; otherwise the steps are predicted or run. `engine`: the snapshot's engine, or
/// why it could not be read.
pub fn course<E>(
    command: Command,
    dry_run: bool,
    engine: Result<Option<String>, E>,
    all_open: bool,
    address: &str,
) -> Course
where
    E: std::fmt::Display,
{
    match engine {
        Err(e) => Course::End(
            Outcome::Error,
            Some(format!("cannot reach the Docker daemon at {address}: {e}")),
        ),
        Ok(Some(unsupported)) => Course::End(Outcome::Error, Some(unsupported)),
        Ok(None) if command == Command::Check => Course::End(
            if all_open {
                Outcome::Open
            } else {
                Outcome::Closed
            },
            None,
        ),
        Ok(None) if !all_open => Course::End(Outcome::Skipped, None),
        Ok(None) if dry_run => Course::DryRun,
        Ok(None) => Course::Prune,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pruned,
    NothingToDo,
    Skipped,
    DryRun,
    Error,
    /// Stopped by SIGTERM or SIGINT between steps.
    Interrupted,
    /// `check` only: every gate open.
    Open,
    /// `check` only: some gate closed.
    Closed,
}

impl Outcome {
    /// The name used in JSON, metrics and the state file (serde's rename of the variant).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pruned => "pruned",
            Outcome::NothingToDo => "nothing_to_do",
            Outcome::Skipped => "skipped",
            Outcome::DryRun => "dry_run",
            Outcome::Error => "error",
            Outcome::Interrupted => "interrupted",
            Outcome::Open => "open",
            Outcome::Closed => "closed",
        }
    }

    /// The process exit code for this outcome (documented in docs/cli.md).
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Pruned | Outcome::NothingToDo | Outcome::DryRun | Outcome::Open => 0,
            Outcome::Skipped | Outcome::Closed => 10,
            Outcome::Error | Outcome::Interrupted => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Done,
    Skipped,
    WouldRemove,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub class: Class,
    pub status: StepStatus,
    pub count: usize,
    pub reclaimed_bytes: u64,
    /// Object ids removed (or, in a dry run, that would be).
    pub items: Vec<String>,
    /// Why the step was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Dry run only: each object with its size and what it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<Candidate>>,
    /// Dry run, build cache only: records that hold a layer shared with an image. If the images
    /// step removes the last image using that layer, the daemon prunes the record as well; the
    /// Engine API does not say which image a record belongs to, so these are listed apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub may_also_remove: Option<Vec<Candidate>>,
    /// Retention class: each tagged image it kept, with its tags and why. Images step: each
    /// untagged image old enough and unused that it kept as cache, with its digests and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<Vec<KeptImage>>,
}

/// An image a step kept, and why: a tagged image the retention class kept (its tags), or an
/// untagged image the images step kept as cache (its digests).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptImage {
    pub id: String,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub digests: Vec<String>,
    pub why: String,
}

impl From<crate::plan::Kept> for KeptImage {
    fn from(k: crate::plan::Kept) -> Self {
        KeptImage {
            id: k.id,
            tags: Vec::new(),
            digests: k.digests,
            why: k.why,
        }
    }
}

impl StepReport {
    pub fn skipped(class: Class, reason: impl Into<String>) -> Self {
        Self {
            class,
            status: StepStatus::Skipped,
            count: 0,
            reclaimed_bytes: 0,
            items: Vec::new(),
            reason: Some(reason.into()),
            objects: None,
            may_also_remove: None,
            kept: None,
        }
    }

    pub fn failed(class: Class, reason: impl Into<String>) -> Self {
        Self {
            status: StepStatus::Failed,
            ..Self::skipped(class, reason)
        }
    }

    /// A step that removed (or, in a dry run, would remove) `objects`.
    pub fn with_objects(
        class: Class,
        status: StepStatus,
        objects: Vec<Candidate>,
        reclaimed_bytes: u64,
        may_also_remove: Option<Vec<Candidate>>,
    ) -> Self {
        Self {
            class,
            status,
            count: objects.len(),
            reclaimed_bytes,
            items: objects.iter().map(|o| o.id.clone()).collect(),
            reason: None,
            objects: Some(objects),
            may_also_remove,
            kept: None,
        }
    }
}

/// After a full pass that left the disk over the threshold: what prunegate's policy keeps that
/// `docker system prune --all --volumes` would take. Nothing here is ever removed by prunegate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Advisory {
    pub disk_used_percent_after: Option<u8>,
    /// Tagged images no container uses, counting only layers no other image shares (a lower
    /// bound of what removing them would free).
    pub unused_tagged_images: usize,
    pub unused_tagged_images_bytes: u64,
    /// Volumes no container references.
    pub unused_volumes: usize,
    pub unused_volumes_bytes: u64,
    /// What the retention class did about the tagged images, or that it is off.
    pub retention: String,
}

impl Advisory {
    /// Tagged images with no container, by their unshared size; volumes with no reference.
    pub fn from_usage(usage: &DiskUsage, disk_used_percent_after: Option<u8>) -> Advisory {
        let unused_images: Vec<&ImageUsage> = usage
            .images
            .iter()
            .flatten()
            .filter(|i| i.containers == 0)
            .filter(|i| i.repo_tags.as_deref().is_some_and(crate::engine::is_tagged))
            .collect();
        let unused_volumes: Vec<&VolumeUsageData> = usage
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.usage.as_ref())
            .filter(|u| u.ref_count == 0)
            .collect();
        Advisory {
            disk_used_percent_after,
            unused_tagged_images: unused_images.len(),
            unused_tagged_images_bytes: unused_images
                .iter()
                .map(|i| (i.size - i.shared_size.max(0)).max(0) as u64)
                .sum(),
            unused_volumes: unused_volumes.len(),
            unused_volumes_bytes: unused_volumes.iter().map(|u| u.size.max(0) as u64).sum(),
            retention: "off: nothing tagged is ever removed ([retention], docs/retention.md)"
                .to_string(),
        }
    }
}

/// Requests sent to one of `swarm.managers` during a run.
#[derive(Debug, Clone, Serialize)]
pub struct ManagerCalls {
    pub address: String,
    pub api_calls: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: Command,
    /// Unique per run; the audit log's lines carry it.
    pub run_id: String,
    pub outcome: Outcome,
    pub docker_host: String,
    pub older_than: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub gates: Vec<GateResult>,
    pub steps: Vec<StepReport>,
    pub reclaimed_bytes: u64,
    /// Requests to the daemon in force (`docker_host`).
    pub api_calls: usize,
    /// On a worker with `swarm.managers`: each manager asked and the requests sent to it this
    /// run (the gates' evidence says which one answered, as `swarm_from`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub manager_api_calls: Vec<ManagerCalls>,
    /// The gate that closed between steps and stopped the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<GateResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Problems after the fact (a sink that could not be written); they do not change the outcome.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advisory: Option<Advisory>,
    /// Stretches of time the retention class's use history could not observe, found by this
    /// run: every image present across one counts as used at its end (docs/retention.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history_gaps: Vec<crate::retention::Gap>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A run id: start time and randomness, sortable and unique enough for a log.
fn new_run_id() -> String {
    format!(
        "{}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        fastrand::u32(..)
    )
}

impl Report {
    /// A report for a command that failed before it could read the daemon.
    pub fn failed(command: Command, docker_host: &str, older_than: &str, error: String) -> Self {
        Report {
            error: Some(error),
            ..Report::new(command, docker_host, older_than, Outcome::Error)
        }
    }

    /// A report with no gates or steps yet, starting now.
    pub fn new(command: Command, docker_host: &str, older_than: &str, outcome: Outcome) -> Self {
        let now = now_rfc3339();
        Report {
            command,
            run_id: new_run_id(),
            outcome,
            docker_host: docker_host.to_string(),
            older_than: older_than.to_string(),
            started_at: now.clone(),
            finished_at: now,
            duration_ms: 0,
            gates: Vec::new(),
            steps: Vec::new(),
            reclaimed_bytes: 0,
            api_calls: 0,
            manager_api_calls: Vec::new(),
            stopped_by: None,
            error: None,
            warnings: Vec::new(),
            advisory: None,
            history_gaps: Vec::new(),
        }
    }

    /// A run skipped by one closed gate judged before anything else (disk up front, the lock).
    pub fn skipped_by(
        command: Command,
        docker_host: &str,
        older_than: &str,
        gate: GateResult,
    ) -> Self {
        Report {
            gates: vec![gate],
            ..Report::new(command, docker_host, older_than, Outcome::Skipped)
        }
    }

    /// The dry run's predicted steps; its outcome an error when a listing failed (`error`).
    pub fn predicted(&mut self, steps: Vec<StepReport>, error: Option<String>) {
        self.set_steps(steps);
        self.outcome = match &error {
            Some(_) => Outcome::Error,
            None => Outcome::DryRun,
        };
        self.error = error;
    }

    /// The steps run: the outcome is the halt's if one stopped them, else whether any removed
    /// something. `advisory`: the disk still over a threshold after the steps — kept only
    /// after a full pass (no halt), saying what the retention step did when it ran.
    pub fn pruned(
        &mut self,
        steps: Vec<StepReport>,
        halt: Option<Halt>,
        advisory: Option<Advisory>,
    ) {
        self.set_steps(steps);
        let full = halt.is_none();
        self.outcome = match halt {
            Some(halt) => halt.into_report(self),
            None if self.steps.iter().any(|s| s.count > 0) => Outcome::Pruned,
            None => Outcome::NothingToDo,
        };
        self.advisory = advisory.filter(|_| full).map(|mut a| {
            let tagged = self.steps.iter().find(|s| s.class == Class::TaggedImages);
            if let Some(step) = tagged {
                a.retention = format!(
                    "removed {} tagged images; {}",
                    step.count,
                    step.reason.as_deref().unwrap_or("")
                );
            }
            a
        });
    }

    /// The steps, and the bytes they reclaimed in all.
    fn set_steps(&mut self, steps: Vec<StepReport>) {
        self.steps = steps;
        self.reclaimed_bytes = self.steps.iter().map(|s| s.reclaimed_bytes).sum();
    }

    /// Stamps the end of the run.
    pub fn finish(&mut self, started: std::time::Instant) {
        self.duration_ms = started.elapsed().as_millis() as u64;
        self.finished_at = now_rfc3339();
    }

    /// The outcome as it appears in JSON and metrics.
    pub fn outcome_name(&self) -> &'static str {
        self.outcome.name()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report always serializes")
    }

    /// The human rendering: one line per gate, one per step, dry-run objects indented.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "prunegate {}: {} ({})",
            self.command.as_str(),
            self.outcome_name(),
            p(&self.docker_host)
        );
        for g in &self.gates {
            let state = match (g.enabled, g.open) {
                (false, _) => "off   ",
                (true, true) => "open  ",
                (true, false) => "CLOSED",
            };
            let _ = writeln!(
                out,
                "  gate {:<10} {state} {}",
                g.name.as_str(),
                p(&g.reason)
            );
        }
        if let Some(g) = &self.stopped_by {
            let _ = writeln!(
                out,
                "  stopped: gate {} closed before a step: {}",
                g.name.as_str(),
                p(&g.reason)
            );
        }
        for s in &self.steps {
            let status = serde_json::to_value(s.status).ok();
            let status = status.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
            let _ = write!(
                out,
                "  step {:<11} {status:<12} {} objects, {}",
                s.class.as_str(),
                s.count,
                human_bytes(s.reclaimed_bytes)
            );
            if let Some(r) = &s.reason {
                let _ = write!(out, " ({})", p(r));
            }
            out.push('\n');
            for o in s.objects.iter().flatten() {
                write_object(&mut out, o);
            }
            // The dry run says why each image a step keeps stays (tagged ones by their tags,
            // untagged cache by its id); a run says how many untagged images it kept as cache.
            if s.status == StepStatus::WouldRemove {
                for k in s.kept.iter().flatten() {
                    let name = match k.tags.is_empty() {
                        true => k.id.get(..19).unwrap_or(&k.id).to_string(),
                        false => k.tags.join(", "),
                    };
                    let _ = writeln!(out, "    kept {}: {}", p(&name), p(&k.why));
                }
            } else if let Some(kept) = s.kept.as_ref().filter(|k| !k.is_empty()) {
                if s.class == Class::Images {
                    let _ = writeln!(
                        out,
                        "    kept {} untagged images as cache (pulled by digest; --json says why)",
                        kept.len()
                    );
                }
            }
            if let Some(maybe) = &s.may_also_remove {
                let what = match s.class {
                    Class::TaggedImages => {
                        "tagged images, if the safe classes free less on the watched disk than predicted"
                    }
                    _ => "records whose layers only the removed images used",
                };
                let _ = writeln!(out, "    and possibly {} {what}:", maybe.len());
                for o in maybe {
                    write_object(&mut out, o);
                }
            }
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "  error: {}", p(e));
        }
        for w in &self.warnings {
            let _ = writeln!(out, "  warning: {}", p(w));
        }
        for g in &self.history_gaps {
            let _ = writeln!(out, "  {}", p(&g.describe()));
        }
        if let Some(a) = &self.advisory {
            let _ = writeln!(
                out,
                "  advisory: disk still {}% used; kept by policy: {} unused tagged images (at least {}), {} unused volumes ({}); retention: {}",
                a.disk_used_percent_after.map_or("?".to_string(), |p| p.to_string()),
                a.unused_tagged_images,
                human_bytes(a.unused_tagged_images_bytes),
                a.unused_volumes,
                human_bytes(a.unused_volumes_bytes),
                p(&a.retention)
            );
        }
        if self.command != Command::Check {
            let _ = write!(out, "  reclaimed {}, ", human_bytes(self.reclaimed_bytes));
        } else {
            out.push_str("  ");
        }
        let _ = write!(out, "{} API calls", self.api_calls);
        for m in &self.manager_api_calls {
            let _ = write!(out, " + {} to manager {}", m.api_calls, p(&m.address));
        }
        let _ = writeln!(out, ", {} ms", self.duration_ms);
        out
    }
}

/// One dry-run object: short id, size, what it is.
fn write_object(out: &mut String, o: &Candidate) {
    let _ = writeln!(
        out,
        "    {}  {:>9}  {}",
        p(short(&o.id)),
        o.size_bytes.map_or("-".to_string(), human_bytes),
        p(&o.description)
    );
}

/// `text` safe to print on a terminal: every control character (C0, DEL, C1) and every Unicode
/// bidirectional control escaped, newlines included. Daemon-supplied strings (a build-cache
/// record's description is any Dockerfile's `RUN` line) reached the terminal raw and set its
/// title, cleared it, wrote the clipboard (OSC 52) and forged report lines.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn p(text: &str) -> std::borrow::Cow<'_, str> {
    printable(text)
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_json_names() {
        for o in [
            Outcome::Pruned,
            Outcome::NothingToDo,
            Outcome::Skipped,
            Outcome::DryRun,
            Outcome::Error,
            Outcome::Interrupted,
            Outcome::Open,
            Outcome::Closed,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.name());
        }
    }

    /// The runner carries the course out; the decisions are here: an unreadable or
    /// unsupported daemon is an error, `check` ends with the gates' verdict, a closed gate
    /// skips, otherwise the steps are predicted or run.
    #[test]
    fn the_course_after_the_gates() {
        let ok = Ok::<Option<String>, String>(None);
        let c = |command, dry, engine: Result<Option<String>, String>, open| {
            course(command, dry, engine, open, "unix:///x.sock")
        };
        assert_eq!(
            c(Command::Run, false, Err("refused".into()), true),
            Course::End(
                Outcome::Error,
                Some("cannot reach the Docker daemon at unix:///x.sock: refused".into())
            )
        );
        assert_eq!(
            c(Command::Run, false, Ok(Some("too old".into())), true),
            Course::End(Outcome::Error, Some("too old".into()))
        );
        assert_eq!(
            c(Command::Check, false, ok.clone(), true),
            Course::End(Outcome::Open, None)
        );
        assert_eq!(
            c(Command::Check, false, ok.clone(), false),
            Course::End(Outcome::Closed, None)
        );
        assert_eq!(
            c(Command::Run, true, ok.clone(), false),
            Course::End(Outcome::Skipped, None)
        );
        assert_eq!(c(Command::Reclaim, true, ok.clone(), true), Course::DryRun);
        assert_eq!(c(Command::Run, false, ok, true), Course::Prune);
    }

    /// After the steps: a halt gives the outcome (a gate's is a skip that names it, a failure
    /// an error); otherwise pruned if anything went. Only a full pass wants the advisory, which
    /// then says what the retention step did.
    #[test]
    fn the_outcome_after_the_steps() {
        let new = || Report::new(Command::Run, "unix:///x.sock", "24h", Outcome::Error);
        let mut none = new();
        none.pruned(
            vec![StepReport::skipped(Class::Containers, "x")],
            None,
            None,
        );
        assert_eq!(none.outcome, Outcome::NothingToDo);
        let mut failed = new();
        failed.pruned(
            Vec::new(),
            Some(Halt::Failed("boom".into())),
            Some(Advisory::default()),
        );
        assert_eq!(
            (failed.outcome, failed.error.as_deref()),
            (Outcome::Error, Some("boom"))
        );
        assert!(failed.advisory.is_none(), "a halted pass advises nothing");
        let mut stopped = new();
        stopped.pruned(Vec::new(), Some(Halt::Interrupted), None);
        assert_eq!(stopped.outcome, Outcome::Interrupted);
        let mut tagged = StepReport::skipped(Class::TaggedImages, "disk at 50%");
        tagged.count = 2;
        let mut pruned = new();
        pruned.pruned(vec![tagged], None, Some(Advisory::default()));
        assert_eq!(pruned.outcome, Outcome::Pruned);
        assert_eq!(
            pruned.advisory.unwrap().retention,
            "removed 2 tagged images; disk at 50%"
        );
        let mut dry = new();
        dry.predicted(Vec::new(), Some("cannot list".into()));
        assert_eq!(dry.outcome, Outcome::Error);
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(Outcome::Pruned.exit_code(), 0);
        assert_eq!(Outcome::NothingToDo.exit_code(), 0);
        assert_eq!(Outcome::DryRun.exit_code(), 0);
        assert_eq!(Outcome::Open.exit_code(), 0);
        assert_eq!(Outcome::Skipped.exit_code(), 10);
        assert_eq!(Outcome::Closed.exit_code(), 10);
        assert_eq!(Outcome::Error.exit_code(), 1);
    }

    /// `may_also_remove` says what it holds: build-cache records for that class, tagged images
    /// for the retention class.
    #[test]
    fn the_text_names_what_may_also_go_by_class() {
        let maybe = |class| {
            let o = Candidate {
                id: "sha256:0123456789abcdef".into(),
                size_bytes: Some(1024),
                description: "x".into(),
                what: serde_json::Value::Null,
            };
            StepReport::with_objects(class, StepStatus::WouldRemove, vec![], 0, Some(vec![o]))
        };
        let mut r = Report::new(Command::Run, "unix:///s", "24h", Outcome::DryRun);
        r.steps = vec![maybe(Class::BuildCache), maybe(Class::TaggedImages)];
        let text = r.to_text();
        assert!(
            text.contains("and possibly 1 records whose layers only the removed images used:"),
            "{text}"
        );
        assert!(
            text.contains(
                "and possibly 1 tagged images, if the safe classes free less on the watched disk than predicted:"
            ),
            "{text}"
        );
    }

    #[test]
    fn counts_only_unused_tagged_images_and_unreferenced_volumes() {
        let du: DiskUsage = crate::docker::usage::decode(
            br#"{"Images":[
                {"RepoTags":["base:1"],"Containers":1,"Size":100,"SharedSize":0},
                {"RepoTags":["cache:1"],"Containers":0,"Size":100,"SharedSize":40},
                {"RepoTags":["<none>:<none>"],"Containers":0,"Size":7,"SharedSize":0}],
               "Volumes":[{"UsageData":{"Size":10,"RefCount":0}},{"UsageData":{"Size":99,"RefCount":1}}]}"#,
        )
        .unwrap();
        let a = Advisory::from_usage(&du, Some(91));
        assert_eq!(
            (a.unused_tagged_images, a.unused_tagged_images_bytes),
            (1, 60)
        );
        assert_eq!((a.unused_volumes, a.unused_volumes_bytes), (1, 10));
    }

    #[test]
    fn control_characters_from_a_daemon_never_reach_the_terminal() {
        let hostile = "RUN x \u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}]52;c;cHduZWQ=\u{7}\nprunegate run: pruned\u{202e}";
        let out = printable(hostile);
        assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        assert!(out.contains("\\u{1b}]0;owned"), "{out}");
        assert!(out.contains("\\nprunegate run"), "{out}");
        assert!(out.contains("\\u{202e}"), "{out}");
        assert_eq!(printable("plain: ünïcode ok"), "plain: ünïcode ok");
    }
}

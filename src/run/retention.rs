//! The retention class's sequence (docs/retention.md): bring the use history up to date on
//! every run that could prune (whatever the gates say: use is learned while the disk is fine),
//! and, after the three safe classes, the `tagged_images` step or its dry-run prediction. The
//! decisions are `retention::decide`'s; this module reads, calls and records.

use super::inputs::disk_reading;
use super::recheck::{recheck, Fresh, Halt};
use super::Interrupt;
use crate::disk::DiskReading;
use crate::docker::snapshot::{Snapshot, SwarmSource};
use crate::docker::tagged::Removed;
use crate::docker::Daemon;
use crate::engine::Engine;
use crate::engine::{daemon_identity, SwarmRole};
use crate::gates::disk::fullest;
use crate::gates::GateInputs;
use crate::model::{Candidate, Class, Command, Read, ReadError};
use crate::report::{KeptImage, StepReport, StepStatus};
use crate::retention::{self, Decision, Gap, History, Retention, Use, HISTORY_FLOOR};
use crate::settings::{DiskGate, GateSettings, Settings};
use crate::sinks::history;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// What a run knows of image use: the history it may judge on, or why none (then the class
/// removes nothing this run); the gaps this update found; and a warning when the history could
/// not be read from the daemon or saved.
#[derive(Debug, Clone)]
pub struct Learned {
    pub known: Result<BTreeMap<String, Use>, String>,
    pub gaps: Vec<Gap>,
    pub warning: Option<String>,
}

/// Loads the history, adds what the daemon shows now (the containers present, the events since
/// the last update), and saves it unless `save` is false (a dry run) — under the history's
/// lock, so the recorder's merges and a run's never overwrite each other. Whatever stretch the
/// replay cannot vouch for (truncated, a daemon restart, an unknowable restart) is a gap: every
/// image present across it counts as used at its end. A history that is missing, unreadable,
/// another daemon's or contradictory is started afresh from now — and this run's class removes
/// nothing, since an unknown history is never taken as old.
pub async fn learn(
    r: &Retention,
    dir: &Path,
    daemon: &Daemon,
    (engine, daemon_id): (&Engine, &str),
    save: bool,
) -> Learned {
    let wants_builds = !r.build_bases_kept;
    // A failed read leaves the history as it was, and is worth a warning.
    let fail = |why: String| Learned {
        known: Err(why.clone()),
        gaps: Vec::new(),
        warning: Some(why),
    };
    if daemon_id.is_empty() {
        return fail("the daemon reported no ID, so its use history cannot be told apart".into());
    }
    let _held = if save {
        match history::lock(dir).await {
            Ok(l) => Some(l),
            Err(e) => return fail(format!("the use history was not updated: {e}")),
        }
    } else {
        None
    };
    let loaded = history::load(dir);
    let now = chrono::Utc::now().timestamp();
    let mine = match &loaded {
        Ok(Some(h)) if h.daemon_id == daemon_id => Some((h.clone(), h.check(now))),
        _ => None,
    };
    let believed = matches!(mine, Some((_, Ok(()))));
    let replay = async {
        match &mine {
            Some((h, Ok(()))) => daemon.replay(h.updated_at).await.map(Some),
            _ => Ok(None),
        }
    };
    // Builds are read unless the operator said their bases are kept, and only to update a
    // history that can be believed (a fresh one counts every image from now anyway).
    let builds = wants_builds && believed;
    let cache = async {
        match builds {
            true => daemon.build_cache_records().await.map(Some),
            false => Ok(None),
        }
    };
    let (images, containers, replay, cache) = tokio::join!(
        daemon.images(),
        daemon.containers(crate::docker::containers::Listing {
            all: true,
            ..Default::default()
        }),
        replay,
        cache,
    );
    let (images, containers, replay, cache) = match (images, containers, replay, cache) {
        (Ok(i), Ok(c), Ok(e), Ok(b)) => (i, c, e, b),
        (Err(e), ..) | (_, Err(e), ..) => {
            return fail(format!("the use history was not updated: {e}"))
        }
        (_, _, Err(e), _) => {
            return fail(format!(
                "the events since the last update could not be read: {e}"
            ))
        }
        (.., Err(e)) => {
            return fail(format!(
                "the build cache could not be read, so builds since the last update cannot \
                 be accounted for: {e}"
            ))
        }
    };
    let present: Vec<&str> = images.iter().map(|i| i.id.as_str()).collect();
    let path = history::path(dir);
    let (updated, known) = match (&loaded, mine) {
        (_, Some((h, Ok(())))) => {
            let replay = replay.unwrap_or_default();
            let in_use = retention::in_use(&containers);
            let in_use: HashSet<&str> = in_use.keys().map(String::as_str).collect();
            let used = retention::used_by_events(&replay.uses, &images);
            let used: HashMap<&str, i64> = used.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let gap = retention::replay_gap(
                h.updated_at,
                now,
                replay.count,
                replay.earliest,
                engine.event_buffer(),
                replay.daemon_started,
                h.recorded_at,
            );
            let build = builds
                .then(|| {
                    let last = retention::last_build(cache.as_deref(), &replay.uses, &images, now);
                    retention::build_gap(h.builds_seen, last, now)
                })
                .flatten();
            let updated = h.observe(
                now,
                &present,
                &in_use,
                &used,
                gap.into_iter().chain(build).collect(),
            );
            let known = updated
                .for_daemon(daemon_id)
                .ok_or_else(|| "the use history names no daemon".to_string());
            (updated, known)
        }
        (_, Some((h, Err(why)))) => {
            let gap = Gap {
                from: h.updated_at.clamp(HISTORY_FLOOR, now),
                to: now,
                images: 0,
                build: false,
                why: format!("the use history could not be believed: {why}"),
            };
            let known = Err(format!(
                "the use history {} cannot be believed: {why}; started afresh from now (every \
                 image counts as first seen now), so nothing is removed until retention.min_idle \
                 has passed",
                path.display()
            ));
            (History::fresh(daemon_id, now, &present, Some(gap)), known)
        }
        (Ok(None), None) => (
            History::fresh(daemon_id, now, &present, None),
            Err(format!(
                "no use history yet ({} started now): images count as first seen today",
                path.display()
            )),
        ),
        (Ok(Some(h)), None) => (
            History::fresh(daemon_id, now, &present, None),
            Err(format!(
                "the use history {} was of another daemon ({}); started afresh for this one",
                path.display(),
                h.daemon_id
            )),
        ),
        (Err(e), None) => (
            History::fresh(daemon_id, now, &present, None),
            Err(format!("{e}; started afresh")),
        ),
    };
    let warning = if save {
        history::save(dir, &updated)
            .err()
            .map(|e| format!("the use history was not saved: {e}"))
    } else {
        None
    };
    Learned {
        known,
        gaps: updated.gaps_added(loaded.as_ref().ok().and_then(Option::as_ref)),
        warning,
    }
}

/// What a command knows of image use, when the class is on (`retention`) and the command could
/// prune: the history in `dir` learned now ([`learn`]; saved unless `dry_run`), or, on an
/// engine the class is refused on, that refusal as the reason it removes nothing. `None`: the
/// class has no part.
pub async fn learned(
    retention: Option<&Retention>,
    dir: &Path,
    daemon: &Daemon,
    inputs: &GateInputs,
    command: Command,
    dry_run: bool,
) -> Option<Learned> {
    let snapshot = &inputs.snapshot;
    let (Some(r), Ok(info), Ok(engine)) = (retention, &snapshot.info, &snapshot.engine) else {
        return None;
    };
    if command == Command::Check || engine.unsupported().is_some() {
        return None;
    }
    Some(match engine.refuse(Class::TaggedImages) {
        Some(why) => Learned {
            known: Err(why),
            gaps: Vec::new(),
            warning: None,
        },
        None => {
            let id = daemon_identity(info);
            learn(r, dir, daemon, (engine, &id), !dry_run).await
        }
    })
}

/// A run the disk gate ended before it contacted the daemon: only the history is brought up
/// to date (use is learned while the disk is fine). The gaps it found, and a warning when it
/// could not be.
pub async fn learn_only(settings: &Settings) -> (Vec<Gap>, Option<String>) {
    let Some(r) = &settings.retention else {
        return (Vec::new(), None);
    };
    let daemon = match super::inputs::connect(settings) {
        Ok(d) => d,
        Err(e) => {
            return (
                Vec::new(),
                Some(format!("the use history was not updated: {e}")),
            )
        }
    };
    match daemon.identity().await {
        // An engine the class is refused on (or prunegate as a whole): nothing to learn.
        Ok((engine, _))
            if engine.unsupported().is_some() || engine.refuse(Class::TaggedImages).is_some() =>
        {
            (Vec::new(), None)
        }
        Ok((engine, id)) => {
            let l = learn(r, &settings.sinks.state_dir, &daemon, (&engine, &id), true).await;
            (l.gaps, l.warning)
        }
        Err(e) => (
            Vec::new(),
            Some(format!("the use history was not updated: {e}")),
        ),
    }
}

/// What the class judges on, read at one moment: the fullest watched filesystem and the
/// images with everything that protects them.
struct Gathered {
    path: std::path::PathBuf,
    used: u64,
    available: u64,
    tagged: Vec<retention::Tagged>,
    in_use: HashMap<String, String>,
    swarm: HashMap<String, String>,
    images: Vec<bollard::models::ImageSummary>,
}

/// The reads: the images with their layers and sizes, every container, and on a swarm manager
/// the services' previous specs beside the snapshot's services and tasks; with them, the fullest
/// of the watched filesystems in `disk` (measured by the caller at the same moment; `gate` says
/// which count). The layers remembered in `dir` spare their reads. An error says which read
/// failed: the class then removes nothing.
async fn gather(
    gate: &DiskGate,
    dir: &Path,
    daemon: &Daemon,
    snapshot: &Snapshot,
    disk: Read<Vec<DiskReading>>,
    save: bool,
) -> Result<Gathered, String> {
    let swarm_role = snapshot.engine.as_ref().map(|e| e.swarm.clone());
    let previous: Read<Vec<(String, String)>> = match (&swarm_role, &snapshot.swarm_source) {
        (Ok(SwarmRole::NotInSwarm), _) => Ok(Vec::new()),
        (_, SwarmSource::ThisNode) => daemon.previous_specs().await,
        _ => Err(ReadError::local(
            "the swarm's previous specs (rollback targets) are read on a manager's own socket \
             only",
        )),
    };
    let reads = daemon.tagged_reads(&crate::sinks::layers::load(dir)).await;
    let why = |what: &str, e: &ReadError| format!("{what} could not be read: {e}");
    let previous = previous.map_err(|e| why("the services' previous specs", &e))?;
    let images = reads.images.map_err(|e| why("the image list", &e))?;
    let containers = reads
        .containers
        .map_err(|e| why("the container list", &e))?;
    let layers = reads.layers.map_err(|e| why("the images' layers", &e))?;
    // Remembered for the next run (a cache: not saving it costs only reads). A dry run writes
    // nothing.
    if save {
        if let Err(e) = crate::sinks::layers::save(dir, &layers) {
            tracing::warn!("the images' layers were not remembered: {e}");
        }
    }
    let unique = reads
        .unique_bytes
        .map_err(|e| why("the images' sizes", &e))?;
    let (services, tasks) = match (&swarm_role, &snapshot.services, &snapshot.tasks) {
        (Ok(SwarmRole::NotInSwarm), _, _) => (Vec::new(), Vec::new()),
        (_, Ok(s), Ok(t)) => {
            let mut tasks = t.clone();
            tasks.extend(snapshot.history.clone().unwrap_or_default());
            (s.clone(), tasks)
        }
        (_, Err(e), _) | (_, _, Err(e)) => return Err(why("the swarm's services and tasks", e)),
    };
    // Judged after the reads: the fullest filesystem as measured with them.
    let readings = disk.map_err(|e| format!("the disk cannot be read: {e}"))?;
    let (reading, stat) = fullest(gate, &readings)
        .ok_or("a watched filesystem cannot be measured, so the watermarks cannot be judged")?;
    let (used, available) = stat.used_and_available_bytes();
    Ok(Gathered {
        path: reading.path.clone(),
        used,
        available,
        swarm: retention::swarm_refs(&services, &previous, &tasks, &images),
        tagged: retention::tagged(&images, &layers, &unique),
        in_use: retention::in_use(&containers),
        images,
    })
}

/// The class on what was gathered, the disk less `freed_before` (in a dry run, what the safe
/// classes are predicted to free; the real step reads the disk after them). An error says why
/// nothing is removed: the disk below `high_percent`.
fn judge(
    g: &Gathered,
    r: &Retention,
    known: &BTreeMap<String, Use>,
    freed_before: u64,
) -> Result<Decision, String> {
    let used = g.used.saturating_sub(freed_before);
    let available = g.available + (g.used - used);
    let percent = crate::disk::df_percent(used, available).unwrap_or(0);
    if percent < r.high_percent {
        return Err(format!(
            "{} is at {percent}%{}, below retention.high_percent ({}%)",
            g.path.display(),
            if freed_before > 0 {
                " once the safe classes free what they are predicted to"
            } else {
                ""
            },
            r.high_percent
        ));
    }
    Ok(retention::decide(
        &g.tagged,
        &g.in_use,
        &g.swarm,
        known,
        &g.images,
        (used, available),
        r,
        chrono::Utc::now().timestamp(),
    ))
}

/// Each kept image with its tags and why, for the report.
fn kept_list(d: &Decision) -> Option<Vec<KeptImage>> {
    Some(
        d.kept
            .iter()
            .map(|(id, why)| KeptImage {
                id: id.clone(),
                tags: d.tags.get(id).cloned().unwrap_or_default(),
                digests: Vec::new(),
                why: why.to_string(),
            })
            .collect(),
    )
}

/// The reason a step that removes nothing gives, with how many images each protection kept.
fn kept_summary(d: &Decision) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, k) in &d.kept {
        *counts.entry(k.kind()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!(
        "disk at {}%, projected {}%; kept: {}",
        d.used_percent,
        d.projected_percent,
        if parts.is_empty() {
            "no tagged images".to_string()
        } else {
            parts.join(", ")
        }
    )
}

/// The dry run's `tagged_images` step: the images the real run would remove, in its order,
/// with the bytes each frees. `freed_before`: what the safe classes are predicted to free. The
/// real step reads the disk after them, and no API says how much of what they free comes off
/// the watched filesystem: the list is judged on the disk less those bytes, and the images the
/// run removes as well if they free less there are listed apart (`may_also_remove`).
pub async fn predict(
    r: &Retention,
    gate: &DiskGate,
    dir: &Path,
    daemon: &Daemon,
    snapshot: &Snapshot,
    learned: &Learned,
    freed_before: u64,
) -> StepReport {
    let class = Class::TaggedImages;
    let known = match &learned.known {
        Ok(k) => k,
        Err(why) => return StepReport::skipped(class, format!("removes nothing: {why}")),
    };
    let disk = disk_reading(gate, &snapshot.engine);
    let g = match gather(gate, dir, daemon, snapshot, disk, false).await {
        Ok(g) => g,
        Err(why) => return StepReport::skipped(class, format!("removes nothing: {why}")),
    };
    let projected = judge(&g, r, known, freed_before);
    let unfreed = (freed_before > 0)
        .then(|| judge(&g, r, known, 0).ok())
        .flatten();
    let listed: HashSet<String> = match &projected {
        Ok(d) => d.remove.iter().map(|c| c.id.clone()).collect(),
        Err(_) => HashSet::new(),
    };
    let maybe: Vec<Candidate> = unfreed
        .iter()
        .flat_map(|d| d.remove.iter())
        .filter(|c| !listed.contains(&c.id))
        .cloned()
        .collect();
    let maybe = Some(maybe).filter(|m| !m.is_empty());
    let mut step = match projected {
        Err(why) => {
            let mut s = StepReport::skipped(class, format!("removes nothing: {why}"));
            s.may_also_remove = maybe;
            return s;
        }
        Ok(d) => {
            let bytes = d.remove.iter().filter_map(|c| c.size_bytes).sum();
            let mut step = StepReport::with_objects(
                class,
                StepStatus::WouldRemove,
                d.remove.clone(),
                bytes,
                maybe,
            );
            step.reason = Some(kept_summary(&d));
            step.kept = kept_list(&d);
            step
        }
    };
    if step.may_also_remove.is_some() {
        let note = format!(
            "; judged on the disk less the {} the safe classes are predicted to free: if less of \
             it comes off {}, the images under may_also_remove go too",
            crate::model::human_bytes(freed_before),
            g.path.display()
        );
        step.reason = Some(step.reason.unwrap_or_default() + &note);
    }
    step
}

/// The real step, after the fresh re-check the runner made (`fresh`: its snapshot, and the disk
/// as the steps before left it): decides on that disk and removes the chosen images in order,
/// re-checking the activity gates before each one after the first and stopping at a signal. An
/// image the engine refuses is skipped with its answer; the rest go on.
pub async fn remove(
    r: &Retention,
    gates: &GateSettings,
    dir: &Path,
    daemon: &Daemon,
    fresh: &Fresh,
    learned: &Learned,
    interrupt: &Interrupt,
) -> (StepReport, Option<Halt>) {
    let class = Class::TaggedImages;
    let skipped = |why: &str| {
        (
            StepReport::skipped(class, format!("removes nothing: {why}")),
            None,
        )
    };
    let known = match &learned.known {
        Ok(k) => k,
        Err(why) => return skipped(why),
    };
    let decided = match gather(
        &gates.disk,
        dir,
        daemon,
        &fresh.snapshot,
        fresh.disk.clone(),
        true,
    )
    .await
    {
        Ok(g) => judge(&g, r, known, 0),
        Err(why) => Err(why),
    };
    let d = match decided {
        Err(why) => return skipped(&why),
        Ok(d) => d,
    };
    let mut removed: Vec<Candidate> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let mut stopped = None;
    for (n, c) in d.remove.iter().enumerate() {
        // Each removal is a destructive call of its own: the same re-check as before every
        // step (the runner made it before the first image), and the same halt.
        if interrupt.raised() {
            stopped = Some(Halt::Interrupted);
        } else if n > 0 {
            if let Err(halt) = recheck(class, gates, daemon).await {
                stopped = Some(halt);
            }
        }
        if let Some(halt) = &stopped {
            refused.push(format!(
                "{} more not removed: {}",
                d.remove.len() - n,
                halt.why()
            ));
            break;
        }
        let tags = d.tags.get(&c.id).map(Vec::as_slice).unwrap_or_default();
        match remove_one(daemon, c, tags).await {
            Ok(lines) => {
                let mut c = c.clone();
                c.what["engine"] = serde_json::json!(lines);
                removed.push(c);
            }
            Err(e) => refused.push(format!("{}: {e}", c.id)),
        }
    }
    let bytes = removed.iter().filter_map(|c| c.size_bytes).sum();
    let mut step = StepReport::with_objects(class, StepStatus::Done, removed, bytes, None);
    let mut reason = kept_summary(&d);
    if !refused.is_empty() {
        reason.push_str(&format!("; not removed: {}", refused.join("; ")));
    }
    step.reason = Some(reason);
    step.kept = kept_list(&d);
    (step, stopped)
}

/// Removes one image: by id when it has one tag; with several, each tag but the first is
/// untagged by name — each only after checking that the tag still names this image (a pull may
/// have moved it) — and then the image by id. Never forced: the engine's refusal (a container
/// created meanwhile, a child image) is the answer, and then every tag taken off is put back,
/// so a refused image keeps all its names (the error says which were restored, or which could
/// not be).
async fn remove_one(
    daemon: &Daemon,
    c: &Candidate,
    tags: &[String],
) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    let say = |r: Vec<Removed>, lines: &mut Vec<String>| {
        lines.extend(r.into_iter().map(|r| match r {
            Removed::Untagged(t) => format!("untagged {t}"),
            Removed::Deleted(id) => format!("deleted {id}"),
        }))
    };
    for tag in tags.iter().skip(1) {
        match daemon.image_id_of(tag).await {
            Ok(id) if id == c.id => {}
            Ok(id) => return Err(format!("{tag} now names {id}; left as it is")),
            Err(e) => return Err(format!("{tag}: {e}")),
        }
        let r = daemon
            .remove_image(tag, true)
            .await
            .map_err(|e| format!("untagging {tag}: {e}"))?;
        say(r, &mut lines);
    }
    let r = match daemon.remove_image(&c.id, true).await {
        Ok(r) => r,
        Err(e) => {
            let untagged: Vec<&String> = tags.iter().skip(1).collect();
            if untagged.is_empty() {
                return Err(e.to_string());
            }
            let mut restored = Vec::new();
            let mut lost = Vec::new();
            for tag in untagged {
                match daemon.tag_image(&c.id, tag).await {
                    Ok(()) => restored.push(tag.as_str()),
                    Err(te) => lost.push(format!("{tag} ({te})")),
                }
            }
            let mut why = format!("{e}; tags put back: {}", restored.join(", "));
            if !lost.is_empty() {
                why.push_str(&format!("; could not put back: {}", lost.join(", ")));
            }
            return Err(why);
        }
    };
    say(r, &mut lines);
    Ok(lines)
}

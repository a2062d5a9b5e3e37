//! `prunegate record`: the retention class's use history, recorded as it happens.
//!
//! Why a resident recorder: the daemon keeps only its last 256 events (moby
//! `daemon/events/events.go`) and forgets them when it restarts, so a timer that replays them
//! every 15 minutes loses short-lived use on a busy CI host — an image used a minute earlier by
//! a `docker run --rm`, then 200 other containers, read as idle and was removed. The recorder
//! follows the event stream and merges every use into the history as it happens.
//!
//! Why it is `record` and not part of `run`: a run is a oneshot a timer starts; recording must
//! be up between runs. `prunegate daemon` records alongside its schedule; a host on the timer
//! runs `prunegate record` as a small always-on unit beside it.
//!
//! What it guarantees: every stretch it did not watch is a gap. On each (re)connection it first
//! brings the history up to date as a run does (a replay since the last update; a truncated
//! replay, a daemon restart or an unknowable one is a gap, and every image present across it
//! counts as used at its end), then follows the stream from that moment on. A merge — under
//! the history's lock, written atomically — happens at most every 10 s while uses arrive, and
//! every 60 s without (a heartbeat: `recorded_at` says the stream was unbroken up to then). A
//! broken stream is reconnected after 5 s, and the next connection's update finds the gap.

use super::retention::learn;
use super::Interrupt;
use crate::docker::tagged::{use_of, UseEvent};
use crate::docker::Daemon;
use crate::retention;
use crate::settings::{Retention, Settings};
use crate::sinks::history;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// Merges at most this often while uses arrive.
const MERGE_EVERY: Duration = Duration::from_secs(10);
/// Merges at least this often (a heartbeat) when none do.
const HEARTBEAT: Duration = Duration::from_secs(60);
/// Waits this long before connecting again after the stream broke.
const RECONNECT: Duration = Duration::from_secs(5);

/// Counts for the benchmark and the log: merges written and events read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Recorded {
    pub merges: u64,
    pub events: u64,
}

/// Records until `interrupt` is raised. An error only when the class is off or the engine is
/// one the class is refused on; a daemon that is down is waited for.
pub async fn run(settings: &Settings, interrupt: &Interrupt) -> Result<Recorded, String> {
    let Some(r) = &settings.retention else {
        return Err("retention.enabled is false: there is no use history to record".into());
    };
    let mut total = Recorded::default();
    loop {
        if interrupt.raised() {
            return Ok(total);
        }
        match session(settings, r, interrupt, &mut total).await {
            Ok(()) => return Ok(total),
            Err(Stop::Refused(why)) => return Err(why),
            Err(Stop::Broken(why)) => {
                tracing::warn!("recorder: {why}; connecting again in 5 s (the next connection's update finds the gap)");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT) => {}
            _ = interrupt.wait() => return Ok(total),
        }
    }
}

enum Stop {
    /// The class cannot run on this engine: recording is pointless.
    Refused(String),
    /// The connection, a read or a merge failed: try again.
    Broken(String),
}

/// One connection: the update, then the stream until it breaks or the interrupt.
async fn session(
    settings: &Settings,
    r: &Retention,
    interrupt: &Interrupt,
    total: &mut Recorded,
) -> Result<(), Stop> {
    // Not cut by the interrupt: the last merge, after it, still reads the images. Every wait
    // that matters (the stream, the pause between merges) selects on the interrupt itself.
    let daemon = super::inputs::connect(settings).map_err(Stop::Broken)?;
    let (engine, daemon_id) = daemon
        .identity()
        .await
        .map_err(|e| Stop::Broken(format!("reading /info: {e}")))?;
    if let Some(why) = engine
        .unsupported()
        .or_else(|| engine.refuse(crate::model::Class::TaggedImages))
    {
        return Err(Stop::Refused(why));
    }
    let dir = &settings.sinks.state_dir;
    let learned = learn(r, dir, &daemon, (&engine, &daemon_id), true).await;
    if let Some(w) = learned.warning {
        return Err(Stop::Broken(w));
    }
    for g in &learned.gaps {
        tracing::warn!("recorder: {}", g.describe());
    }
    // The update covered the stretch up to the history's `updated_at`; the stream replays from
    // there and goes on live.
    let since = history::load(dir)
        .ok()
        .flatten()
        .map_or_else(|| chrono::Utc::now().timestamp(), |h| h.updated_at);
    tracing::info!(since, daemon = %settings.address, "recorder: following the daemon's events");
    let mut stream = std::pin::pin!(daemon.event_stream(since));
    let mut pending: Vec<UseEvent> = Vec::new();
    let mut last_merge = tokio::time::Instant::now();
    loop {
        let due = last_merge
            + if pending.is_empty() {
                HEARTBEAT
            } else {
                MERGE_EVERY
            };
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(v)) => {
                    total.events += 1;
                    pending.extend(use_of(&v));
                }
                Some(Err(e)) => {
                    let _ = merge(r, dir, &daemon, &daemon_id, &mut pending, total).await;
                    return Err(Stop::Broken(format!("the event stream broke: {e}")));
                }
                None => {
                    let _ = merge(r, dir, &daemon, &daemon_id, &mut pending, total).await;
                    return Err(Stop::Broken("the daemon ended the event stream".into()));
                }
            },
            _ = tokio::time::sleep_until(due) => {
                merge(r, dir, &daemon, &daemon_id, &mut pending, total)
                    .await
                    .map_err(Stop::Broken)?;
                last_merge = tokio::time::Instant::now();
            }
            _ = interrupt.wait() => {
                merge(r, dir, &daemon, &daemon_id, &mut pending, total)
                    .await
                    .map_err(Stop::Broken)?;
                return Ok(());
            }
        }
    }
}

/// Merges the uses seen since the last merge into the history, under its lock: each image's
/// last use advanced, `updated_at` and `recorded_at` set to now (the stream was unbroken since
/// the previous merge). A history that changed hands meanwhile (another daemon's, or one that
/// cannot be believed) is left for the next connection's update to repair.
async fn merge(
    r: &Retention,
    dir: &Path,
    daemon: &Daemon,
    daemon_id: &str,
    pending: &mut Vec<UseEvent>,
    total: &mut Recorded,
) -> Result<(), String> {
    let _held = history::lock(dir).await?;
    let now = chrono::Utc::now().timestamp();
    let h = match history::load(dir)? {
        Some(h) if h.daemon_id == daemon_id && h.check(now).is_ok() => h,
        _ => return Err("the use history changed under the recorder".into()),
    };
    let images = daemon
        .images()
        .await
        .map_err(|e| format!("reading the images to merge: {e}"))?;
    let present: Vec<&str> = images.iter().map(|i| i.id.as_str()).collect();
    let used = retention::used_by_events(pending, &images);
    let used: HashMap<&str, i64> = used.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    // A classic build's tagged result seen live: the stream moves `updated_at` past it, so
    // the next run's replay would not.
    let build = (!r.build_bases_kept)
        .then(|| {
            let last = retention::last_build(None, pending, &images, now);
            retention::build_gap(h.builds_seen, last, now)
        })
        .flatten();
    let mut updated = h.observe(
        now,
        &present,
        &HashSet::new(),
        &used,
        build.into_iter().collect(),
    );
    updated.recorded_at = Some(now);
    history::save(dir, &updated)?;
    pending.clear();
    total.merges += 1;
    Ok(())
}

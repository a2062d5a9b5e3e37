//! The images step where the engine's own prune could also take cache
//! ([`crate::engine::Engine::images_step_judges`]: Docker, either store): read, let
//! [`crate::plan::image_plan`] judge junk from cache, then delete the junk one by one, never
//! forced, each checked still untagged just before. What it knows to judge by — the tags seen
//! on earlier runs, the swarm specs' pins — is read here for the dry run too.

use super::recheck::{recheck, Halt};
use super::Interrupt;
use crate::docker::inventory::Inventory;
use crate::docker::objects;
use crate::docker::snapshot::{Snapshot, SwarmSource};
use crate::docker::tagged::Removed;
use crate::docker::Daemon;
use crate::engine::{self, daemon_identity, Engine, SwarmRole};
use crate::junk::{self, Pins, SeenTags};
use crate::model::{Candidate, Class};
use crate::plan::{self, Judging, Policy};
use crate::report::{KeptImage, StepReport, StepStatus};
use crate::settings::{GateSettings, PruneSettings};
use crate::sinks::tags;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the step deletes before it judges the activity gates again: each delete is a
/// destructive call, but a re-check costs three to six requests, so a long step re-checks
/// this often rather than before every image.
const RECHECK_EVERY: Duration = Duration::from_secs(2);

/// What the images step judges cache by, and a warning when part of it could not be had (it
/// then keeps more, never less).
pub struct Knowledge {
    pub seen: SeenTags,
    pub pins: Pins,
    pub warning: Option<String>,
}

impl Knowledge {
    pub fn judging(&self) -> Judging<'_> {
        Judging {
            seen: &self.seen,
            pins: &self.pins,
        }
    }
}

/// The tags seen on this daemon (`state.dir/tags.json`) and, on a swarm manager, the digests
/// its services' current and previous specs pin. A worker cannot read previous specs (they
/// are read on a manager's own socket), so there no pull counts as superseded.
pub async fn knowledge(dir: &Path, daemon: &Daemon, snapshot: &Snapshot) -> Knowledge {
    let daemon_id = snapshot
        .info
        .as_ref()
        .map(daemon_identity)
        .unwrap_or_default();
    let (seen, warning) = match tags::load(dir) {
        Ok(seen) if !daemon_id.is_empty() => (seen.of_daemon(&daemon_id), None),
        Ok(_) => (
            SeenTags::default(),
            Some("the daemon reported no ID: no pull counts as superseded this run".to_string()),
        ),
        Err(e) => (
            SeenTags::default(),
            Some(format!("{e}: no pull counts as superseded this run")),
        ),
    };
    let role = snapshot.engine.as_ref().map(|e| e.swarm.clone());
    let pins = match (role, &snapshot.swarm_source) {
        (Ok(SwarmRole::NotInSwarm), _) => Ok(HashMap::new()),
        (_, SwarmSource::ThisNode) => daemon
            .spec_images()
            .await
            .map(|specs| junk::pins(&specs))
            .map_err(|e| format!("the services' specs could not be read: {e}")),
        _ => Err(
            "the services' previous specs (rollback targets) are read on a manager's own socket \
             only"
                .to_string(),
        ),
    };
    Knowledge {
        seen,
        pins,
        warning,
    }
}

/// The step: one listing of images and containers, judged; the tags seen saved (the run holds
/// its lock); each junk head deleted after an interrupt check, a re-check of the activity
/// gates when [`RECHECK_EVERY`] has passed, and a fresh look that it is still untagged. An
/// image the engine refuses to delete (a container took it meanwhile) is left, with why.
pub(super) async fn remove_junk(
    prune: &PruneSettings,
    gates: &GateSettings,
    dir: &Path,
    daemon: &Daemon,
    fresh: &Snapshot,
    engine: &Engine,
    interrupt: &Interrupt,
) -> (StepReport, Option<Halt>) {
    let class = Class::Images;
    let failed = |why: String| {
        (
            StepReport::failed(class, why.clone()),
            Some(Halt::Failed(why)),
        )
    };
    let listing = crate::docker::containers::Listing {
        all: true,
        ..Default::default()
    };
    // On the containerd store, also the prune's own filtered list: its `until` ages a record.
    let until = prune.until();
    let dangling = async {
        match engine.image_until_is_record_time() {
            true => Some(daemon.dangling_until(until).await),
            false => None,
        }
    };
    let (images, containers, dangling, known) = tokio::join!(
        daemon.all_images(),
        daemon.containers(listing),
        dangling,
        knowledge(dir, daemon, fresh),
    );
    let (images, containers, dangling) = match (images, containers, dangling.transpose()) {
        (Ok(i), Ok(c), Ok(d)) => (i, c, d),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return failed(format!("images step: cannot list: {e}"))
        }
    };
    // The tags seen are saved before anything is judged or deleted (the run holds its lock):
    // what a later run knows of superseded pulls does not depend on how this step ends.
    let mut notes: Vec<String> = known.warning.clone().into_iter().collect();
    let seen = known.seen.observe(&images);
    if let Err(e) = tags::save(dir, &seen) {
        notes.push(format!("the tags seen were not saved: {e}"));
    }
    // The containers step, if any, is done: the containers listed now are the ones that stay.
    let policy = Policy {
        containers: false,
        ..Policy::at(prune, chrono::Utc::now().timestamp())
    };
    let inventory = Inventory {
        containers: Ok(containers),
        images: Ok(images),
        build_cache: Ok(Vec::new()),
        dangling_until: dangling.map(Ok),
    };
    let judged = match plan::image_plan(&inventory, &policy, Some(&known.judging())) {
        Ok(p) => p,
        Err(e) => return failed(format!("images step: {e}")),
    };
    let images = inventory.images.unwrap_or_default();
    let mut described: HashMap<String, Candidate> = judged
        .remove
        .iter()
        .map(|c| (c.id.clone(), c.clone()))
        .collect();
    for i in &images {
        described
            .entry(i.id.clone())
            .or_insert_with(|| objects::image(i));
    }
    let mut removed = Vec::new();
    let mut halt = None;
    let mut checked = Instant::now();
    for (n, delete) in judged.deletes.iter().enumerate() {
        if interrupt.raised() {
            halt = Some(Halt::Interrupted);
        } else if n > 0 && checked.elapsed() >= RECHECK_EVERY {
            checked = Instant::now();
            if let Err(h) = recheck(class, gates, daemon).await {
                halt = Some(h);
            }
        }
        if let Some(h) = &halt {
            let left = judged.deletes.len() - n;
            notes.push(format!("{left} images not removed: {}", h.note()));
            break;
        }
        match delete_one(daemon, delete).await {
            Ok(deleted) => removed.extend(deleted),
            Err(Refused::Left(why)) => notes.push(format!("{} left: {why}", delete.id)),
            Err(Refused::Lost(why)) => {
                let left = judged.deletes.len() - n;
                notes.push(format!(
                    "{left} images not removed: the daemon stopped answering"
                ));
                halt = Some(Halt::Lost(format!(
                    "lost the Docker daemon during the images step: {why}"
                )));
                break;
            }
        }
    }
    let objects: Vec<Candidate> = removed
        .into_iter()
        .filter_map(|id| described.remove(&id))
        .collect();
    let bytes = objects.iter().filter_map(|o| o.size_bytes).sum();
    let mut step = StepReport::with_objects(class, StepStatus::Done, objects, bytes, None);
    step.kept = Some(judged.kept.into_iter().map(KeptImage::from).collect());
    if !notes.is_empty() {
        step.reason = Some(notes.join("; "));
    }
    (step, halt)
}

/// Why a junk head was not deleted: the engine answered no (the image stays, the step goes
/// on), or it did not answer (the run stops).
enum Refused {
    Left(String),
    Lost(String),
}

/// Deletes one junk head unforced, after checking it is still untagged: the ids the daemon
/// says it deleted (the head and the untagged parents that went with it), or why none.
async fn delete_one(daemon: &Daemon, delete: &plan::Delete) -> Result<Vec<String>, Refused> {
    let refused = |e: crate::model::ReadError| match e.status {
        Some(_) => Refused::Left(format!("the engine refused: {e}")),
        None => Refused::Lost(e.to_string()),
    };
    if !engine::is_image_id(&delete.id) {
        return Err(Refused::Left(
            "the daemon listed it with an id that is not an image id".into(),
        ));
    }
    let safe = |r: &String| engine::is_image_id(r) || engine::is_digest_reference(r);
    if let Some(bad) = delete.by.iter().find(|r| !safe(r)) {
        return Err(Refused::Left(format!(
            "the daemon listed a reference that is not a digest reference: {bad:?}"
        )));
    }
    match daemon.image_tags(&delete.id).await {
        Ok(tags) if !tags.is_empty() => {
            return Err(Refused::Left(format!(
                "tagged since it was listed ({})",
                tags.join(", ")
            )))
        }
        Ok(_) => {}
        Err(e) if e.status == Some(404) => return Ok(Vec::new()),
        Err(e) => return Err(refused(e)),
    }
    let mut deleted = Vec::new();
    for reference in &delete.by {
        let answer = daemon
            .remove_image(reference, false)
            .await
            .map_err(refused)?;
        deleted.extend(answer.into_iter().filter_map(|r| match r {
            Removed::Deleted(id) => Some(engine::image_id(&id)),
            Removed::Untagged(_) => None,
        }));
    }
    Ok(deleted)
}

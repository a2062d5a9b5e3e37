//! The reads and the removal of the retention class (docs/retention.md): tagged images with
//! their layers and unique bytes, every container, the container events since the last run, the
//! swarm's previous specs; and `DELETE /images/…`, never forced. Nothing here decides which
//! image goes: that is `retention::judge`/`select`, on what these reads return.

use super::containers::Listing;
use super::Daemon;
use crate::model::{Read, ReadError};
use bollard::models::{ContainerSummary, ImageSummary};
use bollard::query_parameters::{ListImagesOptionsBuilder, RemoveImageOptionsBuilder};
use futures_util::stream::{self, StreamExt};
use std::collections::HashMap;

/// Everything the class judges on, read at one moment.
#[derive(Debug, Clone)]
pub struct TaggedReads {
    /// The top-level image list (tagged and dangling), ids normalised.
    pub images: Read<Vec<ImageSummary>>,
    /// Every container, in any state.
    pub containers: Read<Vec<ContainerSummary>>,
    /// Per image id, its layer diff ids, base first (`RootFS.Layers`), for the tagged images.
    pub layers: Read<HashMap<String, Vec<String>>>,
    /// Per image id, what removing it frees: `Size − SharedSize` from `/system/df`.
    pub unique_bytes: Read<HashMap<String, u64>>,
}

/// A use of an image an event records: the image as the event names it (a reference or an
/// id), when (Unix seconds), and whether it was a tag event — what the classic builder's
/// result shows of a build ([`crate::retention::last_build`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseEvent {
    pub image: String,
    pub time: i64,
    pub tag: bool,
}

/// An unfiltered replay of the daemon's events: the uses in it, and how many events it held
/// and the time of its first — what tells a complete replay from one the daemon's buffer cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub uses: Vec<UseEvent>,
    pub count: usize,
    pub earliest: Option<i64>,
    /// When the daemon that answered started (Unix seconds), read right after its answer — so
    /// that a restart before the replay, which emptied its buffer, is always seen — or why
    /// that cannot be known ([`crate::uptime::daemon_started`]).
    pub daemon_started: Result<i64, String>,
}

impl Default for Replay {
    fn default() -> Self {
        Replay {
            uses: Vec::new(),
            count: 0,
            earliest: None,
            daemon_started: Err("not read".into()),
        }
    }
}

/// How many image inspections run at once.
const INSPECT_CONCURRENCY: usize = 8;

/// Refuses, before anything is sent, a reference a daemon's answer supplied that is not an
/// image id, digest or tag reference ([`crate::engine::is_path_safe_reference`]): bollard puts
/// it into the path as it is, and its URL parser resolves `..`.
fn path_safe(reference: &str) -> Result<(), ReadError> {
    if crate::engine::is_path_safe_reference(reference) {
        Ok(())
    } else {
        Err(ReadError::local(format!(
            "refused to send {:?}: not an image id or reference (from the daemon's own answer)",
            reference
        )))
    }
}

impl Daemon {
    /// The top-level image list, ids normalised.
    pub async fn images(&self) -> Read<Vec<ImageSummary>> {
        let opts = ListImagesOptionsBuilder::default().build();
        self.read
            .list_images(Some(opts))
            .await
            .map(crate::engine::normalized_images)
            .map_err(|e| self.read_err(e))
    }

    /// `/info`: the engine, and which daemon a use history belongs to
    /// ([`crate::engine::daemon_identity`]).
    pub async fn identity(&self) -> Result<(crate::engine::Engine, String), ReadError> {
        let info = self.read.info().await.map_err(|e| self.read_err(e))?;
        Ok((
            crate::engine::Engine::from_info(&info),
            crate::engine::daemon_identity(&info),
        ))
    }

    /// The id a reference names now.
    pub async fn image_id_of(&self, reference: &str) -> Result<String, ReadError> {
        path_safe(reference)?;
        let i = self
            .read
            .inspect_image(reference)
            .await
            .map_err(|e| self.read_err(e))?;
        Ok(crate::engine::image_id(&i.id.unwrap_or_default()))
    }

    /// The class's reads: the image list, every container and `/system/df` at once, then one
    /// `/images/{id}/json` per tagged image whose layers `known` does not hold (a few at a
    /// time). An image id names its content, so its layers never change: what an earlier run
    /// read is not read again.
    pub async fn tagged_reads(&self, known: &HashMap<String, Vec<String>>) -> TaggedReads {
        let (images, containers, usage) = tokio::join!(
            self.images(),
            self.containers(Listing {
                all: true,
                ..Listing::default()
            }),
            self.disk_usage(),
        );
        let unique_bytes = usage.and_then(|u| {
            let list = u
                .images
                .ok_or_else(|| ReadError::local("/system/df listed no images (sizes unknown)"))?;
            Ok(list
                .into_iter()
                .map(|i| {
                    let unique = (i.size - i.shared_size.max(0)).max(0) as u64;
                    (crate::engine::image_id(&i.id), unique)
                })
                .collect())
        });
        let layers = match &images {
            Ok(list) => self.layers(list, known).await,
            Err(e) => Err(e.clone()),
        };
        TaggedReads {
            images,
            containers,
            layers,
            unique_bytes,
        }
    }

    async fn layers(
        &self,
        images: &[ImageSummary],
        known: &HashMap<String, Vec<String>>,
    ) -> Read<HashMap<String, Vec<String>>> {
        let tagged: Vec<&ImageSummary> = images
            .iter()
            .filter(|i| crate::engine::is_tagged(&i.repo_tags))
            .collect();
        let remembered: Vec<(String, Vec<String>)> = tagged
            .iter()
            .filter_map(|i| Some((i.id.clone(), known.get(&i.id)?.clone())))
            .collect();
        let tagged = tagged.into_iter().filter(|i| !known.contains_key(&i.id));
        let inspected: Vec<Read<(String, Vec<String>)>> = stream::iter(tagged)
            .map(|i| async move {
                path_safe(&i.id)?;
                let inspect = self
                    .read
                    .inspect_image(&i.id)
                    .await
                    .map_err(|e| self.read_err(e))?;
                let layers = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
                Ok((i.id.clone(), layers))
            })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .collect()
            .await;
        inspected
            .into_iter()
            .chain(remembered.into_iter().map(Ok))
            .collect()
    }

    /// Every event since `since` (Unix seconds) up to now, unfiltered: a filter would hide
    /// whether the daemon's buffer overflowed ([`Replay`]).
    pub async fn replay(&self, since: i64) -> Read<Replay> {
        let now = chrono::Utc::now();
        let until = format!("{}.{:09}", now.timestamp(), now.timestamp_subsec_nanos());
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("since", &since.to_string())
            .append_pair("until", &until)
            .finish();
        let body = self.raw_get(&format!("/events?{query}")).await?;
        let mut replay = decode_events(&body).map_err(ReadError::local)?;
        replay.daemon_started = crate::uptime::daemon_started(&self.address);
        Ok(replay)
    }

    /// Each service's previous spec image (service name, reference): the rollback target.
    /// Read raw because bollard 0.21's `Service` has no `PreviousSpec` (the daemon sends it).
    pub async fn previous_specs(&self) -> Read<Vec<(String, String)>> {
        Ok(self
            .spec_images()
            .await?
            .into_iter()
            .filter(|(_, which, _)| *which == "previous")
            .map(|(service, _, image)| (service, image))
            .collect())
    }

    /// Every service's current and previous spec image: `(service, "current" | "previous",
    /// reference)`.
    pub async fn spec_images(&self) -> Read<Vec<(String, &'static str, String)>> {
        let body = self.raw_get("/services").await?;
        decode_spec_images(&body).map_err(ReadError::local)
    }

    /// An image's tags now (`/images/{id}/json`): checked right before the images step deletes
    /// it, so that an image tagged since the listing is not deleted.
    pub async fn image_tags(&self, id: &str) -> Read<Vec<String>> {
        path_safe(id)?;
        let i = self
            .read
            .inspect_image(id)
            .await
            .map_err(|e| self.read_err(e))?;
        Ok(crate::engine::tags(&i.repo_tags.unwrap_or_default())
            .map(String::from)
            .collect())
    }

    /// `POST /images/{id}/tag?repo=…&tag=…`: puts `tag` (`repository:tag`) back on the image
    /// `id` — the retention class's undo when the engine refuses an image's final delete after
    /// its other tags were taken off.
    pub async fn tag_image(&self, id: &str, tag: &str) -> Result<(), ReadError> {
        path_safe(id)?;
        if !crate::engine::is_tag_reference(tag) {
            return Err(ReadError::local(format!(
                "refused to send {tag:?}: not a tag"
            )));
        }
        let repo = crate::engine::repository(tag);
        let name = &tag[repo.len() + 1..];
        let opts = bollard::query_parameters::TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(name)
            .build();
        self.prune
            .tag_image(id, Some(opts))
            .await
            .map_err(|e| self.prune_err(e))
    }

    /// `DELETE /images/{reference}`, never forced; `noprune`: the untagged parents a classic
    /// build left stay (the retention class: for the images step to judge by its own rules);
    /// without it the daemon deletes them with the image, as its own prune does (the images
    /// step). The daemon's answer: what it untagged and what it deleted.
    pub async fn remove_image(
        &self,
        reference: &str,
        noprune: bool,
    ) -> Result<Vec<Removed>, ReadError> {
        path_safe(reference)?;
        let opts = RemoveImageOptionsBuilder::default()
            .force(false)
            .noprune(noprune)
            .build();
        let answer = self
            .prune
            .remove_image(reference, Some(opts), None)
            .await
            .map_err(|e| self.prune_err(e))?;
        Ok(answer
            .into_iter()
            .flat_map(|r| {
                let untagged = r.untagged.map(Removed::Untagged);
                let deleted = r.deleted.map(Removed::Deleted);
                untagged.into_iter().chain(deleted)
            })
            .collect())
    }
}

/// One line of a `DELETE /images` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Untagged(String),
    Deleted(String),
}

/// Decodes a replay (one JSON object per event). Uses: a container's `create` and `start`
/// (its `image` attribute, as given: a reference or an id), and an image's `pull`, `tag`,
/// `load` and `import` (the image's id or reference).
pub fn decode_events(body: &[u8]) -> Result<Replay, String> {
    let mut out = Replay::default();
    for value in serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>() {
        let v = value.map_err(|e| format!("decoding /events: {e}"))?;
        let Some(time) = v.get("time").and_then(|t| t.as_i64()) else {
            continue;
        };
        out.count += 1;
        out.earliest = Some(out.earliest.map_or(time, |e| e.min(time)));
        out.uses.extend(use_of(&v));
    }
    Ok(out)
}

/// The use an event records, if it is one: see [`decode_events`].
pub fn use_of(v: &serde_json::Value) -> Option<UseEvent> {
    let kind = v.get("Type").and_then(|t| t.as_str())?;
    let action = v.get("Action").and_then(|a| a.as_str())?;
    let time = v.get("time").and_then(|t| t.as_i64())?;
    let text = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_string);
    let image = match (kind, action) {
        ("container", "create" | "start") => {
            text("/Actor/Attributes/image").or_else(|| text("/from"))
        }
        ("image", "pull" | "tag" | "load" | "import") => text("/Actor/ID"),
        _ => None,
    }?;
    Some(UseEvent {
        image,
        time,
        tag: action == "tag",
    })
}

/// `(service name, "current" | "previous", image)` for each spec a service has:
/// `Spec.TaskTemplate.ContainerSpec.Image` and `PreviousSpec.…`.
pub fn decode_spec_images(body: &[u8]) -> Result<Vec<(String, &'static str, String)>, String> {
    let services: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("decoding /services: {e}"))?;
    Ok(services
        .iter()
        .flat_map(|s| {
            let name = s
                .pointer("/Spec/Name")
                .and_then(|n| n.as_str())
                .unwrap_or("?");
            [("current", "/Spec"), ("previous", "/PreviousSpec")]
                .into_iter()
                .filter_map(move |(which, spec)| {
                    let image = s
                        .pointer(&format!("{spec}/TaskTemplate/ContainerSpec/Image"))?
                        .as_str()?;
                    Some((name.to_string(), which, image.to_string()))
                })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_previous_specs_decode() {
        // As Docker 20.10 streams them (abridged): one object per line.
        let events = br#"{"status":"create","id":"c1","from":"app:1","Type":"container","Action":"create","Actor":{"ID":"c1","Attributes":{"image":"app:1","name":"x"}},"scope":"local","time":1700000000,"timeNano":1700000000000000000}
{"status":"start","id":"c1","from":"app:1","Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"image":"app:1","name":"x"}},"scope":"local","time":1700000001,"timeNano":1700000001000000000}
"#;
        let e = decode_events(events).unwrap();
        assert_eq!((e.count, e.earliest), (2, Some(1_700_000_000)));
        assert_eq!(
            e.uses,
            [
                UseEvent {
                    image: "app:1".into(),
                    time: 1_700_000_000,
                    tag: false
                },
                UseEvent {
                    image: "app:1".into(),
                    time: 1_700_000_001,
                    tag: false
                }
            ]
        );
        assert_eq!(decode_events(b"").unwrap(), Replay::default());
        // Other events count (they fill the buffer) but are no use; an image's pull and tag are.
        let more = br#"{"Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"image":"app:1"}},"time":1700000002}
{"Type":"network","Action":"connect","Actor":{"ID":"n"},"time":1700000003}
{"Type":"image","Action":"pull","Actor":{"ID":"busybox:latest"},"time":1700000004}
{"Type":"image","Action":"tag","Actor":{"ID":"sha256:ab","Attributes":{"name":"x:1"}},"time":1700000005}
"#;
        let e = decode_events(more).unwrap();
        assert_eq!(e.count, 4);
        let images: Vec<&str> = e.uses.iter().map(|u| u.image.as_str()).collect();
        assert_eq!(images, ["busybox:latest", "sha256:ab"]);
        let tags: Vec<bool> = e.uses.iter().map(|u| u.tag).collect();
        assert_eq!(tags, [false, true]);
        assert!(decode_events(b"{nope").is_err());
        // Docker 29 (API 1.52 on) sends no legacy `status`, `id` and `from`: a use is read from
        // `Type`, `Action`, `Actor` and `time` alone (first written from moby's API definition;
        // the answers captured from Docker 29.7.2 are read in the test below).
        let v29 = br#"{"Type":"container","Action":"create","Actor":{"ID":"c9","Attributes":{"image":"app:9","name":"x"}},"scope":"local","time":1800000000,"timeNano":1800000000000000000}
{"Type":"image","Action":"tag","Actor":{"ID":"sha256:cd","Attributes":{"name":"app:9"}},"scope":"local","time":1800000001,"timeNano":1800000001000000000}
"#;
        let e = decode_events(v29).unwrap();
        assert_eq!(e.count, 2);
        let images: Vec<(&str, bool)> = e.uses.iter().map(|u| (u.image.as_str(), u.tag)).collect();
        assert_eq!(images, [("app:9", false), ("sha256:cd", true)]);
        // Its image inspect leaves out an empty `Parent`: the layers the retention class reads
        // still decode.
        let inspect: bollard::models::ImageInspect = serde_json::from_str(
            r#"{"Id":"sha256:cd","RepoTags":["app:9"],"RepoDigests":[],"Created":"2026-01-01T00:00:00Z","RootFS":{"Type":"layers","Layers":["sha256:l1","sha256:l2"]}}"#,
        )
        .unwrap();
        assert_eq!(
            inspect.root_fs.and_then(|r| r.layers).map(|l| l.len()),
            Some(2)
        );
        let services = br#"[{"ID":"s1","Spec":{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"app:2"}}},
            "PreviousSpec":{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"app:1@sha256:ab"}}}},
            {"ID":"s2","Spec":{"Name":"db","TaskTemplate":{"ContainerSpec":{"Image":"db:1"}}}}]"#;
        assert_eq!(
            decode_spec_images(services).unwrap(),
            [
                ("web".to_string(), "current", "app:2".to_string()),
                ("web".to_string(), "previous", "app:1@sha256:ab".to_string()),
                ("db".to_string(), "current", "db:1".to_string())
            ]
        );
    }

    /// Docker 29.7.2's own answers (API 1.55; `tests/fixtures/docker_29.7.2_*`, captured from a
    /// private daemon of either store after a build, a multi-stage build, a tag, a `run --rm`
    /// and a `create`): the replay's uses and the image inspect's layers, read as from older
    /// engines.
    #[test]
    fn reads_docker_29s_captured_events_and_inspect() {
        for store in ["containerd", "classic"] {
            let read = |f: &str| crate::model::fixture(&format!("docker_29.7.2_{store}/{f}"));
            let replay = decode_events(&read("events.jsonl")).unwrap();
            assert_eq!(replay.count, 13, "{store}");
            let uses: Vec<(bool, &str)> = replay
                .uses
                .iter()
                .map(|u| (u.tag, u.image.as_str()))
                .collect();
            // The three tags name the image by id; the containers' create and start by the
            // reference they were made from.
            assert_eq!(uses.len(), 6, "{store}: {uses:?}");
            assert!(uses[..3]
                .iter()
                .all(|(tag, i)| *tag && i.starts_with("sha256:")));
            assert_eq!(
                uses[3..],
                [
                    (false, "cap-base:1"),
                    (false, "cap-base:1"),
                    (false, "cap-app:1")
                ]
            );
            let raw = read("image_inspect.json");
            assert!(!String::from_utf8_lossy(&raw).contains("\"Parent\""));
            let inspect: bollard::models::ImageInspect = serde_json::from_slice(&raw).unwrap();
            let layers = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
            assert_eq!(layers.len(), 2, "{store}");
        }
    }
}

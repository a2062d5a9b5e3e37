//! What the engine behind the socket is, and every rule that follows from it: one value,
//! computed once per snapshot from `/info`, that the rest of the program asks instead of
//! looking at versions or error codes itself. Each rule says where it was learned.
//!
//! Engines differ in what they may be sent and in what their answers mean. A daemon that does
//! not know a filter either refuses it (400 "invalid filter", a skipped step) or, worse, ignores
//! it: Docker before 18.09 (API 1.39) takes no filters on `POST /build/prune` at all and would
//! remove every unused build-cache record, young ones too (moby PR #37651), so there the
//! build-cache step is refused before it is sent.

use crate::disk::DiskPathSource;
use crate::model::{Class, ReadError};
use bollard::models::{ContainerSummaryStateEnum, ImageSummary, LocalNodeState, SystemInfo};
use serde::Serialize;
use std::path::PathBuf;

/// Which engine answers the Docker Engine API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    /// Docker Engine (moby): year-based versions from 17.03 on.
    Docker,
    /// Podman's compatibility API: its `/info` handler sets `ProductLicense` to "Apache-2.0"
    /// and numbers versions its own way (pkg/api/handlers/compat/info.go).
    Podman,
    /// Something else speaking the API; prunegate treats it as Docker and says so.
    Unknown,
}

/// Where the engine keeps images, which decides what "dangling" and `until` mean to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "driver")]
pub enum ImageStore {
    /// The classic store on a graph driver (`overlay2`, `vfs`, …).
    Graphdriver(String),
    /// Docker's containerd image store: its `/info` `DriverStatus` carries
    /// `["driver-type", "io.containerd.snapshotter.v1"]` (moby daemon/containerd
    /// `LayerStoreStatus`).
    Containerd,
}

/// What this node is in a swarm, which decides whether services and tasks can be read at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwarmRole {
    NotInSwarm,
    Manager,
    Worker,
    /// `pending`, `error` or `locked`: in a swarm but unable to answer for it.
    Unavailable(String),
}

/// The engine, as one `/info` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Engine {
    pub product: Product,
    pub server_version: Option<String>,
    pub image_store: ImageStore,
    pub swarm: SwarmRole,
    /// `DockerRootDir`: where the engine keeps images, containers and build cache.
    pub data_root: Option<PathBuf>,
    /// `/info` `Containerd.Address` (API 1.46 on): the containerd the daemon uses.
    pub containerd_address: Option<String>,
}

/// Where a system containerd listens and keeps its data (containerd's defaults,
/// `defaults.DefaultAddress` and `defaults.DefaultRootDir`; Debian's docker.io runs dockerd
/// against it).
const SYSTEM_CONTAINERD_SOCKETS: [&str; 2] = [
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
];
const SYSTEM_CONTAINERD_ROOT: &str = "/var/lib/containerd";

/// The value of `DriverStatus` key `driver-type` that marks the containerd image store.
const CONTAINERD_SNAPSHOTTER: &str = "io.containerd.snapshotter.v1";

/// Which daemon a retention use history belongs to (`/info`). Docker's `ID` is the daemon's
/// own and outlives restarts; Podman 4.3's compat `/info` answers a new random UUID at every
/// request (seen on the real service: each run found the history "of another daemon"), so for
/// Podman the host name and the storage root stand for it.
pub fn daemon_identity(info: &SystemInfo) -> String {
    match Engine::from_info(info).product {
        Product::Podman => match (&info.name, &info.docker_root_dir) {
            (Some(name), Some(root)) => format!("podman:{name}:{root}"),
            _ => String::new(),
        },
        _ => info.id.clone().unwrap_or_default(),
    }
}

impl Engine {
    pub fn from_info(info: &SystemInfo) -> Engine {
        let version = info.server_version.clone();
        let product = if version.as_deref().and_then(docker_release).is_some() {
            Product::Docker
        } else if info.product_license.as_deref() == Some("Apache-2.0") {
            Product::Podman
        } else {
            Product::Unknown
        };
        let containerd = info.driver_status.iter().flatten().any(|pair| {
            pair.first().map(String::as_str) == Some("driver-type")
                && pair.get(1).map(String::as_str) == Some(CONTAINERD_SNAPSHOTTER)
        });
        Engine {
            product,
            server_version: version,
            image_store: if containerd {
                ImageStore::Containerd
            } else {
                ImageStore::Graphdriver(info.driver.clone().unwrap_or_default())
            },
            swarm: swarm_role(info),
            data_root: info.docker_root_dir.as_ref().map(PathBuf::from),
            containerd_address: info.containerd.as_ref().and_then(|c| c.address.clone()),
        }
    }

    /// Directories on the filesystems that hold this engine's data, each with where it came
    /// from: `DockerRootDir` always; on the containerd image store, image content lives in
    /// containerd's root instead. A containerd that dockerd starts itself keeps it under
    /// `DockerRootDir/containerd` (seen on Docker 28.5: `Containerd.Address` under its exec
    /// root); a system containerd (its default socket) under `/var/lib/containerd`, its
    /// default root, which may be another filesystem. A containerd elsewhere, or a daemon too
    /// old to say (before API 1.46), adds nothing: `gates.disk.paths` names such a root.
    pub fn data_paths(&self) -> Result<Vec<(PathBuf, DiskPathSource)>, ReadError> {
        let mut paths = vec![(self.data_root()?, DiskPathSource::DockerRootDir)];
        let system_containerd = self
            .containerd_address
            .as_deref()
            .is_some_and(|a| SYSTEM_CONTAINERD_SOCKETS.contains(&a.trim_start_matches("unix://")));
        if self.image_store == ImageStore::Containerd && system_containerd {
            paths.push((
                SYSTEM_CONTAINERD_ROOT.into(),
                DiskPathSource::ContainerdRoot,
            ));
        }
        Ok(paths)
    }

    /// The data root, or why there is none to measure.
    pub fn data_root(&self) -> Result<PathBuf, ReadError> {
        self.data_root
            .clone()
            .ok_or_else(|| ReadError::local("the daemon's info has no DockerRootDir"))
    }

    /// Why prunegate will not prune on this engine at all, if it will not: every run then
    /// fails before its first step (`check` too), saying so, rather than guess what the
    /// engine's prune endpoints would do.
    ///
    /// - Docker before 18.09 (API 1.39): its `POST /build/prune` takes no filters and would
    ///   remove every unused build-cache record, young ones too (moby PR #37651); the other
    ///   prune endpoints' filters date from 17.x releases out of support since 2019. The oldest
    ///   Docker tested here is 20.10.
    /// - Podman before 4.0: its compat API's prune answers and id forms differ from 4.x
    ///   (tested: 4.3.1), and no test daemon of it exists here.
    /// - Anything else that speaks the API (no Docker version, not Podman's license): nothing
    ///   says what "dangling" or `until` mean to it.
    pub fn unsupported(&self) -> Option<String> {
        let version = self.server_version.as_deref().unwrap_or("");
        match self.product {
            Product::Docker => docker_release(version).filter(|r| *r < (18, 9)).map(|_| {
                format!(
                    "Docker {version} is too old for prunegate (it needs 18.09, API 1.39, or \
                         later): before 18.09 the build-cache prune ignores its filters and would \
                         remove build cache younger than the cut-off"
                )
            }),
            Product::Podman => {
                let major = version
                    .split('.')
                    .next()
                    .and_then(|m| m.parse::<u32>().ok());
                major.is_none_or(|m| m < 4).then(|| {
                    format!(
                        "Podman {version} is too old for prunegate (it needs 4.0 or later; tested \
                         on 4.3): its compat API's prune answers differ"
                    )
                })
            }
            Product::Unknown => Some(format!(
                "unknown engine (/info ServerVersion {version:?}, neither a Docker release nor \
                 Podman): prunegate cannot tell what its prune endpoints would remove"
            )),
        }
    }

    /// Whether the image prune's `until` compares when the image *record* was made rather than
    /// the `Created` that `/images/json` shows. On the containerd image store it does: moby's
    /// `daemon/containerd` `setupFilters` (the same for the image list and the prune, Docker 26
    /// and 28) compares containerd's `image.CreatedAt`, and a dangling image's record
    /// (`moby-dangling@…`) is made when it became dangling — while `Created` is the config's
    /// build date. Checked on Docker 26.1 and 28.5 with the containerd store: an image built
    /// with a 2000 date and untagged 20 s earlier is listed by `until=1s` and not by `until=60s`.
    pub fn image_until_is_record_time(&self) -> bool {
        self.image_store == ImageStore::Containerd
    }

    /// Whether the images step deletes image by image, judging each, rather than calling the
    /// prune endpoint: wherever that prune could take cache.
    ///
    /// On the classic store, Docker's `dangling=true` prune takes images pulled by digest that
    /// no tag names — the cache a swarm or a digest-pinned compose project leaves: moby
    /// `daemon/images/image_prune.go` takes every head image (no child) whose references include
    /// no `NamedTagged` one, and deletes each of its digest references (seen on 20.10: `docker
    /// service create` of a registry image, then `service rm`, and the prune removed
    /// `REPO@sha256:…`). The containerd store keeps a digest pull as a named record, but its prune
    /// (`daemon/containerd/image_prune.go`, `isDanglingImage`) takes every `moby-dangling@…`
    /// record no container uses — also a swarm service's rollback target that the host had
    /// pulled by tag, once the tag moved (seen on 28.5: swarm pulls nothing for a digest it
    /// already has, so no named record pins it). Podman has no swarm, and its prune takes only
    /// images with no name at all (`libimage` `isDangling`; a digest pull is named
    /// `REPO@sha256:…`, seen on 4.3.1): its prune endpoint stays.
    pub fn images_step_judges(&self) -> bool {
        self.product != Product::Podman
    }

    /// How many events the engine keeps for a replay (`/events?since=`): moby keeps the last
    /// 256 in memory (`daemon/events/events.go`, `eventsLimit`), emptied by a restart; Podman
    /// reads its persistent event log (journald or a file), which a restart does not empty:
    /// `None`.
    pub fn event_buffer(&self) -> Option<usize> {
        match self.product {
            Product::Podman => None,
            // An engine prunegate refuses anyway: taken as moby, the stricter.
            Product::Docker | Product::Unknown => Some(256),
        }
    }

    /// Why `class` must not be sent to this engine, if it must not: the dry run then says the
    /// same as the run, and no request is wasted on a known refusal.
    pub fn refuse(&self, class: Class) -> Option<String> {
        match (class, &self.product) {
            // Its compat API answers 404 to POST /build/prune (checked on Podman 4.3.1).
            (Class::BuildCache, Product::Podman) => {
                Some("Podman has no build-cache prune endpoint".to_string())
            }
            // Tried on Podman 4.3.1: its compat `/system/df` gives images of megabytes a few
            // hundred bytes of `Size − SharedSize`, one entry per tag, and a container event's
            // image did not match its tags. On 4.3.1, 5.4.2 and 5.8.6 (2026-12-07, a two-tag
            // image of a 2 MB and a 3 MB layer): `/system/df` lists it once per tag, each entry's
            // `RepoTags` the bare tag (`["1"]`, `["2"]`, no repository), an intermediate image
            // as `<none>`; `Size − SharedSize` was right for that image; container events name
            // the image fully qualified (`docker.io/library/pgx:1`), as its listing does. The
            // watermarks would be judged on figures not yet checked against what a removal
            // frees on Podman's storage. Refused until they are (docs/retention.md).
            (Class::TaggedImages, Product::Podman) => Some(
                "the retention class is not supported on Podman yet: its /system/df lists an \
                 image once per tag under the bare tag, and its sizes are not yet checked \
                 against what a removal frees (docs/retention.md)"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

/// The reference the classic store's `/images/json` lists for an image without a tag (Docker
/// 20.10 to 28; newer daemons and the containerd store send an empty list instead).
const UNTAGGED: &str = "<none>:<none>";
/// The same for an image without a digest.
const UNDIGESTED: &str = "<none>@<none>";

/// The tags an image listing names, without the untagged placeholder.
pub fn tags(repo_tags: &[String]) -> impl Iterator<Item = &str> {
    repo_tags
        .iter()
        .map(String::as_str)
        .filter(|t| *t != UNTAGGED)
}

/// The digest references (`REPO@sha256:…`) an image listing names, without the placeholder.
pub fn digests(repo_digests: &[String]) -> impl Iterator<Item = &str> {
    repo_digests
        .iter()
        .map(String::as_str)
        .filter(|d| *d != UNDIGESTED)
}

/// Whether a listed image holds a tag.
pub fn is_tagged(repo_tags: &[String]) -> bool {
    tags(repo_tags).next().is_some()
}

/// The repository of a tag or digest reference: `127.0.0.1:5000/app` of
/// `127.0.0.1:5000/app:1` and of `127.0.0.1:5000/app@sha256:…` (a port's colon is not a tag's:
/// the tag follows the last `/`).
pub fn repository(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].rfind(':') {
        Some(colon) => &name[..last + colon],
        None => name,
    }
}

/// The digest a reference pins (`sha256:…` of `REPO:TAG@sha256:…` or `REPO@sha256:…`), if any:
/// how a swarm spec names the image it runs.
pub fn pinned_digest(reference: &str) -> Option<&str> {
    reference.split_once('@').map(|(_, d)| d)
}

/// Whether `id` is an image id in Docker's form (`sha256:` and 64 lowercase hex digits): the
/// only thing the images step puts into a request path by id. A daemon that lists anything
/// else is not believed.
pub fn is_image_id(id: &str) -> bool {
    id.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Whether `name` is a repository name a daemon may be sent in a path: components of the
/// characters registries' names use (letters, digits, `.`, `_`, `-`, and `:` for a port),
/// separated by single `/`, none of them `.` or `..` and none starting with `.` — nothing a URL
/// library would resolve as a dot segment, nothing that ends the path (`?`, `#`, `%`).
fn is_repository(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|c| {
            !c.is_empty()
                && !c.starts_with('.')
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
        })
}

/// Whether `reference` is a digest reference a daemon may be sent in a path, `REPO@sha256:<64
/// hex>`: the images step deletes an image by its digests when they span repositories, and a
/// daemon's listing is not trusted to put only that into a request path.
pub fn is_digest_reference(reference: &str) -> bool {
    let Some((repo, digest)) = reference.split_once('@') else {
        return false;
    };
    is_repository(repo) && !repo.bytes().any(|b| b.is_ascii_uppercase()) && is_image_id(digest)
}

/// Whether `reference` is `REPO:TAG` as Docker's reference grammar has it (a tag: a letter,
/// digit or `_`, then up to 127 of those, `.` and `-`): what the retention class untags by.
pub fn is_tag_reference(reference: &str) -> bool {
    let last = reference.rfind('/').map_or(0, |i| i + 1);
    let Some(colon) = reference[last..].rfind(':').map(|c| last + c) else {
        return false;
    };
    let (repo, tag) = (&reference[..colon], &reference[colon + 1..]);
    let tag_ok = tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    tag_ok && is_repository(repo)
}

/// Whether `reference` may go into a request path at all: an image id, a digest reference or
/// a tag reference. Checked where the path is made (`docker/`), for every reference a
/// daemon's answer supplied: `../volumes/x` would otherwise become a volume's path.
pub fn is_path_safe_reference(reference: &str) -> bool {
    is_image_id(reference) || is_digest_reference(reference) || is_tag_reference(reference)
}

/// A container state in Docker's words. Podman 4.3's compat API says `stopped` for a container
/// that has exited (`docker run` of a command that ends: `State` "stopped", `Status` "Exited (0)
/// …"), where Docker says `exited`.
pub fn container_state(state: &str) -> &str {
    match state {
        "stopped" => "exited",
        other => other,
    }
}

/// An image id as Docker writes it, `sha256:<64 hex>`. Podman's compat API answers some ids
/// bare — `ParentId` in `/images/json` and `Deleted` in `/images/prune` (checked on Podman
/// 4.3.1) — which then match no listed image: parents look childless, removed images go
/// unreported. Every image id read is passed through this.
pub fn image_id(id: &str) -> String {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("sha256:{id}")
    } else {
        id.to_string()
    }
}

/// An image listing with its ids in Docker's form on every engine ([`image_id`]).
pub fn normalized_images(list: Vec<ImageSummary>) -> Vec<ImageSummary> {
    list.into_iter()
        .map(|mut i| {
            i.id = image_id(&i.id);
            if !i.parent_id.is_empty() {
                i.parent_id = image_id(&i.parent_id);
            }
            i
        })
        .collect()
}

/// Whether a failed prune is a reason to skip the step rather than a failure of the run. These
/// are moby's answers (409 while a prune of the same kind runs, 404 where `/build/prune` does
/// not exist, 400 for an unknown filter); no engine is known to mean something else by them.
pub fn skip_reason(class: Class, e: &ReadError) -> Option<String> {
    match e.status {
        // moby's prune endpoints answer 409 while a prune of the same kind runs.
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

/// Whether `POST /containers/prune` removes a container in `state`: moby's prune lists
/// containers that are not running, where paused and restarting count as running
/// (daemon/prune.go `ContainersPrune`), so created, exited and dead ones go.
pub fn container_prunable(state: Option<ContainerSummaryStateEnum>) -> bool {
    matches!(
        state,
        Some(ContainerSummaryStateEnum::CREATED)
            | Some(ContainerSummaryStateEnum::EXITED)
            | Some(ContainerSummaryStateEnum::DEAD)
    )
}

/// Build-cache record types BuildKit never prunes with `all=false`: its own internal records
/// and frontends (the `docker builder prune` default keeps them).
pub fn build_cache_kind_kept(kind: &str) -> bool {
    matches!(kind, "internal" | "frontend")
}

/// Major and minor of a Docker engine version (`18.06.3-ce`, `20.10.24`, `29.0.1`); `None` for
/// anything else (Podman and other compatible servers number their own versions).
fn docker_release(server_version: &str) -> Option<(u32, u32)> {
    let mut parts = server_version.split(['.', '-', '+']);
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    // Docker's year-based versions began at 17.03.
    (17..100).contains(&major).then_some((major, minor))
}

fn swarm_role(info: &SystemInfo) -> SwarmRole {
    let Some(swarm) = &info.swarm else {
        return SwarmRole::NotInSwarm;
    };
    match swarm.local_node_state {
        None | Some(LocalNodeState::EMPTY) | Some(LocalNodeState::INACTIVE) => {
            SwarmRole::NotInSwarm
        }
        Some(LocalNodeState::ACTIVE) if swarm.control_available == Some(true) => SwarmRole::Manager,
        Some(LocalNodeState::ACTIVE) => SwarmRole::Worker,
        Some(other) => SwarmRole::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_parsed_and_checked_before_they_reach_a_path() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(repository("127.0.0.1:5000/app:1"), "127.0.0.1:5000/app");
        assert_eq!(
            repository(&format!("127.0.0.1:5000/app@{d}")),
            "127.0.0.1:5000/app"
        );
        assert_eq!(repository(&format!("app:1@{d}")), "app");
        assert_eq!(repository("127.0.0.1:5000/app"), "127.0.0.1:5000/app");
        assert_eq!(pinned_digest(&format!("app:1@{d}")), Some(d.as_str()));
        assert!(is_digest_reference(&format!("127.0.0.1:5000/a/b@{d}")));
        for bad in [
            format!("../volumes/x@{d}"),
            format!("app?force=1@{d}"),
            format!("/app@{d}"),
            "app@sha256:zz".to_string(),
            d.clone(),
        ] {
            assert!(!is_digest_reference(&bad), "{bad}");
        }
        assert!(is_image_id(&d) && !is_image_id("sha256:ABC") && !is_image_id("../x"));
        for good in [
            "app:1",
            "127.0.0.1:5000/team/app:v1.2-rc_3",
            "Registry.Example/app:_x",
        ] {
            assert!(
                is_tag_reference(good) && is_path_safe_reference(good),
                "{good}"
            );
        }
        for bad in [
            "../volumes/x:1",
            "app/../../volumes/x:1",
            "app/./x:1",
            "app//x:1",
            "app:1?force=true",
            "app:1#x",
            "app%2f..:1",
            "app:.hidden",
            "app",
            "app:",
            ":1",
            "/app:1",
        ] {
            assert!(!is_path_safe_reference(bad), "{bad}");
        }
        assert!(is_path_safe_reference(&d) && is_path_safe_reference(&format!("app@{d}")));
        assert_eq!(
            tags(&["<none>:<none>".into(), "a:1".into()]).collect::<Vec<_>>(),
            ["a:1"]
        );
        assert!(!is_tagged(&["<none>:<none>".into()]));
    }

    fn engine(version: &str) -> Engine {
        Engine::from_info(&SystemInfo {
            server_version: Some(version.to_string()),
            ..Default::default()
        })
    }

    #[test]
    fn too_old_and_unknown_engines_are_refused() {
        assert!(engine("18.06.3-ce")
            .unsupported()
            .unwrap()
            .contains("Docker 18.06.3-ce is too old"));
        assert!(engine("17.12.1-ce").unsupported().is_some());
        for ok in [
            "18.09.0",
            "20.10.24+dfsg1",
            "26.1.5+dfsg1",
            "28.5.2+dfsg4",
            "29.0.1",
        ] {
            assert_eq!(engine(ok).unsupported(), None, "{ok}");
        }
        let podman = |v: &str| {
            Engine::from_info(&SystemInfo {
                server_version: Some(v.into()),
                product_license: Some("Apache-2.0".into()),
                ..Default::default()
            })
        };
        assert_eq!(podman("4.3.1").unsupported(), None);
        assert_eq!(podman("5.4.2").unsupported(), None);
        assert!(podman("3.4.4")
            .unsupported()
            .unwrap()
            .contains("Podman 3.4.4"));
        // Docker 1.13 predates year versions; no version at all; something else entirely.
        for unknown in ["1.13.1", "weird", ""] {
            assert!(
                engine(unknown)
                    .unsupported()
                    .is_some_and(|w| w.contains("unknown engine")),
                "{unknown}"
            );
        }
        assert!(Engine::from_info(&SystemInfo::default())
            .unsupported()
            .is_some());
    }

    #[test]
    fn image_ids_are_normalised_to_dockers_form() {
        let bare = "e9fb1a1d6371bcb9145e7b7ee2697b6c406bb37e651585d091057e91c277abec";
        assert_eq!(image_id(bare), format!("sha256:{bare}"));
        assert_eq!(
            image_id(&format!("sha256:{bare}")),
            format!("sha256:{bare}")
        );
        // Not an id: left alone (a containerd-store `Untagged` name, a short prefix).
        assert_eq!(
            image_id("moby-dangling@sha256:ab"),
            "moby-dangling@sha256:ab"
        );
        assert_eq!(image_id("e9fb1a1d6371"), "e9fb1a1d6371");
    }

    #[test]
    fn product_and_store_from_info() {
        assert_eq!(engine("20.10.24").product, Product::Docker);
        let podman = Engine::from_info(&SystemInfo {
            server_version: Some("4.3.1".into()),
            product_license: Some("Apache-2.0".into()),
            ..Default::default()
        });
        assert_eq!(podman.product, Product::Podman);
        // Podman answers 404 to the build-cache prune: skipped before it is sent.
        assert!(podman
            .refuse(Class::BuildCache)
            .is_some_and(|w| w.contains("Podman")));
        assert_eq!(podman.refuse(Class::Images), None);
        // The retention class: refused on Podman, its sizes and events not yet learned.
        assert!(podman
            .refuse(Class::TaggedImages)
            .is_some_and(|w| w.contains("Podman")));
        assert_eq!(engine("20.10.24").refuse(Class::TaggedImages), None);
        // A Podman's history is known by host and storage root: its `ID` changes per request.
        let identity = |id: &str| {
            daemon_identity(&SystemInfo {
                id: Some(id.into()),
                server_version: Some("4.3.1".into()),
                product_license: Some("Apache-2.0".into()),
                name: Some("ci-1".into()),
                docker_root_dir: Some("/var/lib/containers/storage".into()),
                ..Default::default()
            })
        };
        assert_eq!(identity("uuid-1"), identity("uuid-2"));
        assert_eq!(identity("x"), "podman:ci-1:/var/lib/containers/storage");
        let containerd = Engine::from_info(&SystemInfo {
            server_version: Some("28.5.2".into()),
            driver: Some("overlayfs".into()),
            driver_status: Some(vec![vec![
                "driver-type".into(),
                "io.containerd.snapshotter.v1".into(),
            ]]),
            ..Default::default()
        });
        assert_eq!(containerd.image_store, ImageStore::Containerd);
        assert_eq!(
            engine("20.10.24").image_store,
            ImageStore::Graphdriver(String::new())
        );
    }

    #[test]
    fn the_disk_gate_watches_a_system_containerds_root_on_the_containerd_store() {
        let info = |store: &str, address: &str| {
            Engine::from_info(&SystemInfo {
                server_version: Some("28.5.2".into()),
                docker_root_dir: Some("/var/lib/docker".into()),
                driver_status: Some(vec![vec!["driver-type".into(), store.into()]]),
                containerd: Some(bollard::models::ContainerdInfo {
                    address: Some(address.into()),
                    namespaces: None,
                }),
                ..Default::default()
            })
        };
        let paths = |e: Engine| e.data_paths().unwrap();
        let root = ("/var/lib/docker".into(), DiskPathSource::DockerRootDir);
        let system = "/run/containerd/containerd.sock";
        assert_eq!(
            paths(info(CONTAINERD_SNAPSHOTTER, system)),
            vec![
                root.clone(),
                ("/var/lib/containerd".into(), DiskPathSource::ContainerdRoot)
            ]
        );
        // dockerd's own containerd (under its exec root) keeps its data under DockerRootDir.
        let managed = "/var/run/docker/containerd/containerd.sock";
        assert_eq!(
            paths(info(CONTAINERD_SNAPSHOTTER, managed)),
            vec![root.clone()]
        );
        // The classic store keeps no image content in containerd.
        assert_eq!(paths(info("overlay2", system)), vec![root]);
    }

    #[test]
    fn refusals_that_skip_a_step() {
        let e = |status, message: &str| ReadError {
            status: Some(status),
            message: message.into(),
        };
        assert!(skip_reason(
            Class::Images,
            &e(409, "a prune operation is already running")
        )
        .is_some());
        assert!(skip_reason(Class::BuildCache, &e(404, "page not found")).is_some());
        assert!(skip_reason(Class::Images, &e(404, "page not found")).is_none());
        assert!(skip_reason(Class::Images, &e(400, "invalid filter 'until'")).is_some());
        assert!(skip_reason(Class::Images, &e(500, "boom")).is_none());
    }
}

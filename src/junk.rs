//! Which untagged images are junk and which are cache: what "dangling" means to prunegate
//! (docs/gates.md). Pure: judged on one image listing, the tags prunegate saw images hold on
//! earlier runs ([`SeenTags`]) and the images swarm specs pin.
//!
//! Docker's own `dangling=true` prune on the classic store takes every untagged image, also
//! those that only a digest names — and those are what a registry gave the host: swarm (its
//! default `--resolve-image always`) and a digest-pinned compose service pull exactly so. The
//! next deploy would pull them again. So:
//! - **junk**: an image no tag and no digest names (a build leftover, a superseded local build,
//!   what the classic builder leaves); a pull *superseded* by a newer image now holding its tag;
//! - **cache**: an image pulled by digest that nothing superseded, or that a swarm service's
//!   current or previous spec pins (its rollback target).
//!
//! "Superseded" is known, never guessed: the classic store keeps no record of the tag an
//! untagged image once had, so prunegate remembers the tags it saw each image hold
//! (`state.dir/tags.json`) and calls a digest-named image superseded only when a tag it was
//! seen holding now names another image. A tag that moved where prunegate did not see it is a
//! gap, and a gap keeps the image.

use crate::engine;
use bollard::models::ImageSummary;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The tags prunegate saw each present image hold, on one daemon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeenTags {
    /// The daemon these are of ([`crate::engine::daemon_identity`]): image ids are content
    /// hashes, but the tags one daemon gave an image say nothing of another's.
    pub daemon_id: String,
    /// Image id → every tag it was seen holding.
    pub tags: BTreeMap<String, BTreeSet<String>>,
}

impl SeenTags {
    /// What is known on `daemon_id`: nothing when these were seen on another daemon.
    pub fn of_daemon(self, daemon_id: &str) -> SeenTags {
        if self.daemon_id == daemon_id {
            self
        } else {
            SeenTags {
                daemon_id: daemon_id.to_string(),
                tags: BTreeMap::new(),
            }
        }
    }

    /// These, with the tags each listed image holds now added, and the images no longer
    /// listed forgotten (so the memory never outgrows the image store).
    pub fn observe(&self, images: &[ImageSummary]) -> SeenTags {
        let mut tags = BTreeMap::new();
        for image in images {
            let mut seen = self.tags.get(&image.id).cloned().unwrap_or_default();
            seen.extend(engine::tags(&image.repo_tags).map(String::from));
            if !seen.is_empty() {
                tags.insert(image.id.clone(), seen);
            }
        }
        SeenTags {
            daemon_id: self.daemon_id.clone(),
            tags,
        }
    }
}

/// What a swarm service's spec pins: the digest and whose spec it is (`service web's previous
/// spec`), or why the specs could not be read (a worker cannot; then no superseded pull is
/// taken, since it may be a rollback target).
pub type Pins = Result<HashMap<String, String>, String>;

/// The pins of services' images (`(service, "current"|"previous", reference)`).
pub fn pins(specs: &[(String, &'static str, String)]) -> HashMap<String, String> {
    specs
        .iter()
        .filter_map(|(service, which, image)| {
            let digest = engine::pinned_digest(image)?;
            Some((
                digest.to_string(),
                format!("service {service}'s {which} spec"),
            ))
        })
        .collect()
}

/// The verdict on one untagged image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Junk, and what kind.
    Junk(String),
    /// Cache, and why it stays.
    Cache(String),
}

/// Judges an untagged image of `listing` (see the module doc). `holders`: which image each tag
/// names now ([`tag_holders`]).
pub fn judge(
    image: &ImageSummary,
    seen: &SeenTags,
    holders: &HashMap<&str, &str>,
    pins: &Pins,
) -> Verdict {
    let digests: Vec<&str> = engine::digests(&image.repo_digests).collect();
    if digests.is_empty() {
        return Verdict::Junk("no tag and no digest: a build leftover".into());
    }
    let pinned = |pins: &HashMap<String, String>| {
        digests.iter().find_map(|d| {
            let digest = engine::pinned_digest(d)?;
            pins.get(digest)
                .map(|whose| format!("pinned by {whose} ({d})"))
        })
    };
    if let Ok(p) = pins {
        if let Some(why) = pinned(p) {
            return Verdict::Cache(why);
        }
    }
    let moved = seen
        .tags
        .get(&image.id)
        .into_iter()
        .flatten()
        .find_map(|tag| {
            holders
                .get(tag.as_str())
                .filter(|holder| **holder != image.id)
                .map(|holder| (tag, *holder))
        });
    match (moved, pins) {
        (Some((tag, holder)), Ok(_)) => Verdict::Junk(format!(
            "a superseded pull: its tag {tag} now names {}",
            short(holder)
        )),
        (Some((tag, _)), Err(why)) => Verdict::Cache(format!(
            "pulled by digest ({}); its tag {tag} moved, but it may be a rollback target: {why}",
            digests.join(", ")
        )),
        (None, _) => Verdict::Cache(format!(
            "pulled by digest ({}), not superseded",
            digests.join(", ")
        )),
    }
}

/// Why a dangling record of the containerd store stays, if it does: a swarm service's spec pins
/// it. There an image's id is the digest of what was pulled (its manifest or index), which is
/// what a spec pins (`REPO:TAG@sha256:…`); its digests are checked too. When the specs cannot
/// be read, a pulled image (one a digest names) stays: it may be a rollback target.
pub fn pinned(image: &ImageSummary, pins: &Pins) -> Option<String> {
    let digests: Vec<&str> = engine::digests(&image.repo_digests).collect();
    match pins {
        Ok(p) => std::iter::once(image.id.as_str())
            .chain(digests.iter().filter_map(|d| engine::pinned_digest(d)))
            .find_map(|d| p.get(d))
            .map(|whose| format!("pinned by {whose} ({})", image.id)),
        Err(why) if !digests.is_empty() => Some(format!(
            "pulled by digest ({}); it may be a rollback target: {why}",
            digests.join(", ")
        )),
        Err(_) => None,
    }
}

/// Which image each tag names in `images`.
pub fn tag_holders(images: &[ImageSummary]) -> HashMap<&str, &str> {
    images
        .iter()
        .flat_map(|i| engine::tags(&i.repo_tags).map(move |t| (t, i.id.as_str())))
        .collect()
}

/// `sha256:` and the first 12 hex digits, as the docker CLI shortens ids.
fn short(id: &str) -> &str {
    &id[..id.len().min(19)]
}

#[cfg(test)]
mod tests {
    //! The shapes a real Docker 20.10 lists (seen with a private registry): a swarm pull is
    //! `RepoTags: null` with one `RepoDigests` entry; a build leftover `<none>:<none>` and
    //! `<none>@<none>`.
    use super::*;

    fn image(id: &str, tags: &[&str], digests: &[&str]) -> ImageSummary {
        ImageSummary {
            id: id.into(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: digests.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
    }

    const R: &str = "127.0.0.1:5123/app";

    #[test]
    fn a_build_leftover_is_junk_a_digest_pull_is_cache() {
        let leftover = image("sha256:l", &["<none>:<none>"], &["<none>@<none>"]);
        let pulled = image("sha256:p", &[], &[&format!("{R}@sha256:d1")]);
        let seen = SeenTags::default();
        let none = HashMap::new();
        assert!(matches!(
            judge(&leftover, &seen, &none, &Ok(HashMap::new())),
            Verdict::Junk(_)
        ));
        assert_eq!(
            judge(&pulled, &seen, &none, &Ok(HashMap::new())),
            Verdict::Cache(format!("pulled by digest ({R}@sha256:d1), not superseded"))
        );
    }

    #[test]
    fn a_pull_is_superseded_only_when_a_tag_it_was_seen_holding_moved() {
        let old = image("sha256:old", &[], &[&format!("{R}@sha256:d1")]);
        let new = image(
            "sha256:new",
            &[&format!("{R}:1")],
            &[&format!("{R}@sha256:d2")],
        );
        let list = vec![old.clone(), new.clone()];
        let holders = tag_holders(&list);
        let pins: Pins = Ok(HashMap::new());
        // Never seen tagged: a gap, so cache — even though a newer image of its repository
        // holds a tag (it may have been pinned by digest all along).
        assert!(matches!(
            judge(&old, &SeenTags::default(), &holders, &pins),
            Verdict::Cache(_)
        ));
        // Seen holding R:1, which now names the new image: superseded.
        let seen = SeenTags::default().observe(&[image("sha256:old", &[&format!("{R}:1")], &[])]);
        assert_eq!(
            judge(&old, &seen, &holders, &pins),
            Verdict::Junk(format!(
                "a superseded pull: its tag {R}:1 now names sha256:new"
            ))
        );
        // Seen holding a tag that names nothing now: not superseded.
        let gone = SeenTags::default().observe(&[image("sha256:old", &[&format!("{R}:0")], &[])]);
        assert!(matches!(
            judge(&old, &gone, &holders, &pins),
            Verdict::Cache(_)
        ));
        // A rollback target stays, superseded or not; unknown pins keep a superseded pull.
        let pinned: Pins = Ok(pins_of(&[("web", "previous", &format!("{R}:1@sha256:d1"))]));
        assert_eq!(
            judge(&old, &seen, &holders, &pinned),
            Verdict::Cache(format!(
                "pinned by service web's previous spec ({R}@sha256:d1)"
            ))
        );
        let unknown: Pins = Err("not a manager".into());
        assert!(
            matches!(judge(&old, &seen, &holders, &unknown), Verdict::Cache(w) if w.contains("not a manager"))
        );
    }

    fn pins_of(specs: &[(&str, &'static str, &str)]) -> HashMap<String, String> {
        let specs: Vec<(String, &'static str, String)> = specs
            .iter()
            .map(|(s, w, i)| (s.to_string(), *w, i.to_string()))
            .collect();
        pins(&specs)
    }

    #[test]
    fn memory_follows_the_images_and_the_daemon() {
        let a = image("sha256:a", &["x:1"], &[]);
        let seen = SeenTags {
            daemon_id: "D".into(),
            ..Default::default()
        }
        .observe(&[a.clone(), image("sha256:b", &["y:1"], &[])]);
        // a loses its tag: the memory keeps it; b is gone: forgotten.
        let later = seen.observe(&[image("sha256:a", &[], &["x@sha256:1"])]);
        assert_eq!(later.tags.len(), 1);
        assert!(later.tags["sha256:a"].contains("x:1"));
        assert!(later.clone().of_daemon("D").tags.contains_key("sha256:a"));
        assert!(later.of_daemon("E").tags.is_empty());
    }
}

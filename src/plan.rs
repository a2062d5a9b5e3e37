//! What a prune would remove, predicted from an [`Inventory`] by the daemon's own rules.
//!
//! Used by `--dry-run`, which must list the very objects the real run would remove. On the
//! containerd image store the images are the daemon's own answer to the prune's filters
//! ([`images_by_record_time`]); otherwise the rules mirror the Engine's prune code for the
//! classic (graphdriver) image store:
//! - containers: not running (paused and restarting count as running), created at or before the
//!   cut-off;
//! - images: untagged, with no child image, created at or before the cut-off, used by no
//!   container that remains after the container step; deleting one also deletes its untagged
//!   parents that nothing else holds (no age check on those, as in the Engine);
//! - build cache: not in use, not shared with images, not an internal or frontend record, last
//!   used at or before the cut-off (no age limit when the cut-off is 0).

use crate::docker::inventory::{BuildCacheRecord, Inventory};
use crate::docker::objects;
use crate::engine;
use crate::junk::{self, Pins, SeenTags, Verdict};
use crate::model::{Candidate, Class, PruneClass, ReadError};
use crate::settings::PruneSettings;
use bollard::models::{ContainerSummary, ImageSummary};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The prune policy at one instant, as the planner needs it.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Unix seconds: objects newer than this stay.
    pub cutoff: i64,
    /// Whether the cut-off is 0 (build cache then has no age limit, as in BuildKit).
    pub no_age_limit: bool,
    /// Whether the containers step runs before the images step.
    pub containers: bool,
}

impl Policy {
    /// The policy of a run starting at `now` (Unix seconds).
    pub fn at(prune: &PruneSettings, now: i64) -> Policy {
        Policy {
            cutoff: prune.cutoff(now),
            no_age_limit: prune.older_than.is_zero(),
            containers: prune.classes.contains(&Class::Containers),
        }
    }
}

fn removable_container(c: &ContainerSummary, cutoff: i64) -> bool {
    engine::container_prunable(c.state) && c.created.unwrap_or(i64::MAX) <= cutoff
}

pub fn containers(list: &[ContainerSummary], policy: &Policy) -> Vec<Candidate> {
    list.iter()
        .filter(|c| removable_container(c, policy.cutoff))
        .map(|c| objects::container(c, true))
        .collect()
}

fn is_tagged(img: &ImageSummary) -> bool {
    engine::is_tagged(&img.repo_tags)
}

/// Whether the daemon deletes `img` as the untagged parent of an image it deletes: no
/// reference at all, tag or digest (moby `imageIsDangling`, followed by `imageDeleteHelper`
/// with `prune`).
fn unreferenced(img: &ImageSummary) -> bool {
    !is_tagged(img) && engine::digests(&img.repo_digests).next().is_none()
}

/// The images held by containers that will still exist once the container step has run.
fn held_images<'a>(all_containers: &'a [ContainerSummary], policy: &Policy) -> HashSet<&'a str> {
    all_containers
        .iter()
        .filter(|c| !(policy.containers && removable_container(c, policy.cutoff)))
        .filter_map(|c| c.image_id.as_deref())
        .collect()
}

/// What the images step judges untagged images by where the engine's own prune would also take
/// cache ([`crate::engine::Engine::images_step_judges`]): the tags seen on earlier runs and the
/// swarm specs' pins ([`crate::junk`]).
pub struct Judging<'a> {
    pub seen: &'a SeenTags,
    pub pins: &'a Pins,
}

/// The images step, judged on one listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImagePlan {
    /// Every image the step removes: the heads it deletes and the untagged parents the daemon
    /// deletes with them.
    pub remove: Vec<Candidate>,
    /// The heads, in order, each with the references to delete it by.
    pub deletes: Vec<Delete>,
    /// The untagged images old enough and unused that stay as cache, with why.
    pub kept: Vec<Kept>,
    /// Whether an unused untagged image is kept only by the cut-off: it may cross it before the
    /// real run, which then removes it (and frees what shares its layers) though a dry run
    /// taken now could not list it.
    pub pending: bool,
}

/// One `DELETE /images/{reference}` call or a series of them, never forced, for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub id: String,
    /// The image id; or, for an image whose digests are in several repositories (the daemon
    /// refuses to delete such an image by id unforced), each digest reference, the last of
    /// which deletes it — as the engine's own prune does.
    pub by: Vec<String>,
}

/// An untagged image kept as cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub id: String,
    pub digests: Vec<String>,
    pub why: String,
}

/// The classic image store's prune, predicted: untagged heads (no child image) created at or
/// before the cut-off that no container remaining after the container step uses — and, with
/// `judging`, only those that are junk ([`crate::junk::judge`]); without it, all of them (the
/// engine's own word, Podman's). Deleting a head also deletes its parents that no reference
/// and no other child holds (no age check on those, as in the Engine).
pub fn images(
    list: &[ImageSummary],
    all_containers: &[ContainerSummary],
    policy: &Policy,
    judging: Option<&Judging>,
) -> ImagePlan {
    let in_use = held_images(all_containers, policy);
    let by_id: HashMap<&str, &ImageSummary> = list.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for img in list {
        if !img.parent_id.is_empty() {
            children
                .entry(img.parent_id.as_str())
                .or_default()
                .push(img.id.as_str());
        }
    }
    let holders = junk::tag_holders(list);
    let mut kept = Vec::new();
    let mut why_junk: HashMap<&str, String> = HashMap::new();
    let mut removed: BTreeMap<&str, &ImageSummary> = BTreeMap::new();
    let unused_head = |i: &&ImageSummary| {
        !children.contains_key(i.id.as_str()) && !is_tagged(i) && !in_use.contains(i.id.as_str())
    };
    let pending = list
        .iter()
        .filter(unused_head)
        .any(|i| i.created > policy.cutoff);
    let heads = list
        .iter()
        .filter(unused_head)
        .filter(|i| i.created <= policy.cutoff);
    for head in heads {
        let verdict = judging.map(|j| junk::judge(head, j.seen, &holders, j.pins));
        match verdict {
            Some(Verdict::Cache(why)) => kept.push(Kept {
                id: head.id.clone(),
                digests: engine::digests(&head.repo_digests)
                    .map(String::from)
                    .collect(),
                why,
            }),
            Some(Verdict::Junk(why)) => {
                why_junk.insert(head.id.as_str(), why);
                removed.insert(head.id.as_str(), head);
            }
            None => {
                removed.insert(head.id.as_str(), head);
            }
        }
    }
    let deletes = removed.values().map(|h| delete_of(h)).collect();
    // Follow parent chains: a parent goes when every child of it goes and nothing else holds it.
    let removable = |img: &ImageSummary| unreferenced(img) && !in_use.contains(img.id.as_str());
    let mut frontier: Vec<&str> = removed.keys().copied().collect();
    while let Some(id) = frontier.pop() {
        let parent_id = by_id[id].parent_id.as_str();
        let Some(parent) = by_id.get(parent_id) else {
            continue;
        };
        if removed.contains_key(parent_id) || !removable(parent) {
            continue;
        }
        if children[parent_id].iter().all(|c| removed.contains_key(c)) {
            removed.insert(parent_id, parent);
            frontier.push(parent_id);
        }
    }
    let remove = removed
        .values()
        .map(|i| {
            let mut c = objects::image(i);
            if let Some(why) = why_junk.get(i.id.as_str()) {
                c.what["why"] = why.clone().into();
                c.description = format!("{} ({why})", c.description);
            }
            c
        })
        .collect();
    ImagePlan {
        remove,
        deletes,
        kept,
        pending,
    }
}

/// How to delete a head unforced: by id, unless its digests span several repositories.
fn delete_of(head: &ImageSummary) -> Delete {
    let digests: Vec<&str> = engine::digests(&head.repo_digests).collect();
    let repositories: HashSet<&str> = digests.iter().map(|d| engine::repository(d)).collect();
    Delete {
        id: head.id.clone(),
        by: if repositories.len() > 1 {
            digests.into_iter().map(String::from).collect()
        } else {
            vec![head.id.clone()]
        },
    }
}

/// Images a prune would remove where the daemon itself has already applied `dangling` and
/// `until` by its own rule (the containerd image store: the list in
/// [`Inventory::dangling_until`]): those that no container remaining after the container step
/// uses. That store keeps no parent chains (no classic-builder parents to follow), and its
/// prune spares a dangling image whose digest is any container's image id (moby
/// `daemon/containerd/image_prune.go`).
///
/// An image still tagged in the full listing (`all_images`) stays, even when the filtered list
/// has it: Docker 28.5 keeps a `moby-dangling@` record for an image that lost one of several
/// tags, the filtered list shows it untagged, and the prune removes only that record — the
/// image and its other tags stay (found by the randomized worlds: the dry run listed such
/// images as removed).
pub fn images_by_record_time(
    dangling_old: &[ImageSummary],
    all_images: &[ImageSummary],
    all_containers: &[ContainerSummary],
    policy: &Policy,
) -> Vec<Candidate> {
    let in_use = held_images(all_containers, policy);
    let tagged: HashSet<&str> = all_images
        .iter()
        .filter(|i| is_tagged(i))
        .map(|i| i.id.as_str())
        .collect();
    dangling_old
        .iter()
        .filter(|i| !is_tagged(i) && !tagged.contains(i.id.as_str()))
        .filter(|i| !in_use.contains(i.id.as_str()))
        .map(objects::image)
        .collect()
}

/// Build-cache records a prune would remove, and those it may also remove.
///
/// A record marked `Shared` holds a layer some image also uses. When the images step removes
/// the last image using that layer, the record becomes prunable in the same run — but the Engine
/// API does not say which image a record's layer belongs to, so such records can only be listed
/// as possible (`may_also_remove`), and only when the images step removes anything at all or
/// may ([`ImagePlan::pending`]: an image the cut-off keeps now may cross it before the run —
/// found by the randomized worlds on the containerd store, seed 301, when the runs outlasted
/// the gap).
pub fn build_cache(
    records: &[BuildCacheRecord],
    policy: &Policy,
    images_step_removes: bool,
) -> Prediction {
    let old_enough = |r: &BuildCacheRecord| {
        policy.no_age_limit
            || r.last_used()
                .is_some_and(|t| t.timestamp() <= policy.cutoff)
    };
    let candidate = |r: &BuildCacheRecord| objects::build_cache(r);
    let eligible: Vec<&BuildCacheRecord> = records
        .iter()
        .filter(|r| !engine::build_cache_kind_kept(&r.kind) && !r.in_use && old_enough(r))
        .collect();
    Prediction {
        kept: Vec::new(),
        pending: false,
        remove: eligible
            .iter()
            .filter(|r| !r.shared)
            .map(|r| candidate(r))
            .collect(),
        may_also_remove: if images_step_removes {
            eligible
                .iter()
                .filter(|r| r.shared)
                .map(|r| candidate(r))
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// A dry run's answer for one class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prediction {
    /// Removed by the real run, by the daemon's rules.
    pub remove: Vec<Candidate>,
    /// Possibly removed too, where the API cannot tell (see [`build_cache`]).
    pub may_also_remove: Vec<Candidate>,
    /// Images step only: the untagged images kept as cache ([`ImagePlan::kept`]).
    pub kept: Vec<Kept>,
    /// Images step only: [`ImagePlan::pending`].
    pub pending: bool,
}

/// The images step's plan on `inv`: by the daemon's own filtered list on the containerd store,
/// else by the classic rules ([`images`]), with `judging` where the engine's prune would take
/// cache.
pub fn image_plan(
    inv: &Inventory,
    policy: &Policy,
    judging: Option<&Judging>,
) -> Result<ImagePlan, ReadError> {
    let containers_list = inv.containers.as_ref().map_err(Clone::clone)?;
    let all = inv.images.as_ref().map_err(Clone::clone)?;
    Ok(match &inv.dangling_until {
        Some(dangling) => {
            let dangling = dangling.as_ref().map_err(Clone::clone)?;
            let taken = images_by_record_time(dangling, all, containers_list, policy);
            // With judging, a record a swarm spec pins stays (its prune would take it).
            let by_id: HashMap<&str, &ImageSummary> =
                dangling.iter().map(|i| (i.id.as_str(), i)).collect();
            let mut kept = Vec::new();
            let mut remove = Vec::new();
            for c in taken {
                let why = judging.and_then(|j| junk::pinned(by_id[c.id.as_str()], j.pins));
                match why {
                    Some(why) => kept.push(Kept {
                        digests: engine::digests(&by_id[c.id.as_str()].repo_digests)
                            .map(String::from)
                            .collect(),
                        id: c.id,
                        why,
                    }),
                    None => remove.push(c),
                }
            }
            let deletes = remove
                .iter()
                .map(|c| Delete {
                    id: c.id.clone(),
                    by: vec![c.id.clone()],
                })
                .collect();
            // Untagged and unused, but not yet old enough for the daemon's own filter.
            let listed: HashSet<&str> = dangling.iter().map(|i| i.id.as_str()).collect();
            let in_use = held_images(containers_list, policy);
            let pending = all.iter().any(|i| {
                !is_tagged(i) && !listed.contains(i.id.as_str()) && !in_use.contains(i.id.as_str())
            });
            ImagePlan {
                remove,
                deletes,
                kept,
                pending,
            }
        }
        None => images(all, containers_list, policy, judging),
    })
}

/// The prediction for one class, or why it cannot be made.
/// `images_step_removes`: whether the images step of the same run removes anything, or may.
pub fn predict(
    class: PruneClass,
    inv: &Inventory,
    policy: &Policy,
    judging: Option<&Judging>,
    images_step_removes: bool,
) -> Result<Prediction, ReadError> {
    let containers_list = inv.containers.as_ref().map_err(Clone::clone)?;
    let certain = |remove| Prediction {
        remove,
        ..Prediction::default()
    };
    Ok(match class {
        PruneClass::Containers => certain(containers(containers_list, policy)),
        PruneClass::Images => {
            let plan = image_plan(inv, policy, judging)?;
            Prediction {
                remove: plan.remove,
                may_also_remove: Vec::new(),
                kept: plan.kept,
                pending: plan.pending,
            }
        }
        PruneClass::BuildCache => build_cache(
            inv.build_cache.as_ref().map_err(Clone::clone)?,
            policy,
            images_step_removes,
        ),
    })
}

#[cfg(test)]
mod tests {
    //! Over `tests/fixtures/inventory_world.json`, captured from a real private dockerd (see
    //! tests/fixtures/README.md): the dry run's expectations below were checked against the
    //! daemon's real prune of that same world.
    use super::*;

    /// An inventory captured from a real daemon, in tests/fixtures/.
    fn fixture(name: &str) -> Inventory {
        serde_json::from_slice(&crate::model::fixture(name)).unwrap()
    }

    fn world() -> Inventory {
        fixture("inventory_world.json")
    }

    fn policy(cutoff: i64, containers: bool) -> Policy {
        Policy {
            cutoff,
            no_age_limit: false,
            containers,
        }
    }

    /// Everything in the fixture was made before this instant.
    const AFTER_ALL: i64 = 4_000_000_000;

    fn short_ids(c: &[Candidate]) -> Vec<String> {
        let mut v: Vec<String> = c
            .iter()
            .map(|c| c.id.trim_start_matches("sha256:")[..12].to_string())
            .collect();
        v.sort();
        v
    }

    /// Captured from Podman 4.3.1's compat API (tests/fixtures/README.md): `ParentId` comes
    /// without `sha256:`. Read as the docker layer reads it (ids normalised), the prediction is
    /// what Podman's own prune then removed: the one dangling image, not the untagged parent
    /// that tagged images share.
    #[test]
    fn podman_listing_predicts_podmans_own_prune() {
        let inv = fixture("podman_4.3_inventory.json");
        let images = crate::engine::normalized_images(inv.images.unwrap());
        let ids: Vec<String> = super::images(
            &images,
            &inv.containers.unwrap(),
            &policy(i64::MAX, false),
            None,
        )
        .remove
        .into_iter()
        .map(|c| c.id)
        .collect();
        assert_eq!(
            ids,
            ["sha256:e9fb1a1d6371bcb9145e7b7ee2697b6c406bb37e651585d091057e91c277abec"]
        );
    }

    /// Captured from Docker 28.5's containerd store (tests/fixtures/README.md): image 9130…
    /// lost `pg-multi:latest` to a `docker load` but keeps `pg-alias:x`; the store left a
    /// `moby-dangling@` record for it, so the prune's own filtered list shows it untagged. The
    /// daemon's prune then deleted 2437… and only untagged 9130…; the prediction says the same.
    #[test]
    fn a_dangling_record_of_a_still_tagged_image_is_not_predicted() {
        let inv = fixture("containerd_28.5_multitag_inventory.json");
        let listed = inv.dangling_until.clone().unwrap().unwrap();
        assert_eq!(listed.len(), 2, "the filtered list has both");
        let p = predict(
            PruneClass::Images,
            &inv,
            &policy(AFTER_ALL, false),
            None,
            false,
        )
        .unwrap();
        assert_eq!(short_ids(&p.remove), ["2437eab5b44e"]);
    }

    /// Captured from a real 20.10 with a private registry (tests/fixtures/README.md).
    #[test]
    fn a_digest_pull_is_cache_and_a_superseded_one_junk() {
        let list: Vec<ImageSummary> =
            serde_json::from_slice(&crate::model::fixture("registry_20.10_images.json")).unwrap();
        let swarm_pull = "sha256:064ac9cde664f8184203c4b2c32b25e545c1f1533aed2b26fb2d91ce6b566ef9";
        let moved = "sha256:f596dcadd61af634ded1dcbd3c2358490c936ba8e4c47c3e1a2abedc9c7c765e";
        let no_pins: Pins = Ok(HashMap::new());
        let never_seen = SeenTags::default();
        let judging = Judging {
            seen: &never_seen,
            pins: &no_pins,
        };
        let p = images(&list, &[], &policy(AFTER_ALL, true), Some(&judging));
        assert!(p.remove.is_empty(), "a gap keeps both: {p:?}");
        assert_eq!(p.kept.len(), 2);
        // Docker's own rule (no judging) would have taken both.
        let engine_rule = images(&list, &[], &policy(AFTER_ALL, true), None);
        assert_eq!(engine_rule.remove.len(), 2);
        let seen = SeenTags::default().observe(&[ImageSummary {
            id: moved.into(),
            repo_tags: vec!["127.0.0.1:5123/app:1".into()],
            ..Default::default()
        }]);
        let judging = Judging {
            seen: &seen,
            pins: &no_pins,
        };
        let p = images(&list, &[], &policy(AFTER_ALL, true), Some(&judging));
        assert_eq!(
            p.remove.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            [moved]
        );
        assert_eq!(
            p.deletes,
            [Delete {
                id: moved.into(),
                by: vec![moved.into()]
            }]
        );
        assert!(p.remove[0].what["why"]
            .as_str()
            .unwrap()
            .contains("now names sha256:2d9fc077b585"));
        assert_eq!(
            p.kept.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            [swarm_pull]
        );
        // Pinned by a service's previous spec: kept, superseded or not.
        let pinned: Pins = Ok(HashMap::from([(
            "sha256:53f4da3418c832400579fbf00ba29c5d405524a0276f289e03a81a5010a97cea".to_string(),
            "service web's previous spec".to_string(),
        )]));
        let judging = Judging {
            seen: &seen,
            pins: &pinned,
        };
        let p = images(&list, &[], &policy(AFTER_ALL, true), Some(&judging));
        assert!(p.remove.is_empty());
        // A young untagged image: nothing to remove now, but the run may find it old.
        let young = images(&list, &[], &policy(1_000_000_000, true), Some(&judging));
        assert!(young.remove.is_empty() && young.pending);
    }

    #[test]
    fn stopped_containers_go_running_and_paused_stay() {
        let inv = world();
        let got = short_ids(&containers(
            inv.containers.as_ref().unwrap(),
            &policy(AFTER_ALL, true),
        ));
        // created1, exited1, stopholder; not holder (running) nor paused1.
        assert_eq!(got, ["1e0ce717dad8", "630976646e25", "88a93329dc62"]);
    }

    #[test]
    fn dangling_images_go_with_their_untagged_parents_tagged_and_used_stay() {
        let inv = world();
        let all = inv.containers.as_ref().unwrap();
        let got = short_ids(
            &images(
                inv.images.as_ref().unwrap(),
                all,
                &policy(AFTER_ALL, true),
                None,
            )
            .remove,
        );
        // junk's first build; stopheld's first build (its only container is pruned first);
        // the classic build f8a4… with its untagged parent 67b4…. Not 2186… (a running
        // container uses it), not 26cd… (parent of the tagged chain:1), no tagged image.
        assert_eq!(
            got,
            [
                "2f3f221600db",
                "627dfd9f4fdc",
                "67b43bb849b4",
                "f8a4d9817f41"
            ]
        );
        // Without the container step, the stopped container keeps its image.
        let got = short_ids(
            &images(
                inv.images.as_ref().unwrap(),
                all,
                &policy(AFTER_ALL, false),
                None,
            )
            .remove,
        );
        assert_eq!(got, ["2f3f221600db", "67b43bb849b4", "f8a4d9817f41"]);
    }

    #[test]
    fn nothing_newer_than_the_cut_off_is_listed() {
        let inv = world();
        let before_all = policy(1_000_000_000, true);
        assert!(
            predict(PruneClass::Containers, &inv, &before_all, None, false)
                .unwrap()
                .remove
                .is_empty()
        );
        assert!(predict(PruneClass::Images, &inv, &before_all, None, false)
            .unwrap()
            .remove
            .is_empty());
        let cache = predict(PruneClass::BuildCache, &inv, &before_all, None, true).unwrap();
        assert!(cache.remove.is_empty() && cache.may_also_remove.is_empty());
    }

    #[test]
    fn build_cache_lists_unshared_records_and_shared_ones_apart() {
        let inv = world();
        let p = predict(
            PruneClass::BuildCache,
            &inv,
            &policy(AFTER_ALL, true),
            None,
            true,
        )
        .unwrap();
        let mut ids: Vec<&str> = p.remove.iter().map(|c| c.id.as_str()).collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                "ik6k21iuiwp8cg4e70jzwruji",
                "u7s0x09ycyn2di9bhfai3qos5",
                "uzoxkloqihuxre0bw5f1x2140"
            ]
        );
        // The real prune of this world also removed these two, once their images were gone.
        for id in ["2tgtm1rvx0f7rjvb9mhp8i6hy", "uxa9by5u21ryxz4l9dw7fdguk"] {
            assert!(p.may_also_remove.iter().any(|c| c.id == id), "{id}");
        }
        let without_images = predict(
            PruneClass::BuildCache,
            &inv,
            &policy(AFTER_ALL, true),
            None,
            false,
        )
        .unwrap();
        assert!(without_images.may_also_remove.is_empty());
        assert_eq!(without_images.remove, p.remove);
    }
}

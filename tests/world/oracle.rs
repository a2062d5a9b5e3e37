//! The oracle: from what the daemon held before a run, the policy and when the run took place,
//! what had to stay and what had to go; then a verdict on what actually went.
//!
//! It is written from the Engine's documented behaviour and moby's prune code, not from
//! prunegate's planner, so that the two can disagree. Pure: unit-tested below on hand-made data.

use crate::common::{build_cache_outside_prediction, items};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy)]
pub struct Classes {
    pub containers: bool,
    pub images: bool,
    pub build_cache: bool,
}

#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub state: String,
    /// Unix seconds, truncated (what `/containers/json` gives).
    pub created: i64,
    pub image_id: String,
}

#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub parent: String,
    pub tags: Vec<String>,
    /// Its digest references (`REPO@sha256:…`): what a registry gave the host.
    pub digests: Vec<String>,
    /// Whether a tag a previous run saw it hold (`tags.json`) now names another image.
    pub superseded: bool,
    /// Unix seconds of the image config's `created`.
    pub created: i64,
    /// When the image was left untagged, if the world's builder saw it happen (Unix seconds,
    /// from..until): when its dangling record was made on the containerd store.
    pub dangling_since: Option<(f64, f64)>,
    /// Its layer diff ids, base first (read for tagged images only).
    pub layers: Vec<String>,
    /// What removing it frees, `Size − SharedSize` in `/system/df`.
    pub unique_bytes: Option<u64>,
}

/// Each engine's image-prune rules, as its own source states them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// moby `daemon/images/image_prune.go`: `until` compares the image config's `Created`;
    /// the dangling heads (untagged, no child) go, each `ImageDelete(…, prune=true)` taking its
    /// untagged parents along when no container uses them and no other child remains — whatever
    /// the parents' own age.
    DockerClassic,
    /// moby `daemon/containerd/image_prune.go` (`pruneUnused`) and `image_list.go`
    /// (`setupFilters`): every dangling record (`moby-dangling@…`) passing the filters goes
    /// unless a container uses its image — parents and children play no part (the classic
    /// builder's parent label notwithstanding: an untagged parent of a tagged image goes); `until`
    /// compares the record's `CreatedAt`, made when the image lost its last name.
    DockerContainerd,
    /// Podman 4.3 `pkg/domain/infra/abi/images.go` `Prune`: libimage `RemoveImages` with the
    /// filters `dangling=true` (no name and no child), `containers=false` and `until`
    /// (the image's `Created`), repeated until a pass removes nothing — so a parent goes only
    /// when, after its children went, it passes every filter itself, its own age included.
    Podman,
}

impl Rules {
    /// The rules of the test's engine.
    pub fn of_test_engine() -> Rules {
        use crate::common::{engine, Kind};
        match (engine().kind, engine().containerd_store) {
            (Kind::Podman, _) => Rules::Podman,
            (Kind::Docker, true) => Rules::DockerContainerd,
            (Kind::Docker, false) => Rules::DockerClassic,
        }
    }

    /// Why an untagged image is cache that the images step keeps, if it is
    /// (docs/gates.md, "What dangling means"): on the classic store, an image a registry gave
    /// (a digest names it) that no tag seen on it by a previous run has left for another
    /// image; on the containerd store, a digest pull is a named record, never a dangling one
    /// (an image this world left untagged is one: its `dangling_since` is known).
    fn cache(self, i: &Image) -> Option<&'static str> {
        let pulled = !i.digests.is_empty();
        match self {
            Rules::DockerClassic if pulled && !i.superseded => {
                Some("pulled by digest, not superseded: cache")
            }
            Rules::DockerContainerd if pulled && i.dangling_since.is_none() => {
                Some("pulled by digest: a named record")
            }
            _ => None,
        }
    }

    /// The image's age as `until` sees it.
    fn image_age(self, w: &Window, i: &Image) -> Age {
        match (self, i.dangling_since) {
            (Rules::DockerContainerd, Some((from, until))) => w.age(from, until),
            // Untagged before the builder looked: cannot be judged.
            (Rules::DockerContainerd, None) => Age::Unsure,
            _ => w.age_secs(i.created),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CacheRecord {
    pub id: String,
    pub kind: String,
    pub in_use: bool,
    pub shared: bool,
    /// Unix seconds, fractional.
    pub last_used: f64,
}

/// Where the cut-off's boundary (`now - older_than`) was, in Unix seconds: `lo` when the dry
/// run began, `hi` when the real run ended. Each prune step's boundary lies in between.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Age {
    Old,
    Young,
    /// Created while the boundary moved: either answer is right.
    Unsure,
}

impl Window {
    /// `from..until` is when the object may have been made.
    fn age(&self, from: f64, until: f64) -> Age {
        if until <= self.lo {
            Age::Old
        } else if from > self.hi {
            Age::Young
        } else {
            Age::Unsure
        }
    }

    /// A time the daemon lists in whole seconds: the object was made within that second.
    fn age_secs(&self, t: i64) -> Age {
        self.age(t as f64, t as f64 + 1.0)
    }
}

/// What the policy makes of each object: `go` must be removed, `stay` must not be; objects in
/// neither may go either way (build cache shared with images, objects made while the boundary
/// moved).
#[derive(Debug, Default)]
pub struct Expect {
    pub go: BTreeMap<String, String>,
    pub stay: BTreeMap<String, String>,
    pub unsure: BTreeSet<String>,
    /// The tagged images: the retention class's, whose report step is judged apart
    /// (`world::retain`).
    pub tagged: BTreeSet<String>,
}

impl Expect {
    pub fn stay(&mut self, id: &str, why: impl Into<String>) {
        self.stay.insert(id.to_string(), why.into());
    }
    pub fn go(&mut self, id: &str, why: &str) {
        self.go.insert(id.to_string(), why.to_string());
    }
}

fn running(state: &str) -> bool {
    // `docker pause` and a restart policy leave a container running as far as prune goes.
    matches!(state, "running" | "paused" | "restarting")
}

/// How a run took place: whether every gate was open, when, and on which engine's rules.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub all_open: bool,
    pub window: Window,
    pub rules: Rules,
}

/// The expectation for a run over what the daemon held before it.
pub fn expect(
    containers: &[Container],
    images: &[Image],
    cache: &[CacheRecord],
    volumes: &[String],
    classes: Classes,
    run: Run,
) -> Expect {
    let Run {
        all_open,
        window: w,
        rules,
    } = run;
    let mut e = Expect::default();
    for v in volumes {
        e.stay(v, "a volume");
    }
    if !all_open {
        let ids = containers.iter().map(|c| &c.id);
        let ids = ids.chain(images.iter().map(|i| &i.id));
        for id in ids.chain(cache.iter().map(|r| &r.id)) {
            e.stay(id, "a gate was closed");
        }
        return e;
    }

    // Containers: the daemon removes every one not running, made before the boundary.
    for c in containers {
        if running(&c.state) {
            e.stay(&c.id, format!("{} container {}", c.state, c.name));
        } else if !classes.containers {
            e.stay(&c.id, "containers not enabled");
        } else {
            match w.age_secs(c.created) {
                Age::Old => e.go(&c.id, "stopped and older than the cut-off"),
                Age::Young => e.stay(&c.id, format!("container {} is younger", c.name)),
                Age::Unsure => {
                    e.unsure.insert(c.id.clone());
                }
            }
        }
    }

    // Images: heads (no child image) that are untagged, made before the boundary and used by
    // no remaining container go; each removal takes its untagged parent along once that parent
    // has no child left and no container uses it.
    let mut holders: BTreeMap<&str, (&str, bool)> = BTreeMap::new();
    for c in containers.iter().filter(|c| !e.go.contains_key(&c.id)) {
        let unsure = e.unsure.contains(&c.id);
        // A container that surely stays outweighs one that may go.
        let slot = holders
            .entry(c.image_id.as_str())
            .or_insert((c.name.as_str(), unsure));
        if slot.1 && !unsure {
            *slot = (c.name.as_str(), false);
        }
    }
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let parents_count = rules != Rules::DockerContainerd;
    for i in images
        .iter()
        .filter(|i| parents_count && !i.parent.is_empty())
    {
        children.entry(i.parent.as_str()).or_default().push(&i.id);
    }
    // None: stays; Some(true): goes; Some(false): unsure.
    let mut fate: BTreeMap<&str, Option<bool>> = BTreeMap::new();
    for i in images {
        let verdict = if !i.tags.is_empty() {
            e.tagged.insert(i.id.clone());
            e.stay(&i.id, format!("tagged {}", i.tags.join(",")));
            None
        } else if let Some((name, false)) = holders.get(i.id.as_str()) {
            e.stay(&i.id, format!("used by container {name}"));
            None
        } else if !classes.images {
            e.stay(&i.id, "images not enabled");
            None
        } else if let Some(why) = rules.cache(i) {
            e.stay(&i.id, why);
            None
        } else if children.contains_key(i.id.as_str()) {
            continue; // decided below, from its children
        } else {
            let held_unsure = holders.contains_key(i.id.as_str());
            match rules.image_age(&w, i) {
                Age::Young => {
                    e.stay(&i.id, "dangling but younger than the cut-off");
                    None
                }
                Age::Old if !held_unsure => Some(true),
                _ => Some(false),
            }
        };
        fate.insert(&i.id, verdict);
    }
    // Parents, until nothing changes: a parent follows its children.
    loop {
        let mut changed = false;
        for i in images {
            if fate.contains_key(i.id.as_str()) {
                continue;
            }
            let kids = &children[i.id.as_str()];
            let Some(kid_fates) = kids
                .iter()
                .map(|k| fate.get(k).copied())
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let held_unsure = holders.contains_key(i.id.as_str());
            // Docker's parents follow their children; Podman judges each on its own age.
            let own_age = match rules {
                Rules::Podman => rules.image_age(&w, i),
                _ => Age::Old,
            };
            let verdict = if kid_fates.iter().any(Option::is_none) {
                e.stay(&i.id, "untagged parent of an image that stays");
                None
            } else if own_age == Age::Young {
                e.stay(&i.id, "untagged parent younger than the cut-off");
                None
            } else if kid_fates.iter().all(|f| *f == Some(true))
                && !held_unsure
                && own_age == Age::Old
            {
                Some(true)
            } else {
                Some(false)
            };
            fate.insert(&i.id, verdict);
            changed = true;
        }
        if !changed {
            break;
        }
    }
    for (id, f) in fate {
        match f {
            Some(true) => e.go(id, "dangling and older than the cut-off"),
            Some(false) => {
                e.unsure.insert(id.to_string());
            }
            None => {}
        }
    }

    // Build cache (`all=false`): records not in use, not internal or frontend, not shared
    // with an image, last used before the boundary. Shared ones may go if their image goes.
    for r in cache {
        if !classes.build_cache {
            e.stay(&r.id, "build cache not enabled");
        } else if r.in_use {
            e.stay(&r.id, "build cache in use");
        } else if matches!(r.kind.as_str(), "internal" | "frontend") {
            e.stay(&r.id, format!("{} build-cache record", r.kind));
        } else {
            match w.age(r.last_used, r.last_used) {
                Age::Young => e.stay(&r.id, "build cache used after the cut-off"),
                Age::Old if !r.shared => e.go(&r.id, "unused build cache, old"),
                Age::Old => {}
                // Last used while the boundary moved: the run may take it, the earlier dry
                // run could not list it.
                Age::Unsure => {
                    e.unsure.insert(r.id.clone());
                }
            }
        }
    }
    e
}

/// What one world's run did, judged.
#[derive(Debug, Default)]
pub struct Verdict {
    pub examined: usize,
    pub removed: usize,
    /// How many objects the oracle said had to go.
    pub must_go: usize,
    /// Removed though it had to stay, or removed when the model says the daemon would not.
    pub wrongful: Vec<String>,
    /// Had to go, still there.
    pub missed: Vec<String>,
    pub unsure: usize,
    /// Dry run, report or gates disagreeing with what happened.
    pub problems: Vec<String>,
    /// How many of those are the dry run's list disagreeing with what the run removed.
    pub dry_run_mismatches: usize,
    /// A word on the retention class's part, for the world's line.
    pub note: String,
}

/// Ids present before and gone after.
fn gone(before: &[String], after: &BTreeSet<String>) -> Vec<String> {
    let mut v: Vec<String> = before
        .iter()
        .filter(|id| !after.contains(*id))
        .cloned()
        .collect();
    v.sort();
    v
}

pub struct Inventories<'a> {
    pub before: [Vec<String>; 4],
    pub after: [&'a BTreeSet<String>; 4],
}

/// Judges a run. `before`/`after`: ids per kind (containers, images, build cache, volumes).
/// `dry` and `real` are the two JSON reports; `gates` the expected open/closed of each gate.
pub fn judge(
    e: &Expect,
    inv: Inventories,
    dry: &Value,
    real: &Value,
    gates: &BTreeMap<&str, bool>,
) -> Verdict {
    let mut v = Verdict {
        examined: inv.before.iter().map(Vec::len).sum(),
        unsure: e.unsure.len(),
        must_go: e.go.len(),
        ..Verdict::default()
    };
    let kinds = ["containers", "images", "build_cache", "volumes"];
    let mut removed_by_kind = BTreeMap::new();
    for (k, kind) in kinds.iter().enumerate() {
        let removed = gone(&inv.before[k], inv.after[k]);
        for id in &removed {
            if let Some(why) = e.stay.get(id) {
                v.wrongful.push(format!("{kind} {id}: {why}"));
            } else if !e.go.contains_key(id) && !e.unsure.contains(id) && *kind != "build_cache" {
                v.wrongful.push(format!(
                    "{kind} {id}: removed, but the daemon should have kept it"
                ));
            }
        }
        for id in &inv.before[k] {
            if e.go.contains_key(id) && inv.after[k].contains(id) {
                v.missed.push(format!("{kind} {id}: {}", e.go[id]));
            }
        }
        v.removed += removed.len();
        removed_by_kind.insert(*kind, removed);
    }

    // With the disk paths configured (a retention world's small filesystem), a closed disk
    // gate ends the run before the daemon is asked anything: the other gates are not judged.
    let disk_first = gates.get("disk") == Some(&false)
        && real["gates"]
            .as_array()
            .is_some_and(|g| g.len() == 1 && g[0]["name"] == "disk" && g[0]["open"] == false);
    for (name, open) in gates {
        if disk_first && *name != "disk" {
            continue;
        }
        let reported = real["gates"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["name"] == *name))
            .map(|g| (g["open"].as_bool() == Some(true), g["reason"].to_string()));
        match reported {
            Some((o, _)) if o == *open => {}
            Some((o, reason)) => v.problems.push(format!(
                "gate {name}: expected {}, reported {} ({reason})",
                if *open { "open" } else { "closed" },
                if o { "open" } else { "closed" }
            )),
            None => v
                .problems
                .push(format!("gate {name} missing from the report")),
        }
    }
    let all_open = gates.values().all(|o| *o);
    let want = if all_open {
        ["dry_run", "pruned|nothing_to_do"]
    } else {
        ["skipped", "skipped"]
    };
    for (report, want) in [(dry, want[0]), (real, want[1])] {
        let got = report["outcome"].as_str().unwrap_or("none");
        if !want.split('|').any(|w| w == got) {
            v.problems
                .push(format!("outcome {got}, expected {want}: {report}"));
        }
    }
    if !all_open {
        return v;
    }

    // The report lists exactly what went, and the dry run predicted it.
    for class in ["containers", "images"] {
        // The images step's: the tagged images the retention class removed are its own.
        let removed: &Vec<String> = &removed_by_kind[class]
            .iter()
            .filter(|id| !e.tagged.contains(*id))
            .cloned()
            .collect();
        if &items(real, class) != removed {
            v.problems.push(format!(
                "{class}: the report lists {:?}, the daemon lost {removed:?}",
                items(real, class)
            ));
        }
        // Objects made while the cut-off's boundary moved (`unsure`) may go in the run and not in
        // the earlier dry run: the boundary moved between the two. Only the others must agree.
        let sure = |ids: &[String]| -> Vec<String> {
            ids.iter()
                .filter(|id| !e.unsure.contains(*id))
                .cloned()
                .collect()
        };
        let (predicted, removed) = (sure(&items(dry, class)), sure(removed));
        if predicted != removed {
            v.dry_run_mismatches += 1;
            // Each object the two lists disagree on, with what the oracle made of it.
            let said = |id: &String| {
                e.stay
                    .get(id)
                    .map(|why| format!("stays: {why}"))
                    .or_else(|| e.go.get(id).map(|why| format!("goes: {why}")))
                    .unwrap_or_else(|| "either".to_string())
            };
            let differ: Vec<String> = predicted
                .iter()
                .filter(|id| !removed.contains(id))
                .map(|id| format!("predicted, kept: {id} ({})", said(id)))
                .chain(
                    removed
                        .iter()
                        .filter(|id| !predicted.contains(id))
                        .map(|id| format!("removed, not predicted: {id} ({})", said(id))),
                )
                .collect();
            v.problems.push(format!(
                "{class}: the dry run and the run differ: {}",
                differ.join("; ")
            ));
        }
    }
    let removed_sure: Vec<String> = removed_by_kind["build_cache"]
        .iter()
        .filter(|id| !e.unsure.contains(*id))
        .cloned()
        .collect();
    let outside = build_cache_outside_prediction(dry, &removed_sure);
    v.dry_run_mismatches += outside.len();
    v.problems.extend(outside);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        lo: 1000.0,
        hi: 1005.0,
    };

    /// A run over the window `W` on `rules`, every gate open.
    fn open(rules: Rules) -> Run {
        Run {
            all_open: true,
            window: W,
            rules,
        }
    }

    /// The same with a gate closed.
    fn closed(rules: Rules) -> Run {
        Run {
            all_open: false,
            ..open(rules)
        }
    }

    fn ctr(id: &str, state: &str, created: i64, image: &str) -> Container {
        Container {
            id: id.into(),
            name: id.into(),
            state: state.into(),
            created,
            image_id: image.into(),
        }
    }

    fn img(id: &str, parent: &str, tags: &[&str], created: i64) -> Image {
        Image {
            id: id.into(),
            parent: parent.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            created,
            dangling_since: None,
            digests: Vec::new(),
            superseded: false,
            layers: Vec::new(),
            unique_bytes: None,
        }
    }

    const ALL: Classes = Classes {
        containers: true,
        images: true,
        build_cache: true,
    };

    #[test]
    fn containers_by_state_and_age() {
        let cs = [
            ctr("old-exited", "exited", 900, "i"),
            ctr("old-paused", "paused", 900, "i"),
            ctr("young-created", "created", 1010, "i"),
            ctr("edge", "created", 999, "i"),
            ctr("moving", "exited", 1002, "i"),
        ];
        let e = expect(&cs, &[], &[], &[], ALL, open(Rules::DockerClassic));
        assert!(e.go.contains_key("old-exited") && e.go.contains_key("edge"));
        assert!(e.stay.contains_key("old-paused") && e.stay.contains_key("young-created"));
        assert!(e.unsure.contains("moving"));
    }

    #[test]
    fn images_follow_holders_children_and_tags() {
        let cs = [
            ctr("gone", "exited", 900, "held-by-gone"),
            ctr("kept", "running", 900, "held"),
        ];
        let is = [
            img("held-by-gone", "", &[], 1),
            img("held", "", &[], 1),
            img("base", "", &["b:1"], 1),
            img("mid", "base", &[], 1),
            img("top", "mid", &[], 1),
            img("mid2", "base", &[], 1),
            img("young-top", "mid2", &[], 2000),
            img("future", "", &[], 99_999),
        ];
        let e = expect(&cs, &is, &[], &[], ALL, open(Rules::DockerClassic));
        for id in ["held-by-gone", "mid", "top"] {
            assert!(e.go.contains_key(id), "{id}: {e:?}");
        }
        for id in ["held", "base", "mid2", "young-top", "future"] {
            assert!(e.stay.contains_key(id), "{id}: {e:?}");
        }
        let no_containers = Classes {
            containers: false,
            ..ALL
        };
        let e = expect(
            &cs,
            &is,
            &[],
            &[],
            no_containers,
            open(Rules::DockerClassic),
        );
        assert!(e.stay.contains_key("held-by-gone"));
    }

    #[test]
    fn a_digest_pull_is_cache_unless_superseded() {
        let pulled = |id: &str, superseded: bool| Image {
            digests: vec![format!("reg/app@sha256:{id}")],
            superseded,
            ..img(id, "", &[], 1)
        };
        let is = [
            pulled("cache", false),
            pulled("moved", true),
            img("leftover", "", &[], 1),
        ];
        let e = expect(&[], &is, &[], &[], ALL, open(Rules::DockerClassic));
        assert!(e.stay.contains_key("cache"), "{e:?}");
        assert!(
            e.go.contains_key("moved") && e.go.contains_key("leftover"),
            "{e:?}"
        );
        // The containerd store: a digest pull is a named record; one this world left
        // untagged (its dangling record's time known) is dangling.
        let mut dangling = pulled("moved", true);
        dangling.dangling_since = Some((100.0, 101.0));
        let is = [pulled("cache", false), dangling];
        let e = expect(&[], &is, &[], &[], ALL, open(Rules::DockerContainerd));
        assert!(
            e.stay.contains_key("cache") && e.go.contains_key("moved"),
            "{e:?}"
        );
    }

    #[test]
    fn each_engine_ages_images_its_own_way() {
        let since = |mut i: Image, from: f64| {
            i.dangling_since = Some((from, from + 0.5));
            i
        };
        let is = [
            // Built in 2000, untagged after the boundary.
            since(img("old-built-new-record", "", &[], 1), 1010.0),
            // Built in the future, untagged long before.
            since(img("new-built-old-record", "", &[], 99_999), 10.0),
            // A young untagged parent of an old dangling image.
            img("young-parent", "", &[], 2000),
            img("old-kid", "young-parent", &[], 1),
            // An untagged, unused parent of a tagged image.
            since(img("lone-parent", "", &[], 1), 10.0),
            img("tagged-kid", "lone-parent", &["k:1"], 1),
        ];
        let e = expect(&[], &is, &[], &[], ALL, open(Rules::DockerContainerd));
        assert!(e.stay.contains_key("old-built-new-record"), "{e:?}");
        assert!(e.go.contains_key("new-built-old-record"), "{e:?}");
        // No parents on this store: a dangling record goes whatever points at it.
        assert!(e.go.contains_key("lone-parent"), "{e:?}");
        let e = expect(&[], &is, &[], &[], ALL, open(Rules::DockerClassic));
        assert!(e.go.contains_key("old-built-new-record"), "{e:?}");
        assert!(e.stay.contains_key("new-built-old-record"), "{e:?}");
        assert!(e.stay.contains_key("lone-parent"), "{e:?}");
        // Docker's image delete takes the parent along; Podman's next pass judges its age.
        assert!(e.go.contains_key("young-parent"), "{e:?}");
        let e = expect(&[], &is, &[], &[], ALL, open(Rules::Podman));
        assert!(e.go.contains_key("old-kid"), "{e:?}");
        assert!(e.stay.contains_key("young-parent"), "{e:?}");
    }

    #[test]
    fn a_closed_gate_keeps_everything() {
        let e = expect(
            &[ctr("c", "exited", 1, "i")],
            &[img("i", "", &[], 1)],
            &[],
            &["v".into()],
            ALL,
            closed(Rules::DockerClassic),
        );
        assert!(e.go.is_empty() && e.stay.len() == 3);
    }

    #[test]
    fn build_cache_shared_records_are_free_either_way() {
        let rec = |id: &str, shared: bool, last_used: f64| CacheRecord {
            id: id.into(),
            kind: "regular".into(),
            in_use: false,
            shared,
            last_used,
        };
        let e = expect(
            &[],
            &[],
            &[
                rec("old", false, 10.0),
                rec("shared", true, 10.0),
                rec("new", false, 1006.0),
            ],
            &[],
            ALL,
            open(Rules::DockerClassic),
        );
        assert!(e.go.contains_key("old") && e.stay.contains_key("new"));
        assert!(!e.go.contains_key("shared") && !e.stay.contains_key("shared"));
    }
}

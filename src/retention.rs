//! The retention class's decisions (docs/retention.md): which tagged images are cold enough to
//! go, in which order, and how many of them bring the disk down to the low watermark. Pure: the
//! reads (images with their layers, containers, swarm services and tasks, the last-use history
//! kept in the state directory) are made elsewhere and passed in.
//!
//! Every protection is a reason an image stays, said in words, so that the dry run and the
//! report can tell an operator why each tagged image was kept.

use crate::docker::tagged::UseEvent;
use crate::engine;
use crate::model::Candidate;
pub use crate::settings::Retention;
use bollard::models::{ContainerSummary, ImageSummary};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A tagged image as the class sees it.
#[derive(Debug, Clone)]
pub struct Tagged {
    pub id: String,
    /// `repository:tag`, every one.
    pub tags: Vec<String>,
    /// Unix seconds of the image config's `created`.
    pub created: i64,
    /// What removing it would free: its size minus what it shares with other images.
    pub unique_bytes: u64,
    /// Its layer diff ids, base first (`RootFS.Layers`).
    pub layers: Vec<String>,
}

/// When prunegate saw an image in use, or first saw it at all (Unix seconds): what the judge
/// takes and what `retention.json` stores, alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Use {
    pub first_seen: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<i64>,
}

impl Use {
    /// The moment the idle time counts from.
    pub fn since(&self) -> i64 {
        self.last_used
            .unwrap_or(self.first_seen)
            .max(self.first_seen)
    }
}

/// A stretch of time prunegate could not observe: the recorder was down, the daemon restarted
/// (its event buffer emptied), a replay came back truncated, the clock went backwards. Every
/// image present across it counts as used at its end — a gap protects, it never makes an
/// image look cold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Gap {
    pub from: i64,
    pub to: i64,
    /// How many images were treated as used at `to`.
    #[serde(default)]
    pub images: usize,
    pub why: String,
    /// A build's gap ([`build_gap`]): a moment, not a stretch, that moves `builds_seen`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub build: bool,
}

impl Gap {
    /// `history gap 12:00:00Z–12:40:00Z: 14 images treated as used at 12:40:00Z (why)`; a gap
    /// of one moment (a build) reads `history gap at 12:40:00Z: …`.
    pub fn describe(&self) -> String {
        let when = if self.from == self.to {
            format!("at {}", rfc3339(self.to))
        } else {
            format!("{}–{}", rfc3339(self.from), rfc3339(self.to))
        };
        format!(
            "history gap {when}: {} images treated as used at {} ({})",
            self.images,
            rfc3339(self.to),
            self.why
        )
    }
}

/// The most gaps a history keeps (the newest): what the report and the metric show.
const KEPT_GAPS: usize = 20;

/// Before this (2013-03-01, Docker's first release) no history can have begun: a start time
/// earlier than that is a damaged or hand-made file.
pub const HISTORY_FLOOR: i64 = 1_362_096_000;

/// Clock slack between two writers of one history (a run and the recorder read the clock
/// apart): a time this far ahead of `now` is not yet "the future".
const SKEW: i64 = 120;

/// The use history kept in the state directory between runs: whose daemon it describes, since
/// when, up to when use is known, per image id when it was first seen and last used, and the
/// gaps found. Serialised as `retention.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct History {
    /// `/info` `ID` of the daemon the history is of: another daemon's history is never used.
    pub daemon_id: String,
    /// When this history began (Unix seconds): no image in it was first seen earlier.
    #[serde(default)]
    pub started_at: i64,
    /// Up to when use is known (Unix seconds): the next update replays the events since then.
    #[serde(default)]
    pub updated_at: i64,
    /// When the recorder (`prunegate record`) last merged what its live event stream saw, its
    /// stream unbroken since its previous merge; `None` when no recorder wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<i64>,
    pub images: BTreeMap<String, Use>,
    /// The latest build already accounted for (Unix seconds; [`last_build`]): a later one is a
    /// gap ([`build_gap`]). `0` in a history written before builds were read: the first
    /// update then takes the newest build it finds as one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub builds_seen: i64,
    /// The newest gaps found, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
}

impl History {
    /// The history as the judge takes it: `None` when it belongs to another daemon (or to
    /// none), so that nothing is eligible on a history that says nothing of these images.
    pub fn for_daemon(&self, daemon_id: &str) -> Option<BTreeMap<String, Use>> {
        (!daemon_id.is_empty() && self.daemon_id == daemon_id).then(|| self.images.clone())
    }

    /// Whether the history can be believed at `now`, or what contradicts it: a start before
    /// [`HISTORY_FLOOR`] (none, or `0`), a start or an update in the future (the clock went
    /// backwards, or the file is not this host's), an image first seen before the history
    /// began or used after its last update. Such a history is never judged on.
    pub fn check(&self, now: i64) -> Result<(), String> {
        if self.started_at < HISTORY_FLOOR {
            return Err(format!(
                "it has no plausible start time ({}): written by an older prunegate, or damaged",
                self.started_at
            ));
        }
        if self.started_at > now + SKEW
            || self.updated_at > now + SKEW
            || self.builds_seen > now + SKEW
        {
            return Err(format!(
                "it was last updated at {}, after now ({}): the clock went backwards, or the \
                 file is another host's",
                rfc3339(self.updated_at.max(self.started_at).max(self.builds_seen)),
                rfc3339(now)
            ));
        }
        if self.updated_at < self.started_at {
            return Err(format!(
                "it was updated at {}, before it began ({})",
                rfc3339(self.updated_at),
                rfc3339(self.started_at)
            ));
        }
        for (id, u) in &self.images {
            if u.first_seen < self.started_at {
                return Err(format!(
                    "image {id} was first seen at {}, before the history began ({})",
                    rfc3339(u.first_seen),
                    rfc3339(self.started_at)
                ));
            }
            let latest = u.last_used.unwrap_or(u.first_seen).max(u.first_seen);
            if latest > self.updated_at + SKEW {
                return Err(format!(
                    "image {id} was seen at {}, after the history's last update ({})",
                    rfc3339(latest),
                    rfc3339(self.updated_at)
                ));
            }
        }
        Ok(())
    }

    /// A history started at `now` for `present` images, each first seen now: what replaces a
    /// missing, unreadable, another daemon's or contradictory one. `gap`, when the old history
    /// said anything (it is kept in the new one's gaps). Builds up to the end of this second
    /// are accounted for ([`last_build`] rounds up): no image counts as older than now.
    pub fn fresh(daemon_id: &str, now: i64, present: &[&str], gap: Option<Gap>) -> History {
        let mut h = History {
            daemon_id: daemon_id.to_string(),
            started_at: now,
            updated_at: now,
            recorded_at: None,
            builds_seen: now + 1,
            images: present
                .iter()
                .map(|id| {
                    (
                        id.to_string(),
                        Use {
                            first_seen: now,
                            last_used: None,
                        },
                    )
                })
                .collect(),
            gaps: Vec::new(),
        };
        if let Some(mut g) = gap {
            g.images = present.len();
            h.gaps.push(g);
        }
        h
    }

    /// The history after a run saw `present` images, `in_use` of them used by containers now,
    /// and `used_since` named by events since the last update (id → the event's time). An image
    /// seen for the first time counts from now; images gone are forgotten. For each of `gaps`,
    /// every image present across it counts as used at its end, and the gap is kept; a build's
    /// gap ([`build_gap`]) moves `builds_seen` to it.
    pub fn observe(
        &self,
        now: i64,
        present: &[&str],
        in_use: &HashSet<&str>,
        used_since: &HashMap<&str, i64>,
        gaps: Vec<Gap>,
    ) -> History {
        let images = present
            .iter()
            .map(|id| {
                let old = self.images.get(*id);
                let first_seen = old.map_or(now, |o| o.first_seen);
                let mut last_used = old.and_then(|o| o.last_used);
                let mut used_at = |t: i64| {
                    last_used = Some(last_used.map_or(t, |l| l.max(t)));
                };
                if let Some(t) = used_since.get(id) {
                    used_at(*t);
                }
                // Not for an image first seen after the gap: it was not there across it.
                if old.is_some() {
                    for g in &gaps {
                        used_at(g.to);
                    }
                }
                if in_use.contains(id) {
                    used_at(now);
                }
                (
                    id.to_string(),
                    Use {
                        first_seen,
                        last_used,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        let across = present
            .iter()
            .filter(|id| self.images.contains_key(**id))
            .count();
        let builds_seen = gaps
            .iter()
            .filter(|g| g.build)
            .map(|g| g.to)
            .fold(self.builds_seen, i64::max);
        let mut kept = self.gaps.clone();
        kept.extend(gaps.into_iter().map(|g| Gap {
            images: across,
            ..g
        }));
        let excess = kept.len().saturating_sub(KEPT_GAPS);
        kept.drain(..excess);
        History {
            daemon_id: self.daemon_id.clone(),
            started_at: self.started_at,
            updated_at: now.max(self.updated_at),
            recorded_at: self.recorded_at,
            images,
            builds_seen,
            gaps: kept,
        }
    }

    /// The gaps this history has that `before` had not: what one update or one merge found,
    /// for the report.
    pub fn gaps_added(&self, before: Option<&History>) -> Vec<Gap> {
        self.gaps
            .iter()
            .filter(|g| before.is_none_or(|b| !b.gaps.contains(g)))
            .cloned()
            .collect()
    }
}

/// What a replay of the daemon's events since `since` (up to `now`) leaves unobserved, if
/// anything. `count`: how many events the unfiltered replay returned, `earliest` the time of
/// its first; `buffer`: how many events the engine keeps (moby: 256; `None`: a persistent log,
/// Podman's); `daemon_started`: when the daemon started, `Err` when that cannot be known;
/// `recorded_until`: up to when the recorder's unbroken live stream saw everything.
pub fn replay_gap(
    since: i64,
    now: i64,
    count: usize,
    earliest: Option<i64>,
    buffer: Option<usize>,
    daemon_started: Result<i64, String>,
    recorded_until: Option<i64>,
) -> Option<Gap> {
    let buffer = buffer?;
    // What the recorder saw unbroken needs no replay to be believed.
    let since = since.max(recorded_until.unwrap_or(since));
    // A start in the very second of the last update is a restart too: times are whole
    // seconds, so which came first cannot be told (a rootless dockerd restarted within the
    // second of a run, and the use before it was lost; seen on docker-20.10-rootless).
    match daemon_started {
        Ok(started) if started >= since => {
            return Some(Gap {
                from: since,
                to: started.min(now),
                images: 0,
                build: false,
                why: "the daemon restarted, and its event buffer with it".into(),
            })
        }
        Ok(_) => {}
        Err(why) if recorded_until.is_none_or(|r| now - r > SKEW) => {
            return Some(Gap {
                from: since,
                to: now,
                images: 0,
                build: false,
                why: format!(
                    "the daemon's start time cannot be known ({why}), so a restart that \
                     emptied its event buffer cannot be ruled out; `prunegate record` closes \
                     this"
                ),
            })
        }
        Err(_) => {}
    }
    // A full buffer may have dropped events: even when its first is in the very second of
    // `since` (an event time is a whole second), those between the update and it are unknown.
    match earliest {
        Some(first) if count >= buffer => Some(Gap {
            from: since,
            to: first.max(since),
            images: 0,
            build: false,
            why: format!(
                "{count} events since then, the daemon keeps only {buffer}: older ones may \
                 have been lost"
            ),
        }),
        _ => None,
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// When a build last ran, as far as Docker shows it (docs/retention.md, "Builds"), or `None`
/// when nothing says one did. Two signs, because no engine says which images a build used:
/// - BuildKit's build-cache records (`cache`, `None` when not read): the latest `LastUsedAt`.
///   Every BuildKit build uses at least its Dockerfile's record; a local base or stage shows
///   only as a record described "from local " (the classic store) or not at all (the
///   containerd store) — checked on Docker 20.10 and 28.5. A record without a parsable time
///   counts as `now`.
/// - The classic builder: a tag event (`events`) of an image with a parent — its tagged
///   result; a BuildKit-built or pulled image has none. A classic build whose steps all hit
///   its cache shows nothing else.
///
/// Times are rounded up to the next second: a build in the second of a run's update is after
/// it, never lost (counted once more at worst).
pub fn last_build(
    cache: Option<&[crate::docker::usage::BuildCacheRecord]>,
    events: &[UseEvent],
    images: &[ImageSummary],
    now: i64,
) -> Option<i64> {
    let cached = cache.unwrap_or_default().iter().map(|r| {
        r.last_used().map_or(now, |t| {
            t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
        })
    });
    let classic = events.iter().filter(|e| e.tag).filter_map(|e| {
        let image = resolve(&e.image, images)?;
        // An event's `time` is the second it began in.
        (!image.parent_id.is_empty()).then_some(e.time + 1)
    });
    cached.chain(classic).max()
}

/// The gap a build since `builds_seen` makes: a moment (`last_build`, or now if that is
/// further in the future than clock slack allows) at which every image present counts as
/// used, since the build may have used any of them. `None` when no build ran since.
pub fn build_gap(builds_seen: i64, last_build: Option<i64>, now: i64) -> Option<Gap> {
    let last = last_build?;
    let at = if last > now + SKEW { now } else { last };
    (at > builds_seen).then(|| Gap {
        from: at,
        to: at,
        images: 0,
        why: format!(
            "a build ran at {}: no engine says which images a build used (FROM, COPY --from), \
             so every image counts as used then; retention.build_bases_kept = true, once \
             retention.keep names them, lets builds pass",
            rfc3339(at)
        ),
        build: true,
    })
}

/// A reference as Docker writes it, reduced to compare: `docker.io/library/` and `docker.io/`
/// dropped, `:latest` added to a bare name.
fn normal_ref(r: &str) -> String {
    let r = r
        .strip_prefix("docker.io/library/")
        .or_else(|| r.strip_prefix("docker.io/"))
        .unwrap_or(r);
    if r.contains('@') || repository(r) != r {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// The images swarm names — in a service's current spec, its previous spec (the rollback
/// target) or any of its tasks — by image id, with who names them. A spec's image is a
/// reference (`name:tag@sha256:…`, or `name:tag` when deployed with `--no-resolve-image`): it
/// matches an image by its digest (`RepoDigests`) or, failing that, by its tag.
///
/// `previous`: each service's previous spec image (service name, reference). bollard 0.21's
/// `Service` has no `PreviousSpec` (the Engine API document omits it, the daemon sends it), so
/// the snapshot will have to read it raw; until then it is passed apart.
pub fn swarm_refs(
    services: &[bollard::models::Service],
    previous: &[(String, String)],
    tasks: &[bollard::models::Task],
    images: &[bollard::models::ImageSummary],
) -> HashMap<String, String> {
    let mut refs: Vec<(String, String)> = Vec::new();
    for s in services {
        let name = s
            .spec
            .as_ref()
            .and_then(|sp| sp.name.clone())
            .unwrap_or_default();
        let image = |spec: &Option<bollard::models::ServiceSpec>| {
            spec.as_ref()?
                .task_template
                .as_ref()?
                .container_spec
                .as_ref()?
                .image
                .clone()
        };
        if let Some(i) = image(&s.spec) {
            refs.push((i, format!("service {name}")));
        }
    }
    for (name, i) in previous {
        refs.push((
            i.clone(),
            format!("service {name} (previous spec: its rollback target)"),
        ));
    }
    for t in tasks {
        let image = t
            .spec
            .as_ref()
            .and_then(|sp| sp.container_spec.as_ref()?.image.clone());
        if let Some(i) = image {
            let id = t.id.as_deref().unwrap_or("?");
            refs.push((i, format!("task {id}")));
        }
    }
    let mut out = HashMap::new();
    for (reference, who) in refs {
        let (named, digest) = match reference.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (reference.as_str(), None),
        };
        let has_digest = |i: &&bollard::models::ImageSummary, d: &str| {
            let want = normal_ref(&format!("{}@{d}", repository(named)));
            i.repo_digests.iter().any(|r| normal_ref(r) == want)
        };
        let has_tag = |i: &&bollard::models::ImageSummary| {
            i.repo_tags
                .iter()
                .any(|t| normal_ref(t) == normal_ref(named))
        };
        // The digest when an image has it; the tag otherwise (a local image has no digest).
        let mut found: Vec<&bollard::models::ImageSummary> = match digest {
            Some(d) => images.iter().filter(|i| has_digest(i, d)).collect(),
            None => Vec::new(),
        };
        if found.is_empty() {
            found = images.iter().filter(has_tag).collect();
        }
        for i in found {
            out.entry(i.id.clone()).or_insert_with(|| who.clone());
        }
    }
    out
}

/// Why an image stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    UsedByContainer(String),
    UsedBySwarm(String),
    KeepPattern(String),
    Newest {
        repository: String,
        rank: usize,
    },
    Idle {
        since: i64,
    },
    NoHistory,
    BaseOf(String),
    /// Removing it would free no byte: every layer it has is another image's too. Its tag
    /// would be lost for nothing.
    FreesNothing,
    /// Eligible, but the images before it in the order already bring the disk to
    /// `low_percent`.
    NotNeeded,
}

impl Kept {
    /// The protection's name, for counts in a report line.
    pub fn kind(&self) -> &'static str {
        match self {
            Kept::UsedByContainer(_) => "used by a container",
            Kept::UsedBySwarm(_) => "named by swarm",
            Kept::KeepPattern(_) => "matching retention.keep",
            Kept::Newest { .. } => "among the newest of their repository",
            Kept::Idle { .. } => "used or first seen within retention.min_idle",
            Kept::NoHistory => "without history",
            Kept::BaseOf(_) => "bases of images that stay",
            Kept::FreesNothing => "freeing nothing",
            Kept::NotNeeded => "eligible but not needed",
        }
    }
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kept::UsedByContainer(c) => write!(f, "used by container {c}"),
            Kept::UsedBySwarm(s) => write!(f, "named by swarm {s}"),
            Kept::KeepPattern(t) => write!(f, "{t} matches retention.keep"),
            Kept::Newest { repository, rank } => {
                write!(f, "newest #{rank} of {repository} (retention.keep_newest)")
            }
            Kept::Idle { since } => write!(
                f,
                "used or first seen at {}, within retention.min_idle",
                rfc3339(*since)
            ),
            Kept::NoHistory => write!(f, "no use history for it yet"),
            Kept::BaseOf(id) => write!(f, "a base of {id}, which stays: removing it frees nothing"),
            Kept::FreesNothing => write!(
                f,
                "removing it frees nothing: every layer it has is another image's too"
            ),
            Kept::NotNeeded => write!(
                f,
                "eligible, but not needed to bring the disk to retention.low_percent"
            ),
        }
    }
}

/// The repository of `repository:tag` (the registry's port is not a tag).
fn repository(tag: &str) -> &str {
    match tag.rfind(':') {
        Some(i) if !tag[i..].contains('/') => &tag[..i],
        _ => tag,
    }
}

/// Each image's verdict: eligible (with the moment its idle time counts from) or why it stays.
/// `in_use`: image id → a container using it (any state); `swarm`: image id → the service or
/// task naming it (current or previous spec); `history`: `None` when the use history is
/// missing, unreadable or another daemon's — then nothing is eligible.
pub fn judge(
    images: &[Tagged],
    in_use: &HashMap<String, String>,
    swarm: &HashMap<String, String>,
    history: Option<&BTreeMap<String, Use>>,
    r: &Retention,
    now: i64,
) -> Vec<(String, Result<i64, Kept>)> {
    // The newest `keep_newest` images of each repository, by `created`.
    let mut by_repo: BTreeMap<&str, Vec<&Tagged>> = BTreeMap::new();
    for i in images {
        let repos: HashSet<&str> = i.tags.iter().map(|t| repository(t)).collect();
        for repo in repos {
            by_repo.entry(repo).or_default().push(i);
        }
    }
    let mut newest: HashMap<&str, (String, usize)> = HashMap::new();
    for (repo, mut list) in by_repo {
        list.sort_by_key(|i| std::cmp::Reverse(i.created));
        for (rank, i) in list.into_iter().take(r.keep_newest).enumerate() {
            newest
                .entry(i.id.as_str())
                .or_insert((repo.to_string(), rank + 1));
        }
    }
    let first_pass: Vec<(String, Result<i64, Kept>)> = images
        .iter()
        .map(|i| {
            let verdict = (|| {
                if let Some(c) = in_use.get(&i.id) {
                    return Err(Kept::UsedByContainer(c.clone()));
                }
                if let Some(s) = swarm.get(&i.id) {
                    return Err(Kept::UsedBySwarm(s.clone()));
                }
                if let Some(t) = i.tags.iter().find(|t| r.keep.iter().any(|k| k.is_match(t))) {
                    return Err(Kept::KeepPattern(t.clone()));
                }
                if let Some((repository, rank)) = newest.get(i.id.as_str()) {
                    return Err(Kept::Newest {
                        repository: repository.clone(),
                        rank: *rank,
                    });
                }
                let seen = history.ok_or(Kept::NoHistory)?;
                let since = seen.get(&i.id).ok_or(Kept::NoHistory)?.since();
                if now - since < r.min_idle_secs {
                    return Err(Kept::Idle { since });
                }
                Ok(since)
            })();
            (i.id.clone(), verdict)
        })
        .collect();
    // A base of an image that stays frees nothing (its layers are that image's too) and its tag
    // is what the next build pulls: it stays as well.
    let staying: Vec<&Tagged> = images
        .iter()
        .zip(&first_pass)
        .filter(|(_, (_, v))| v.is_err())
        .map(|(i, _)| i)
        .collect();
    images
        .iter()
        .zip(first_pass)
        .map(|(i, (id, v))| {
            let v = v.and_then(|since| {
                match staying.iter().find(|s| {
                    s.id != i.id && !i.layers.is_empty() && s.layers.starts_with(&i.layers)
                }) {
                    Some(s) => Err(Kept::BaseOf(s.id.clone())),
                    // Shared with images that go too, or with nothing said of it: no gain.
                    None if i.unique_bytes == 0 => Err(Kept::FreesNothing),
                    None => Ok(since),
                }
            });
            (id, v)
        })
        .collect()
}

/// The images to remove, least recently used first, while the disk is at or above the high
/// watermark: as many as bring the projected Use% (`used − freed` over `used + available`, as
/// `df` counts) to the low watermark. Nothing when the disk is below the high watermark.
pub fn select<'a>(
    eligible: &[(&'a Tagged, i64)],
    used_bytes: u64,
    available_bytes: u64,
    r: &Retention,
) -> Vec<&'a Tagged> {
    // Use% as `df` and the disk gate compute it (rounded up), the total fixed: what an image
    // frees becomes available.
    let total = used_bytes + available_bytes;
    let percent = |used: u64| crate::disk::df_percent(used, total - used).unwrap_or(0);
    if percent(used_bytes) < r.high_percent {
        return Vec::new();
    }
    let mut order: Vec<&(&Tagged, i64)> = eligible.iter().collect();
    order.sort_by_key(|(i, since)| (*since, i.id.clone()));
    let mut used = used_bytes;
    let mut out = Vec::new();
    for (image, _) in order {
        if percent(used) <= r.low_percent {
            break;
        }
        used = used.saturating_sub(image.unique_bytes);
        out.push(*image);
    }
    out
}

/// Image id → the name of a container using it (any state): every container holds its image.
pub fn in_use(containers: &[ContainerSummary]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for c in containers {
        let Some(image) = c.image_id.as_deref() else {
            continue;
        };
        let name = c.names.as_ref().and_then(|n| n.first()).map_or_else(
            || c.id.clone().unwrap_or_default(),
            |n| n.trim_start_matches('/').to_string(),
        );
        out.entry(crate::engine::image_id(image)).or_insert(name);
    }
    out
}

/// The image a reference or id names among `images`: by id (full or short, with or without
/// `sha256:`), else by tag.
fn resolve<'a>(reference: &str, images: &'a [ImageSummary]) -> Option<&'a ImageSummary> {
    let bare = reference.strip_prefix("sha256:").unwrap_or(reference);
    let hex = bare.len() >= 12 && bare.chars().all(|c| c.is_ascii_hexdigit());
    images
        .iter()
        .find(|i| hex && i.id.trim_start_matches("sha256:").starts_with(bare))
        .or_else(|| {
            let want = normal_ref(reference);
            images
                .iter()
                .find(|i| i.repo_tags.iter().any(|t| normal_ref(t) == want))
        })
}

/// Image id → the latest create/start event naming it. An event naming a tag is credited to
/// the image holding that tag now (a tag moved since is credited to its new image: the old
/// one, superseded, keeps only its earlier uses).
pub fn used_by_events(events: &[UseEvent], images: &[ImageSummary]) -> HashMap<String, i64> {
    let mut out: HashMap<String, i64> = HashMap::new();
    for e in events {
        if let Some(i) = resolve(&e.image, images) {
            let t = out.entry(i.id.clone()).or_insert(e.time);
            *t = (*t).max(e.time);
        }
    }
    out
}

/// The tagged images with their layers and unique bytes. An image whose layers or size the
/// reads lack is left out of the list, and so never removed.
pub fn tagged(
    images: &[ImageSummary],
    layers: &HashMap<String, Vec<String>>,
    unique_bytes: &HashMap<String, u64>,
) -> Vec<Tagged> {
    images
        .iter()
        .filter_map(|i| {
            let tags: Vec<String> = engine::tags(&i.repo_tags).map(String::from).collect();
            if tags.is_empty() {
                return None;
            }
            Some(Tagged {
                id: i.id.clone(),
                tags,
                created: i.created,
                unique_bytes: *unique_bytes.get(&i.id)?,
                layers: layers.get(&i.id)?.clone(),
            })
        })
        .collect()
}

/// What the class does on one disk reading: the images to remove in order, with what each
/// frees, and every tagged image kept with why.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub remove: Vec<Candidate>,
    pub kept: Vec<(String, Kept)>,
    /// Every judged image's tags, by id.
    pub tags: HashMap<String, Vec<String>>,
    /// The disk's Use% before and, once the listed images are gone, as projected.
    pub used_percent: u8,
    pub projected_percent: u8,
}

/// Judges and selects: see [`judge`] and [`select`]. `used`/`available`: the watched
/// filesystem's bytes as `df` counts them.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    images: &[Tagged],
    in_use: &HashMap<String, String>,
    swarm: &HashMap<String, String>,
    history: &BTreeMap<String, Use>,
    all_images: &[ImageSummary],
    (used, available): (u64, u64),
    r: &Retention,
    now: i64,
) -> Decision {
    let verdicts = judge(images, in_use, swarm, Some(history), r, now);
    let by_id: HashMap<&str, &Tagged> = images.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut eligible = Vec::new();
    let mut kept = Vec::new();
    for (id, v) in verdicts {
        match v {
            Ok(since) => eligible.push((by_id[id.as_str()], since)),
            Err(why) => kept.push((id, why)),
        }
    }
    let chosen = select(&eligible, used, available, r);
    let freed: u64 = chosen.iter().map(|i| i.unique_bytes).sum();
    let total = used + available;
    let percent = |u: u64| crate::disk::df_percent(u, total - u).unwrap_or(0);
    let remove = chosen
        .iter()
        .map(|i| candidate(i, &history[&i.id], all_images, r))
        .collect();
    // Eligible but not needed to reach the low watermark: kept this time, and said so.
    let taken: HashSet<&str> = chosen.iter().map(|i| i.id.as_str()).collect();
    for (i, _) in &eligible {
        if !taken.contains(i.id.as_str()) {
            kept.push((i.id.clone(), Kept::NotNeeded));
        }
    }
    Decision {
        remove,
        kept,
        tags: images
            .iter()
            .map(|i| (i.id.clone(), i.tags.clone()))
            .collect(),
        used_percent: percent(used),
        projected_percent: percent(used.saturating_sub(freed)),
    }
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| t.to_string())
}

/// The report's and the audit log's line for a tagged image the class removes: its tags,
/// digests, last use, first sight and why it was eligible.
fn candidate(i: &Tagged, u: &Use, all: &[ImageSummary], r: &Retention) -> Candidate {
    let digests: Vec<&str> = all
        .iter()
        .filter(|a| a.id == i.id)
        .flat_map(|a| engine::digests(&a.repo_digests))
        .collect();
    let last = u.last_used.map(rfc3339);
    let why = format!(
        "not used since {} (retention.min_idle {}), in no container, swarm spec or task, no \
         keep pattern, not among its repository's {} newest, no image that stays is built on it",
        rfc3339(u.since()),
        crate::model::humanize(std::time::Duration::from_secs(r.min_idle_secs as u64)),
        r.keep_newest
    );
    Candidate {
        id: i.id.clone(),
        size_bytes: Some(i.unique_bytes),
        description: format!(
            "tagged image {} (last used {}, first seen {})",
            i.tags.join(", "),
            last.as_deref().unwrap_or("never"),
            rfc3339(u.first_seen)
        ),
        what: serde_json::json!({
            "tags": i.tags,
            "repo_digests": digests,
            "created": i.created,
            "last_used": last,
            "first_seen": rfc3339(u.first_seen),
            "why": why,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn cfg() -> Retention {
        Retention {
            high_percent: 90,
            low_percent: 80,
            min_idle_secs: 3_600,
            keep: vec![Regex::new("^registry.example/base/").unwrap()],
            keep_newest: 1,
            build_bases_kept: false,
        }
    }

    fn img(id: &str, tags: &[&str], created: i64, layers: &[&str]) -> Tagged {
        Tagged {
            id: id.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            created,
            unique_bytes: 10,
            layers: layers.iter().map(|l| l.to_string()).collect(),
        }
    }

    const NOW: i64 = 100_000;

    /// An image whose every layer another image has frees nothing: removing it would lose its
    /// tag for no byte, so it stays, saying so.
    #[test]
    fn an_image_that_frees_nothing_stays() {
        let mut shared = img("shared", &["old:1"], 1, &["x"]);
        shared.unique_bytes = 0;
        let images = [shared, img("cold", &["cold:1"], 1, &["y"])];
        let history: BTreeMap<String, Use> = ["shared", "cold"]
            .iter()
            .map(|id| {
                (
                    id.to_string(),
                    Use {
                        first_seen: 1,
                        last_used: None,
                    },
                )
            })
            .collect();
        let r = Retention {
            keep_newest: 0,
            ..cfg()
        };
        let v: HashMap<String, Result<i64, Kept>> = judge(
            &images,
            &HashMap::new(),
            &HashMap::new(),
            Some(&history),
            &r,
            NOW,
        )
        .into_iter()
        .collect();
        assert_eq!(v["shared"], Err(Kept::FreesNothing));
        assert_eq!(v["cold"], Ok(1));
        assert!(Kept::FreesNothing.to_string().contains("frees nothing"));
    }

    #[test]
    fn every_protection_keeps_its_image_and_says_why() {
        let images = [
            img("used", &["app:1"], 1, &["a", "u"]),
            img("svc", &["app:2"], 2, &["a", "s"]),
            img("kept", &["registry.example/base/x:1"], 3, &["k"]),
            img("newest", &["app:9"], 9, &["a", "n"]),
            img("recent", &["tool:1"], 1, &["r"]),
            img("tool-newest", &["tool:2"], 5, &["t"]),
            img("unseen", &["app:3"], 3, &["a", "x"]),
            img("base", &["base:1"], 0, &["a"]),
            img("base-new", &["base:2"], 9, &["b2"]),
            img("cold", &["app:4", "other:7"], 4, &["c"]),
            img("other-newest", &["other:8"], 8, &["o"]),
        ];
        let in_use = HashMap::from([("used".to_string(), "web-1".to_string())]);
        let swarm = HashMap::from([("svc".to_string(), "service web (previous spec)".to_string())]);
        let history = BTreeMap::from([
            (
                "recent".to_string(),
                Use {
                    first_seen: 10,
                    last_used: Some(NOW - 60),
                },
            ),
            (
                "cold".to_string(),
                Use {
                    first_seen: 10,
                    last_used: Some(50),
                },
            ),
            (
                "base".to_string(),
                Use {
                    first_seen: 10,
                    last_used: None,
                },
            ),
        ]);
        let v: HashMap<String, Result<i64, Kept>> =
            judge(&images, &in_use, &swarm, Some(&history), &cfg(), NOW)
                .into_iter()
                .collect();
        assert_eq!(v["used"], Err(Kept::UsedByContainer("web-1".into())));
        assert!(matches!(v["svc"], Err(Kept::UsedBySwarm(_))));
        assert!(matches!(v["kept"], Err(Kept::KeepPattern(_))));
        assert!(matches!(v["newest"], Err(Kept::Newest { rank: 1, .. })));
        assert!(matches!(v["recent"], Err(Kept::Idle { .. })));
        assert_eq!(v["unseen"], Err(Kept::NoHistory));
        // `base:1`'s one layer is the first layer of images that stay.
        assert!(matches!(v["base"], Err(Kept::BaseOf(_))), "{:?}", v["base"]);
        // Judged by every tag: `other:7` is not among other's newest, `app:4` not app's.
        assert_eq!(v["cold"], Ok(50));
        // No history (lost, corrupt, another daemon's): nothing is eligible.
        let none = judge(&images, &in_use, &swarm, None, &cfg(), NOW);
        assert!(none.iter().all(|(_, v)| v.is_err()));
    }

    #[test]
    fn least_recently_used_first_between_the_watermarks() {
        let (a, b, c) = (
            img("a", &["x:1"], 1, &[]),
            img("b", &["x:2"], 1, &[]),
            img("c", &["x:3"], 1, &[]),
        );
        let eligible = [(&c, 30), (&a, 10), (&b, 20)];
        let ids = |v: Vec<&Tagged>| v.into_iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        // 95 used of 100: two images of 10 bytes bring it to 75 ≤ 80.
        assert_eq!(ids(select(&eligible, 95, 5, &cfg())), ["a", "b"]);
        // 89%: below the high watermark, nothing.
        assert!(select(&eligible, 89, 11, &cfg()).is_empty());
        // Full: down to 80% takes two; down to 70% all three.
        assert_eq!(ids(select(&eligible, 100, 0, &cfg())), ["a", "b"]);
        let lower = Retention {
            low_percent: 70,
            ..cfg()
        };
        assert_eq!(ids(select(&eligible, 100, 0, &lower)), ["a", "b", "c"]);
    }

    const T0: i64 = 1_700_000_000;

    #[test]
    fn history_learns_use_from_containers_and_events_and_is_the_daemons_own() {
        let h = History::fresh("D1", T0 + 100, &["a", "b"], None);
        assert_eq!(
            h.images["a"],
            Use {
                first_seen: T0 + 100,
                last_used: None
            }
        );
        let h = h.observe(
            T0 + 200,
            &["a", "b", "c"],
            &HashSet::from(["b"]),
            &HashMap::from([("a", T0 + 150)]),
            Vec::new(),
        );
        assert_eq!(h.images["a"].last_used, Some(T0 + 150));
        assert_eq!(h.images["b"].last_used, Some(T0 + 200));
        assert_eq!(
            h.images["c"],
            Use {
                first_seen: T0 + 200,
                last_used: None
            }
        );
        assert_eq!(h.check(T0 + 200), Ok(()));
        // Gone images are forgotten; another daemon's history is not used.
        let h2 = h.observe(
            T0 + 300,
            &["c"],
            &HashSet::new(),
            &HashMap::new(),
            Vec::new(),
        );
        assert_eq!(h2.images.len(), 1);
        assert!(h.for_daemon("D2").is_none() && h.for_daemon("").is_none());
        assert_eq!(h.for_daemon("D1").unwrap()["a"].since(), T0 + 150);
        // It round-trips through its file form.
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<History>(&text).unwrap(), h);
    }

    /// A gap protects: every image present across it counts as used at its end, and the gap is
    /// kept with how many images it covered; an image first seen after it is not touched.
    #[test]
    fn a_gap_makes_every_image_present_across_it_used_at_its_end() {
        let h = History::fresh("D1", T0, &["a", "b"], None);
        let gap = Gap {
            from: T0 + 10,
            to: T0 + 500,
            images: 0,
            why: "the daemon restarted".into(),
            build: false,
        };
        let h = h.observe(
            T0 + 600,
            &["a", "b", "new"],
            &HashSet::new(),
            &HashMap::new(),
            vec![gap],
        );
        assert_eq!(h.images["a"].since(), T0 + 500);
        assert_eq!(h.images["b"].since(), T0 + 500);
        assert_eq!(h.images["new"].since(), T0 + 600);
        assert_eq!(h.gaps.len(), 1);
        assert_eq!(h.gaps[0].images, 2);
        let text = h.gaps[0].describe();
        assert!(
            text.starts_with("history gap 2023-11-14T22:13:30Z–2023-11-14T22:21:40Z: 2 images treated as used at"),
            "{text}"
        );
    }

    /// Builds, as Docker 28.5 showed them: a BuildKit build's records (the Dockerfile's, and a
    /// local base's "from local ") say when, never which image; a classic build's tagged
    /// result has a parent, a pulled image none. A build after `builds_seen` is a moment at
    /// which every image present counts as used, and moves `builds_seen`; one already
    /// accounted for is not again.
    #[test]
    fn a_build_is_a_gap_of_one_moment_since_no_engine_names_what_it_used() {
        let record = |desc: &str, last: Option<&str>| crate::docker::usage::BuildCacheRecord {
            id: "r".into(),
            parent: None,
            parents: None,
            kind: "regular".into(),
            description: desc.into(),
            in_use: false,
            shared: true,
            size: 0,
            created_at: Some("2023-11-14T22:13:20Z".into()),
            last_used_at: last.map(String::from),
        };
        let cache = [
            record(
                "local source for dockerfile",
                Some("2023-11-14T22:15:00.5Z"),
            ),
            record("from local ", Some("2023-11-14T22:14:00Z")),
            record("no time", None),
        ];
        // 22:15:00.5 is T0 + 100.5: rounded up.
        assert_eq!(last_build(Some(&cache), &[], &[], T0 + 999), Some(T0 + 101));
        assert_eq!(last_build(Some(&[]), &[], &[], T0 + 999), None);
        assert_eq!(last_build(None, &[], &[], T0 + 999), None);
        let unparsable = [record("x", Some("yesterday"))];
        assert_eq!(last_build(Some(&unparsable), &[], &[], T0 + 999), Some(T0));
        let image = |id: &str, parent: &str, tag: &str| ImageSummary {
            id: id.into(),
            parent_id: parent.into(),
            repo_tags: vec![tag.into()],
            ..Default::default()
        };
        let images = [
            image(
                &format!("sha256:{}", "b".repeat(64)),
                "sha256:base",
                "app:1",
            ),
            image(&format!("sha256:{}", "c".repeat(64)), "", "base:1"),
        ];
        let tag = |image: &str, time: i64| UseEvent {
            image: image.into(),
            time,
            tag: true,
        };
        let run = UseEvent {
            tag: false,
            ..tag("sha256:bbbbbbbbbbbb", T0 + 700)
        };
        assert_eq!(
            last_build(
                None,
                &[tag("sha256:bbbbbbbbbbbb", T0 + 500), run],
                &images,
                T0 + 999
            ),
            Some(T0 + 501)
        );
        assert_eq!(
            last_build(None, &[tag("base:1", T0 + 600)], &images, T0 + 999),
            None
        );

        let g = build_gap(T0, Some(T0 + 180), T0 + 999).unwrap();
        assert_eq!((g.from, g.to, g.build), (T0 + 180, T0 + 180, true));
        assert!(g.why.contains("retention.build_bases_kept"), "{}", g.why);
        assert_eq!(build_gap(T0 + 180, Some(T0 + 180), T0 + 999), None);
        // A build time in the future (a clock stepped back) counts as now.
        assert_eq!(
            build_gap(T0, Some(T0 + 5_000), T0 + 999).unwrap().to,
            T0 + 999
        );

        let h = History::fresh("D1", T0, &["a"], None);
        assert_eq!(h.builds_seen, T0 + 1);
        let h = h.observe(
            T0 + 999,
            &["a", "new"],
            &HashSet::new(),
            &HashMap::new(),
            vec![g],
        );
        assert_eq!(h.builds_seen, T0 + 180);
        assert_eq!(h.images["a"].since(), T0 + 180);
        assert_eq!(h.images["new"].since(), T0 + 999);
        let text = h.gaps[0].describe();
        assert!(
            text.starts_with("history gap at 2023-11-14T22:16:20Z: 1 images treated as used at"),
            "{text}"
        );
        // A history whose builds were seen in the future is refused.
        let mut ahead = h.clone();
        ahead.builds_seen = T0 + 10_000;
        assert!(ahead
            .check(T0 + 999)
            .unwrap_err()
            .contains("the clock went backwards"));
    }

    /// The review's findings: `first_seen: 0` made an image eligible seconds after it was
    /// first seen; a history from the future (a clock stepped back) read as old. Each is
    /// refused, saying what contradicts what.
    #[test]
    fn a_history_that_contradicts_itself_or_the_clock_is_refused() {
        let good = History::fresh("D1", T0, &["a"], None);
        assert_eq!(good.check(T0 + 10), Ok(()));
        let mut zero = good.clone();
        zero.images.get_mut("a").unwrap().first_seen = 0;
        assert!(zero
            .check(T0 + 10)
            .unwrap_err()
            .contains("before the history began"));
        let mut no_start = good.clone();
        no_start.started_at = 0;
        assert!(no_start
            .check(T0)
            .unwrap_err()
            .contains("no plausible start time"));
        // The clock stepped back an hour since the last update.
        assert!(good
            .check(T0 - 3600)
            .unwrap_err()
            .contains("the clock went backwards"));
        let mut used_later = good.clone();
        used_later.images.get_mut("a").unwrap().last_used = Some(T0 + 10_000);
        assert!(used_later
            .check(T0 + 20_000)
            .unwrap_err()
            .contains("after the history's last update"));
    }

    #[test]
    fn a_replay_is_a_gap_when_truncated_or_after_a_restart_or_when_a_restart_cannot_be_ruled_out() {
        let started = |t: i64| Ok::<i64, String>(t);
        // 40 events since: complete.
        assert_eq!(
            replay_gap(
                T0,
                T0 + 60,
                40,
                Some(T0 + 1),
                Some(256),
                started(T0 - 99),
                None
            ),
            None
        );
        // 256 events, the first after `since`: the buffer overflowed.
        let g = replay_gap(T0, T0 + 60, 256, Some(T0 + 30), Some(256), started(0), None).unwrap();
        assert_eq!((g.from, g.to), (T0, T0 + 30));
        // 256 events, the first in the very second of `since`: those of that second before it
        // may have been lost (a flood within one second, seen on Docker 28.5's containerd
        // store), so it is a gap too.
        let g = replay_gap(T0, T0 + 60, 256, Some(T0), Some(256), started(0), None).unwrap();
        assert_eq!((g.from, g.to), (T0, T0));
        assert!(g.why.contains("may have been lost"), "{}", g.why);
        // The daemon started after the last update.
        let g = replay_gap(
            T0,
            T0 + 60,
            3,
            Some(T0 + 50),
            Some(256),
            started(T0 + 20),
            None,
        )
        .unwrap();
        assert_eq!((g.from, g.to), (T0, T0 + 20));
        assert!(g.why.contains("restarted"));
        // ... or in the very second of it: which came first cannot be told.
        let g = replay_gap(T0, T0, 0, None, Some(256), started(T0), None).unwrap();
        assert_eq!((g.from, g.to), (T0, T0));
        assert!(g.why.contains("restarted"));
        assert_eq!(
            replay_gap(T0, T0 + 1, 0, None, Some(256), started(T0 - 1), None),
            None,
            "a daemon up since before the update"
        );
        // Unknown start: a gap, unless the recorder saw up to just now.
        let unknown = || Err::<i64, String>("not a local socket".into());
        let g = replay_gap(T0, T0 + 60, 3, Some(T0 + 50), Some(256), unknown(), None).unwrap();
        assert_eq!((g.from, g.to), (T0, T0 + 60));
        assert_eq!(
            replay_gap(
                T0,
                T0 + 60,
                3,
                Some(T0 + 50),
                Some(256),
                unknown(),
                Some(T0 + 55)
            ),
            None
        );
        // A persistent event log (Podman): never a gap.
        assert_eq!(
            replay_gap(T0, T0 + 60, 9999, Some(T0 + 50), None, unknown(), None),
            None
        );
    }

    /// On a snapshot captured from a real swarm manager (service `web` on `pg-base:1`, deployed
    /// with --no-resolve-image): the image tagged `pg-base:1` is named by the service and its
    /// tasks; an image known by digest is matched by it, whatever its tag.
    #[test]
    fn images_named_by_swarm_are_found_by_digest_or_tag() {
        use bollard::models::ImageSummary;
        let snap = crate::gates::fixtures::load("swarm_update_paused");
        let image = |id: &str, tags: &[&str], digests: &[&str]| ImageSummary {
            id: id.into(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: digests.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        let images = [
            image("base", &["pg-base:1"], &[]),
            image("other", &["pg-base:2"], &[]),
            image(
                "pinned",
                &["registry.example/app:old"],
                &["registry.example/app@sha256:abc"],
            ),
        ];
        let refs = swarm_refs(
            snap.services.as_ref().unwrap(),
            &[],
            snap.tasks.as_ref().unwrap(),
            &images,
        );
        assert!(refs["base"].starts_with("service web"), "{refs:?}");
        assert!(!refs.contains_key("other"), "{refs:?}");
        let mut pinned = snap.services.clone().unwrap();
        let spec = pinned[0].spec.as_mut().unwrap();
        let container = spec
            .task_template
            .as_mut()
            .unwrap()
            .container_spec
            .as_mut()
            .unwrap();
        container.image = Some("registry.example/app:new@sha256:abc".into());
        let refs = swarm_refs(&pinned, &[], &[], &images);
        assert!(refs["pinned"].starts_with("service web"), "{refs:?}");
        assert!(!refs.contains_key("base"), "{refs:?}");
        // The rollback target: the previous spec's image stays too.
        let previous = [("web".to_string(), "pg-base:2".to_string())];
        let refs = swarm_refs(&pinned, &previous, &[], &images);
        assert!(refs["other"].contains("rollback target"), "{refs:?}");
    }

    #[test]
    fn a_registry_port_is_not_a_tag() {
        assert_eq!(repository("registry:5000/app:1"), "registry:5000/app");
        assert_eq!(repository("registry:5000/app"), "registry:5000/app");
        assert_eq!(repository("app:1"), "app");
    }
}

//! Randomized worlds: from a seed, a world of every kind of object prunegate meets, built on the
//! test's private dockerd, and random gate settings to run prunegate with.
//!
//! The seed decides everything (settings, object counts, states, ages, labels), so a failing
//! world is rebuilt by running its seed again. What the daemon holds is read back as a
//! [`Detail`] before and after the run; [`oracle`] decides, without prunegate's own code, what
//! had to stay and what had to go.
//!
//! Ages: loaded images carry any `created` date the generator picks (2000, days ago, or hours in
//! the future). Containers and build cache are dated by the daemon's clock, so the world is made
//! in two phases with a gap between them, and the cut-off (`older_than`) is set so that its
//! boundary falls in the middle of the gap for the whole of the dry run and the run.

pub mod oracle;
pub mod retain;

use crate::common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A gate setting: switched off, or set so that it opens, or so that it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toggle {
    Off,
    Open,
    Closed,
}

/// What the seed decides before anything is built.
#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    pub scale: usize,
    /// `run`, or `reclaim` (which does not judge the disk gate).
    pub command: &'static str,
    pub disk: Toggle,
    pub grace: Toggle,
    pub live_runs_enabled: bool,
    pub pattern: &'static str,
    /// A CI run (a compose project or stack named `ci-…`) is live in this world.
    pub ci_live: bool,
    pub converging_enabled: bool,
    pub swarm: bool,
    /// A swarm service that can never be placed (unsatisfiable constraint).
    pub pending_service: bool,
    pub classes: oracle::Classes,
    /// The retention class, on in part of the worlds.
    pub retention: Option<RetentionDraw>,
}

/// The retention class as a world draws it (docs/retention.md). Its watched filesystem is a
/// tmpfs of 64 MB a unit of scale, filled to `fill` percent, which nothing the run removes
/// frees: the class goes by its projection (the disk's used bytes less each image's unique
/// bytes), as it does on any disk.
#[derive(Debug, Clone)]
pub struct RetentionDraw {
    pub fill: u64,
    pub high: u8,
    pub low: u8,
    pub min_idle_secs: i64,
    pub keep: Vec<&'static str>,
    pub keep_newest: usize,
    pub history: HistoryDraw,
    /// A multi-stage build after the seeded history, on Docker (issue 21's builder stage):
    /// `Some(kept)`, with `kept` the world's `retention.build_bases_kept`.
    pub build: Option<bool>,
    /// Use after the seeded history, on Docker (issue 21's blind spots): none, a short-lived
    /// container of one tagged image, or that and a flood of them past the daemon's buffer.
    pub uses: UsesDraw,
    /// Then a daemon restart (killed and started again: its event buffer emptied), on Docker in
    /// a world without a swarm and with no live CI run — the restart stops the containers, and
    /// those worlds' gates would no longer be what they were drawn to be.
    pub restart: bool,
}

/// What happens between the history's last update and the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsesDraw {
    None,
    /// One container of a tagged image created and removed: two events, a use of that image.
    ShortLived,
    /// That, then 140 more of another image: 282 events, past moby's 256, so the replay is
    /// truncated — a gap across which every image counts as used.
    Flood,
}

/// The use history the world leaves in the state directory before the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryDraw {
    /// This daemon's, with each tagged image's first sight and last use drawn (some left out).
    Seeded,
    /// None: the first run with the class on.
    Missing,
    /// Another daemon's.
    OtherDaemon,
}

/// Always in `keep`: images the world builds (`d.dangling`) share their busybox layer with the
/// dangling image the build leaves, which the images step removes — after which the tagged
/// image frees more than `/system/df` said before the run. The run still takes every image the
/// dry run listed, but this oracle predicts how many of `may_also_remove` it takes from the
/// sizes before the run, and by how much the image grows no Engine API says (docs/retention.md,
/// "The dry run").
pub const KEEP_BUILT: &str = "^pgw/built-";

/// Draws the retention class from a stream of its own, so that worlds without it are the same
/// worlds as before it existed.
fn draw_retention(seed: u64) -> Option<RetentionDraw> {
    let mut r = fastrand::Rng::with_seed(seed ^ 0x7e7e_0000_1e7a);
    if r.u8(0..100) >= 45 {
        return None;
    }
    let fill = r.u64(55..=95);
    let (high, low) = if r.bool() {
        // Close to the disk's level: the class stops part-way down its order, or waits.
        let high = fill as i64 - r.i64(-2..=3);
        (high, high - r.i64(1..=6))
    } else {
        // Far below: the dry run, which judges on the disk less what it predicts the safe
        // classes free, lists images too.
        let high = fill as i64 - r.i64(10..=40);
        (high, high - r.i64(1..=12))
    };
    let high = high.clamp(2, 99) as u8;
    let low = low.clamp(1, i64::from(high) - 1) as u8;
    let mut keep = vec![KEEP_BUILT];
    for pattern in ["^pgw/base:", "^pgw/r1:", "-alias$"] {
        if r.u8(0..100) < 30 {
            keep.push(pattern);
        }
    }
    Some(RetentionDraw {
        fill,
        high,
        low,
        min_idle_secs: if r.bool() { 3_600 } else { 720 * 3_600 },
        keep,
        keep_newest: r.usize(0..=2),
        history: match r.u8(0..100) {
            0..=84 => HistoryDraw::Seeded,
            85..=92 => HistoryDraw::Missing,
            _ => HistoryDraw::OtherDaemon,
        },
        build: match r.u8(0..100) {
            0..=24 => Some(false),
            25..=39 => Some(true),
            _ => None,
        },
        uses: match r.u8(0..100) {
            0..=29 => UsesDraw::ShortLived,
            30..=49 => UsesDraw::Flood,
            _ => UsesDraw::None,
        },
        restart: r.u8(0..100) < 40,
    })
}

fn toggle(rng: &mut fastrand::Rng, off: u8, closed: u8) -> Toggle {
    let n = rng.u8(0..100);
    if n < off {
        Toggle::Off
    } else if n < off + closed {
        Toggle::Closed
    } else {
        Toggle::Open
    }
}

impl Settings {
    /// The settings of world `seed` on the test's engine: the draws are the same on every
    /// engine; Podman, which has no swarm mode, gets the same world without the swarm.
    pub fn from_seed(seed: u64, scale: usize) -> Settings {
        let mut s = Settings::drawn(seed, scale);
        if engine().kind == Kind::Podman {
            s.swarm = false;
            s.pending_service = false;
        }
        s
    }

    /// The settings the seed draws, whatever the engine.
    pub fn drawn(seed: u64, scale: usize) -> Settings {
        let mut rng = fastrand::Rng::with_seed(seed);
        let swarm = rng.u8(0..100) < 40;
        Settings {
            seed,
            scale,
            command: if rng.u8(0..100) < 20 {
                "reclaim"
            } else {
                "run"
            },
            disk: toggle(&mut rng, 10, 12),
            grace: toggle(&mut rng, 10, 8),
            live_runs_enabled: rng.u8(0..100) < 92,
            pattern: match rng.u8(0..100) {
                0..=69 => "^ci-",
                70..=84 => "^no-such-run$",
                _ => ".*",
            },
            ci_live: rng.u8(0..100) < 18,
            converging_enabled: rng.u8(0..100) < 92,
            swarm,
            pending_service: swarm && rng.u8(0..100) < 35,
            classes: oracle::Classes {
                containers: rng.u8(0..100) < 85,
                images: rng.u8(0..100) < 85,
                build_cache: rng.u8(0..100) < 85,
            },
            retention: draw_retention(seed),
        }
    }

    /// prunegate's config for world `w`: the cut-off its build chose; with the retention class,
    /// the disk gate and the class on the world's small filesystem, the state in its directory.
    pub fn config(&self, w: &World) -> String {
        let older_than_ms = w.older_than_ms;
        let disk = match self.disk {
            Toggle::Off => "enabled = false".to_string(),
            // Any real disk is at least 1% used; none here is 100% used.
            Toggle::Open => "used_percent = 1\ninodes_used_percent = 1".to_string(),
            Toggle::Closed => "used_percent = 100\ninodes_used_percent = 100".to_string(),
        };
        let grace = match self.grace {
            Toggle::Off => "enabled = false",
            Toggle::Open => "min_uptime = \"0s\"",
            // The private daemon started seconds ago.
            Toggle::Closed => "min_uptime = \"1h\"",
        };
        let c = &self.classes;
        let (path, retention) = match (&self.retention, &w.retention) {
            (Some(r), Some(rw)) => (
                format!("path = \"{}\"\n", rw.disk.display()),
                format!(
                    "[state]\ndir = \"{}\"\n[retention]\nenabled = true\nhigh_percent = {}\n\
                     low_percent = {}\nmin_idle = \"{}s\"\nkeep = {:?}\nkeep_newest = {}\n\
                     build_bases_kept = {}\n",
                    rw.state.display(),
                    r.high,
                    r.low,
                    r.min_idle_secs,
                    r.keep,
                    r.keep_newest,
                    r.build == Some(true)
                ),
            ),
            _ => (String::new(), String::new()),
        };
        format!(
            "[gates.disk]\n{path}{disk}\n[gates.grace]\n{grace}\n\
             [gates.live_runs]\nenabled = {}\npattern = \"{}\"\n\
             [gates.converging]\nenabled = {}\n\
             [prune]\nolder_than = \"{older_than_ms}ms\"\ncontainers = {}\nimages = {}\n\
             build_cache = {}\n{retention}",
            self.live_runs_enabled,
            self.pattern,
            self.converging_enabled,
            c.containers,
            c.images,
            c.build_cache
        )
    }

    /// Whether each gate should be open, judged from the settings and what was built.
    pub fn expected_gates(&self, live_names: &BTreeSet<String>) -> BTreeMap<&'static str, bool> {
        let pattern = regex::Regex::new(self.pattern).unwrap();
        let live_closed = self.live_runs_enabled && live_names.iter().any(|n| pattern.is_match(n));
        BTreeMap::from([
            (
                "disk",
                self.command == "reclaim" || self.disk != Toggle::Closed,
            ),
            ("grace", self.grace != Toggle::Closed),
            ("live_runs", !live_closed),
            (
                "converging",
                !(self.converging_enabled && self.pending_service),
            ),
        ])
    }

    /// One line for the log: the settings that decide the outcome.
    pub fn summary(&self) -> String {
        let c = &self.classes;
        let retention = match &self.retention {
            None => String::new(),
            Some(r) => {
                format!(
                    " retention={}%:{}-{}:{}h:n{}:{:?}{}:uses={:?}",
                    r.fill,
                    r.high,
                    r.low,
                    r.min_idle_secs / 3_600,
                    r.keep_newest,
                    r.history,
                    match r.build {
                        Some(true) => ":build-kept",
                        Some(false) => ":build",
                        None => "",
                    },
                    r.uses
                ) + if r.restart { ":restart" } else { "" }
            }
        };
        format!(
            "{} disk={:?} grace={:?} live_runs={}{} ci_live={} swarm={} pending={} \
             converging={} classes=c{}i{}b{}{retention}",
            self.command,
            self.disk,
            self.grace,
            if self.live_runs_enabled {
                "on:"
            } else {
                "off:"
            },
            self.pattern,
            self.ci_live,
            self.swarm,
            self.pending_service,
            self.converging_enabled,
            u8::from(c.containers),
            u8::from(c.images),
            u8::from(c.build_cache)
        )
    }
}

/// A container the generator makes.
#[derive(Debug, Clone)]
struct Plan {
    name: String,
    image: String,
    state: &'static str,
    labels: BTreeMap<String, String>,
    anon_volume: bool,
    named_volume: Option<String>,
}

/// States the daemon allows that a world can reach on demand. `dead` is left out: the daemon
/// only sets it when removing a container fails, which cannot be caused from outside.
const STATES: [(&str, u8); 7] = [
    ("created", 22),
    ("exited", 22),
    ("exited_error", 12),
    ("running", 22),
    ("paused", 10),
    ("restarting", 4),
    ("running_anon", 8),
];

/// A state drawn by weight, as the engine can reach it ([`reachable`]).
fn pick_state(rng: &mut fastrand::Rng) -> &'static str {
    let total: u8 = STATES.iter().map(|s| s.1).sum();
    let mut n = rng.u8(0..total);
    for (state, weight) in STATES {
        if n < weight {
            return reachable(state);
        }
        n -= weight;
    }
    unreachable!()
}

/// `state`, or `running` where the engine cannot make it. On Podman `restarting`: Podman has no
/// such state; between restarts its container is `exited` for a moment, and libpod's container
/// prune takes exited containers, so whether it stays depends on the instant (a world cannot
/// say what must happen to it). `paused` where the engine cannot pause (rootless on cgroup v1:
/// a rootless container has no cgroup to freeze).
fn reachable(state: &'static str) -> &'static str {
    match state {
        "restarting" if engine().kind == Kind::Podman => "running",
        "paused" if !engine().can_pause() => "running",
        _ => state,
    }
}

/// Whether a container in `state` makes its compose project live: running, paused or
/// restarting, prunegate's live-runs rule (docs/gates.md); created and exited ones do not.
fn is_live(state: &str) -> bool {
    matches!(state, "running" | "running_anon" | "paused" | "restarting")
}

/// A world built on the daemon: what the run needs to be judged.
pub struct World {
    /// Compose projects and stacks that are live (what the live-runs gate should see).
    pub live_names: BTreeSet<String>,
    pub older_than_ms: u64,
    /// When the world was ready (Unix seconds): the boundary is then `older_than` before it.
    pub ready: f64,
    /// Seconds the runs may take before the boundary leaves the gap.
    pub slack: f64,
    /// For each image left untagged by a step of the build: when that step ran (Unix seconds,
    /// before and after). On the containerd image store a dangling image's record is made at
    /// that moment, and its age is that record's ([`oracle::Rules`]).
    pub dangling_since: BTreeMap<String, (f64, f64)>,
    pub retention: Option<RetentionWorld>,
    /// What `state/tags.json` says a previous run saw (image id → its tags then): the oracle's
    /// knowledge of which digest pulls were superseded ([`oracle::Image::superseded`]).
    pub seen_tags: BTreeMap<String, Vec<String>>,
    /// What was pulled from the world's registry, and how, for the world's line.
    pub pulls: String,
}

/// The retention class's part of a world.
pub struct RetentionWorld {
    /// The watched filesystem (a small tmpfs) and prunegate's state directory.
    pub disk: PathBuf,
    pub state: PathBuf,
    /// What the use history left for the runs says (image id → first seen, last used); `None`
    /// when it is missing or another daemon's.
    pub history: Option<BTreeMap<String, (i64, Option<i64>)>>,
    /// The tags the swarm's services (and so their tasks) name.
    pub swarm_tags: BTreeSet<String>,
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A `created` date for a loaded image: old (2000, or days ago) or young (hours ahead, which
/// no cut-off reaches).
fn image_date(rng: &mut fastrand::Rng) -> String {
    let now = unix_now() as i64;
    match rng.u8(0..10) {
        0..=3 => rfc3339(946_684_800 + rng.i64(0..86_400 * 365)),
        4..=6 => rfc3339(now - rng.i64(3_600..86_400 * 30)),
        _ => rfc3339(now + rng.i64(3_600..86_400 * 2)),
    }
}

/// Builds the world for `settings` on `d`.
pub fn build(d: &mut PrivateDaemon, settings: &Settings) -> World {
    // A stream of its own, so that changing what a world holds does not change the settings
    // `Settings::from_seed` drew for the same seed.
    let mut rng = fastrand::Rng::with_seed(settings.seed ^ 0x05ee_d0fa_0b1d);
    // The retention class's draws: a stream of their own again, so that worlds without the
    // class are built as before it existed.
    let mut rr = fastrand::Rng::with_seed(settings.seed ^ 0x0b1d_1e7a_0000);
    let retention = settings.retention.is_some();
    let s = settings.scale.max(1);
    let disk = settings
        .retention
        .as_ref()
        .map(|r| d.small_fs(64 * s as u64, r.fill));
    let mut live_names = BTreeSet::new();

    // Images, loaded in one tarball: every one can run (busybox in a shared layer).
    let busybox = std::fs::read(BUSYBOX).expect("reading /bin/busybox");
    let mut layers = vec![layer_tar(&[("bin/busybox", &busybox, 0o755)])];
    let mut images = vec![TarImage {
        created: rfc3339(946_684_800),
        tags: vec!["pgw/base:1".into()],
        layers: vec![0],
        label: "base".into(),
    }];
    let n_images = rng.usize(12..=24) * s;
    // With the retention class, images share repositories (four of them, for keep_newest),
    // layers carry bytes worth freeing, and some images are built on others (the base rule).
    // Images in such a pair keep their tags (see the moves below).
    let mut related = BTreeSet::new();
    for i in 0..n_images {
        let repo = format!("pgw/r{}", i % 4);
        let tags = match rng.u8(0..10) {
            // Fewer dangling images in a retention world: what the images step frees is the
            // dry run's uncertainty there.
            0..=2 if !retention || rr.u8(0..100) >= 70 => Vec::new(),
            0..=7 if retention => vec![format!("{repo}:{i}")],
            0..=7 => vec![format!("pgw/img{i}:1")],
            _ if retention => vec![
                format!("{repo}:{i}"),
                format!("{repo}:{i}-alias"),
                format!("pgw/alias:{i}"),
            ],
            _ => vec![
                format!("pgw/img{i}:1"),
                format!("pgw/img{i}:latest"),
                format!("pgw/alias{i}:x"),
            ],
        };
        let mut own = vec![0];
        // Every image of a retention world has bytes of its own (an image of the shared
        // busybox layer alone is a base of every other and frees nothing).
        if rng.bool() || retention {
            let data = format!("image {i} of world {}\n", settings.seed);
            let (text, bin) = (format!("data/{i}.txt"), format!("data/{i}.bin"));
            let mut files = vec![(text.as_str(), data.into_bytes(), 0o644)];
            // Bytes to free on tagged images: what the images step frees is the dry run's
            // uncertainty (may_also_remove), kept smaller than what the class takes.
            if retention && !tags.is_empty() {
                let mut blob = vec![0u8; rr.usize(256 << 10..2 << 20)];
                rr.fill(&mut blob);
                files.push((bin.as_str(), blob, 0o644));
            }
            let files: Vec<(&str, &[u8], u32)> = files
                .iter()
                .map(|(p, b, m)| (*p, b.as_slice(), *m))
                .collect();
            layers.push(layer_tar(&files));
            // On a tagged image whose tags stay, now and then: built on an earlier one.
            let parents: Vec<usize> = (1..images.len())
                .filter(|&p| images[p].layers.len() > 1 && !images[p].tags.is_empty())
                .collect();
            if retention && !tags.is_empty() && !parents.is_empty() && rr.u8(0..100) < 30 {
                let p = parents[rr.usize(..parents.len())];
                own = images[p].layers.clone();
                related.insert(images[p].label.clone());
                related.insert(format!("w{}-{i}", settings.seed));
            }
            own.push(layers.len() - 1);
        }
        images.push(TarImage {
            created: image_date(&mut rng),
            tags,
            layers: own,
            label: format!("w{}-{i}", settings.seed),
        });
    }
    let mut dangling_since = BTreeMap::new();
    track(d, &mut dangling_since, || {
        load(d, &image_tarball(&layers, &images))
    });
    let ids = image_ids_by_label(d);
    let image_ids: Vec<String> = images.iter().map(|i| ids[&i.label].clone()).collect();

    let volumes: Vec<String> = (0..rng.usize(1..=4) * s)
        .map(|i| format!("pgw-vol{i}"))
        .collect();
    let mut plan_containers = |rng: &mut fastrand::Rng, phase: &str, n: usize| -> Vec<Plan> {
        // In a retention world most containers run the base, so that some tagged images are
        // used by none.
        let mut image = |rng: &mut fastrand::Rng| {
            let drawn = image_ids[rng.usize(..image_ids.len())].clone();
            if retention && rr.u8(0..100) < 75 {
                image_ids[0].clone()
            } else {
                drawn
            }
        };
        (0..n)
            .map(|i| {
                let state = pick_state(rng);
                let mut labels = BTreeMap::new();
                match rng.u8(0..10) {
                    0..=2 => {
                        labels.insert(
                            "com.docker.compose.project".to_string(),
                            format!("app-{}", rng.u8(0..4)),
                        );
                    }
                    // CI runs that finished: their containers exited.
                    3 if !is_live(state) => {
                        labels.insert(
                            "com.docker.compose.project".to_string(),
                            format!("ci-{}", rng.u16(..)),
                        );
                    }
                    _ => {}
                }
                if let Some(p) = labels.get("com.docker.compose.project") {
                    if is_live(state) {
                        live_names.insert(p.clone());
                    }
                }
                Plan {
                    name: format!("pgw-{phase}{i}"),
                    image: image(rng),
                    state,
                    labels,
                    anon_volume: state == "running_anon" || rng.u8(0..10) == 0,
                    named_volume: (rng.u8(0..10) < 2)
                        .then(|| volumes[rng.usize(..volumes.len())].clone()),
                }
            })
            .collect()
    };
    let (n_a, n_b) = (rng.usize(10..=20) * s, rng.usize(4..=8) * s);
    let mut phase_a = plan_containers(&mut rng, "a", n_a);
    let phase_b = plan_containers(&mut rng, "b", n_b);
    if settings.ci_live && (!settings.swarm || rng.bool()) {
        let name = format!("ci-{}", settings.seed);
        live_names.insert(name.clone());
        phase_a.push(Plan {
            name: "pgw-ci-run".into(),
            image: image_ids[0].clone(),
            state: reachable(["running", "paused", "restarting"][rng.usize(0..3)]),
            labels: BTreeMap::from([("com.docker.compose.project".to_string(), name)]),
            anon_volume: false,
            named_volume: None,
        });
    }

    // Phase A: old containers and builds.
    create_all(d, &phase_a);
    let builds_a = rng.usize(1..=2);
    for b in 0..builds_a {
        track(d, &mut dangling_since, || {
            d.dangling(&format!("pgw/built-a{b}:1"));
        });
    }
    // Podman's builds make no chain of parent images the way Docker's classic builder does.
    if rng.u8(0..10) < 4 && engine().kind == Kind::Docker {
        track(d, &mut dangling_since, || {
            d.classic_dangling_chain("pgw/classic:1", "pgw/base:1");
        });
    }
    let phase_a_end = Instant::now();

    // In the gap, work whose timing does not matter: tags move (leaving images dangling, some
    // held by containers made above), volumes, swarm.
    let mut moved = Vec::new();
    for i in images
        .iter()
        .filter(|i| !i.tags.is_empty() && i.label != "base")
    {
        // A base and the image built on it keep their tags: one left dangling and removed by
        // the images step would change what the other frees (see KEEP_BUILT).
        let moves = rng.u8(0..10) < 4 && !(retention && rr.bool());
        if !moves || related.contains(&i.label) {
            continue;
        }
        moved.push(TarImage {
            created: image_date(&mut rng),
            // Sometimes only one of several tags moves: the old image stays tagged.
            tags: if i.tags.len() > 1 && rng.bool() {
                vec![i.tags[0].clone()]
            } else {
                i.tags.clone()
            },
            layers: vec![0],
            label: format!("{}-moved", i.label),
        });
    }
    if !moved.is_empty() {
        track(d, &mut dangling_since, || {
            load(d, &image_tarball(&layers[..1], &moved))
        });
    }
    for v in &volumes {
        d.api_post("/volumes/create", &json!({ "Name": v }).to_string());
    }
    let mut swarm_tags = BTreeSet::new();
    if settings.swarm {
        swarm_tags.insert("pgw/base:1".to_string());
        d.swarm_init();
        let mut services = vec![("web".to_string(), rng.usize(0..=1))];
        if settings.ci_live && !live_names.iter().any(|n| n.starts_with("ci-")) {
            services.push((format!("ci-{}", settings.seed), rng.usize(0..=1)));
        }
        for (stack, replicas) in &services {
            let replicas = replicas.to_string();
            let label = format!("com.docker.stack.namespace={stack}");
            let args = [
                "--label",
                &label,
                "--container-label",
                &label,
                "--replicas",
                &replicas,
            ];
            d.service(&format!("{stack}_svc"), &args, "pgw/base:1");
            live_names.insert(stack.clone());
        }
        if settings.pending_service {
            d.stuck_service("stuck", "pgw/base:1");
        }
        d.wait_for("replicated services to converge", || {
            d.docker(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"])
                .lines()
                .filter(|l| !l.starts_with("stuck "))
                .all(|l| {
                    let r = l.split_whitespace().nth(1).unwrap_or("");
                    r.split('/').next() == r.split('/').nth(1)
                })
        });
    }

    let (seen_tags, pulls) = registry_pulls(d, settings, &mut dangling_since);

    // The gap: long enough that the boundary stays inside it while both runs take place.
    // Podman's prunes take longer (each container removal goes through conmon and its
    // database): its runs need more of the gap to finish while the boundary stays inside it.
    let objects = n_images + phase_a.len() + phase_b.len();
    let per_object = if engine().kind == Kind::Podman {
        80
    } else {
        25
    };
    // The retention class reads more (every tagged image's layers, /system/df) in both runs.
    let reads = if retention { 4_000 } else { 0 };
    let gap = Duration::from_millis(6_000 + reads + per_object * objects as u64);
    if let Some(rest) = gap.checked_sub(phase_a_end.elapsed()) {
        std::thread::sleep(rest);
    }
    let boundary = Instant::now() - gap / 2;

    // Phase B: young containers and builds. An image whose tag moved in the gap may be gone:
    // Docker 26.1's containerd store deletes an image that `docker load` took its last tag from
    // when nothing uses it (28.5 keeps it as a dangling record). Such containers use the base.
    let present: BTreeSet<String> = d
        .api("/images/json?all=1")
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["Id"].as_str().map(str::to_string))
        .collect();
    let phase_b: Vec<Plan> = phase_b
        .into_iter()
        .map(|mut p| {
            if !present.contains(&p.image) {
                p.image = image_ids[0].clone();
            }
            p
        })
        .collect();
    create_all(d, &phase_b);
    if rng.bool() {
        track(d, &mut dangling_since, || {
            d.dangling("pgw/built-b:1");
        });
    }
    // A restart stops the containers: only where no gate depends on one running.
    let live_closed = !settings.expected_gates(&live_names)["live_runs"];
    let restart_ok = engine().kind == Kind::Docker && !settings.swarm && !live_closed;
    let retention = settings.retention.as_ref().zip(disk).map(|(r, disk)| {
        let state = d.dir.path().join("state");
        RetentionWorld {
            history: leave_history(d, &state, r, restart_ok, &mut rr),
            disk,
            state,
            swarm_tags,
        }
    });
    let ready_at = Instant::now();
    World {
        live_names,
        older_than_ms: (ready_at - boundary).as_millis() as u64,
        ready: unix_now(),
        slack: (gap / 2).as_secs_f64() - 1.0,
        dangling_since,
        retention,
        seen_tags,
        pulls,
    }
}

/// Images a private registry gives the host, on Docker engines in seven worlds of ten (Podman's
/// are left out until the oracle knows how its listing tells a digest-named image from a
/// superseded one; tests/registry.rs covers Podman's two cases; rootless Docker's cannot reach
/// the registry here, [`crate::common::TestEngine::pulls_from_loopback`]): pushed, removed, and pulled
/// back the ways hosts pull them — by tag, by digest (a digest-pinned compose service), by a
/// swarm service that is then removed (a torn-down stack), or by tag and then superseded by a
/// new image under that tag. For some superseded pulls, `state/tags.json` says a previous run
/// saw the old image hold its tag; those are returned (image id → tags), with a line saying
/// what was pulled how. A stream of its own.
fn registry_pulls(
    d: &PrivateDaemon,
    settings: &Settings,
    dangling_since: &mut BTreeMap<String, (f64, f64)>,
) -> (BTreeMap<String, Vec<String>>, String) {
    let mut rng = fastrand::Rng::with_seed(settings.seed ^ 0x0e61_57e7_0000);
    let mut seen = BTreeMap::new();
    if engine().kind != Kind::Docker || !engine().pulls_from_loopback() || rng.u8(0..10) >= 7 {
        return (seen, String::new());
    }
    let mut ways = BTreeMap::new();
    let registry = Registry::start();
    let busybox = std::fs::read(BUSYBOX).expect("reading /bin/busybox");
    let mut layers = vec![layer_tar(&[("bin/busybox", &busybox, 0o755)])];
    let n = rng.usize(2..=5) * settings.scale.max(1);
    let image = |layers: &mut Vec<Vec<u8>>, rng: &mut fastrand::Rng, k: usize, v: u8| {
        let data = format!("pull {k} v{v} of world {}\n", settings.seed);
        layers.push(layer_tar(&[("data/pull.txt", data.as_bytes(), 0o644)]));
        TarImage {
            created: image_date(rng),
            tags: vec![registry.repo(&format!("pgw/p{k}:1"))],
            layers: vec![0, layers.len() - 1],
            label: format!("w{}-pull{k}-v{v}", settings.seed),
        }
    };
    let pushed: Vec<TarImage> = (0..n).map(|k| image(&mut layers, &mut rng, k, 1)).collect();
    load(d, &image_tarball(&layers, &pushed));
    let mut digests = Vec::new();
    for i in &pushed {
        d.docker(&["push", "-q", &i.tags[0]]);
        digests.push(d.digest_of(&i.tags[0]));
        d.docker(&["rmi", &i.tags[0]]);
    }
    let daemon_id = d.api("/info")["ID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for (k, (i, digest)) in pushed.iter().zip(&digests).enumerate() {
        let tag = &i.tags[0];
        let way = match rng.u8(0..4) {
            0 => "tag",
            2 if settings.swarm => "swarm",
            3 => "superseded",
            _ => "digest",
        };
        *ways.entry(way).or_insert(0) += 1;
        match way {
            "tag" => d.pull(tag),
            "swarm" => {
                let name = format!("pgw-pull{k}");
                d.docker(&[
                    "service",
                    "create",
                    "-d",
                    "--name",
                    &name,
                    tag,
                    "/bin/busybox",
                    "sleep",
                    "3600",
                ]);
                d.wait_for_service(&name);
                d.remove_service(&name);
            }
            "superseded" => {
                d.pull(tag);
                let old = normalized_id(&d.image_id(tag));
                // Upstream moves the tag and the host pulls it again: the old image keeps only
                // its digest (the classic store) or becomes a dangling record (containerd).
                let newer = image(&mut layers, &mut rng, k, 2);
                track(d, dangling_since, || {
                    load(d, &image_tarball(&layers, std::slice::from_ref(&newer)))
                });
                if rng.bool() {
                    seen.insert(old, vec![tag.clone()]);
                }
            }
            _ => d.pull(digest),
        }
    }
    if !seen.is_empty() {
        let state = d.dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let tags = json!({ "daemon_id": daemon_id, "tags": seen });
        std::fs::write(state.join("tags.json"), tags.to_string()).unwrap();
    }
    let ways: Vec<String> = ways.iter().map(|(w, n)| format!("{w} {n}")).collect();
    let line = format!(
        " pulled: {} ({} seen superseded)",
        ways.join(", "),
        seen.len()
    );
    (seen, line)
}

/// Leaves the use history the draw asks for in `state` (as a previous run would have, updated
/// now: the runs read the events from here on), and returns what it says when it is this
/// daemon's. Each tagged image, in the order of its first tag: left out (prunegate then sees
/// it first at the run), used recently (within `min_idle`), or idle for longer — never within
/// ten minutes of the boundary, and no two at the same second, so that the order is the
/// history's.
fn leave_history(
    d: &mut PrivateDaemon,
    state: &std::path::Path,
    r: &RetentionDraw,
    restart_ok: bool,
    rr: &mut fastrand::Rng,
) -> Option<BTreeMap<String, (i64, Option<i64>)>> {
    let mut tagged: Vec<(String, String)> = d
        .api("/images/json")
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| {
            let mut tags: Vec<&str> = i["RepoTags"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "<none>:<none>")
                .collect();
            tags.sort();
            Some((tags.first()?.to_string(), i["Id"].as_str()?.to_string()))
        })
        .collect();
    tagged.sort();
    // The runs replay every event since the history's update, image pulls and tags among them
    // (each a use): the world's own making is in seconds before it.
    settle();
    let now = unix_now() as i64;
    let mut seconds = BTreeSet::new();
    let mut history = BTreeMap::new();
    for (_, id) in &tagged {
        let draw = rr.u8(0..100);
        if draw < 10 {
            continue;
        }
        let since = loop {
            let s = if draw < 30 {
                now - rr.i64(60..r.min_idle_secs - 600)
            } else {
                now - r.min_idle_secs - rr.i64(600..86_400 * 60)
            };
            if seconds.insert(s) {
                break s;
            }
        };
        let entry = if rr.bool() {
            (since, None)
        } else {
            (since - rr.i64(0..86_400 * 90), Some(since))
        };
        history.insert(id.clone(), entry);
    }
    let daemon_id = match r.history {
        HistoryDraw::Missing => return None,
        HistoryDraw::OtherDaemon => "OTHER:DAEMON".to_string(),
        HistoryDraw::Seeded => d.api("/info")["ID"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let images: serde_json::Map<String, Value> = history
        .iter()
        .map(|(id, (first, last))| {
            let mut u = json!({ "first_seen": first });
            if let Some(l) = last {
                u["last_used"] = json!(l);
            }
            (id.clone(), u)
        })
        .collect();
    std::fs::create_dir_all(state).unwrap();
    // The history began before its oldest first sight (a later start is a contradiction the
    // class refuses), and is up to date now.
    let started = history
        .values()
        .map(|(first, _)| *first)
        .min()
        .unwrap_or(now);
    // Builds before it are accounted for (`builds_seen`): the world's own making.
    std::fs::write(
        state.join("retention.json"),
        json!({ "daemon_id": daemon_id, "started_at": started, "updated_at": now,
                "builds_seen": now, "images": images })
        .to_string(),
    )
    .unwrap();
    if r.history != HistoryDraw::Seeded {
        return None;
    }
    // Issue 21's builder stage: a tagged image used only as a build stage, after the history's
    // update. No engine names it, so the build is a moment at which every image the history
    // holds counts as used — unless the operator's `build_bases_kept` says builds hold nothing.
    // A use at `at`: the later of it and the last use drawn.
    let used_at = |last: &mut Option<i64>, at: i64| *last = Some(last.map_or(at, |l| l.max(at)));
    let all_used = |history: &mut BTreeMap<String, (i64, Option<i64>)>, at: i64| {
        for (_, last) in history.values_mut() {
            used_at(last, at);
        }
    };
    if let (Some(kept), Kind::Docker, Some((stage, _))) = (r.build, engine().kind, tagged.first()) {
        settle();
        d.build_with_stage("pgw/staged:1", stage);
        if !kept {
            all_used(&mut history, unix_now().ceil() as i64);
        }
    }
    // Issue 21's short-lived use, and the flood that made the replay lose it.
    if let (true, Kind::Docker, false) =
        (r.uses != UsesDraw::None, engine().kind, tagged.is_empty())
    {
        let (tag, id) = &tagged[rr.usize(0..tagged.len())];
        d.flood(tag, 1);
        let at = unix_now() as i64;
        if let Some((_, last)) = history.get_mut(id) {
            used_at(last, at);
        }
        if r.uses == UsesDraw::Flood {
            let (other, _) = &tagged[rr.usize(0..tagged.len())];
            d.flood(other, 140);
            all_used(&mut history, unix_now() as i64);
        }
    }
    // Issue 21's restart: the buffer emptied, a gap up to the daemon's start.
    if r.restart && restart_ok {
        d.kill_and_restart();
        all_used(&mut history, unix_now() as i64);
    }
    Some(history)
}

/// Ids of the untagged images `/images/json?all=1` lists.
fn untagged(d: &PrivateDaemon) -> BTreeSet<String> {
    d.api("/images/json?all=1")
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["RepoTags"]
                .as_array()
                .is_none_or(|t| t.iter().all(|t| t == "<none>:<none>"))
        })
        .map(|i| normalized_id(i["Id"].as_str().unwrap_or_default()))
        .collect()
}

/// Runs `step` and notes, for every image it left untagged, when it ran: the image's dangling
/// record was made then.
fn track(d: &PrivateDaemon, since: &mut BTreeMap<String, (f64, f64)>, step: impl FnOnce()) {
    let before = untagged(d);
    let t0 = unix_now();
    step();
    let t1 = unix_now();
    for id in untagged(d).difference(&before) {
        since.insert(id.clone(), (t0, t1));
    }
}

/// Docker's form of an image id, `sha256:…`, on every engine (Podman lists bare hex ids).
pub fn normalized_id(id: &str) -> String {
    if id.is_empty() || id.starts_with("sha256:") {
        id.to_string()
    } else {
        format!("sha256:{id}")
    }
}

fn load(d: &PrivateDaemon, tarball: &[u8]) {
    let path = d.dir.path().join(format!("load-{}.tar", unique()));
    std::fs::write(&path, tarball).unwrap();
    d.docker(&["load", "-q", "-i", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(path);
}

fn image_ids_by_label(d: &PrivateDaemon) -> BTreeMap<String, String> {
    d.api("/images/json?all=1")
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| {
            let label = i["Labels"]["pg.fixture"].as_str()?;
            Some((label.to_string(), i["Id"].as_str()?.to_string()))
        })
        .collect()
}

/// Creates the planned containers, four at a time, and brings each to its state.
fn create_all(d: &PrivateDaemon, plans: &[Plan]) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(p) = plans.get(i) else { break };
                create_one(d, p);
            });
        }
    });
}

fn create_one(d: &PrivateDaemon, p: &Plan) {
    let cmd: Vec<&str> = match p.state {
        "exited" => vec!["/bin/busybox", "true"],
        "exited_error" | "restarting" => vec!["/bin/busybox", "false"],
        _ => vec!["/bin/busybox", "sleep", "3600"],
    };
    let mut host = json!({ "NetworkMode": "none" });
    if let Some(v) = &p.named_volume {
        host["Binds"] = json!([format!("{v}:/data")]);
    }
    if p.state == "restarting" {
        host["RestartPolicy"] = json!({ "Name": "always" });
    }
    let mut body = json!({
        "Image": p.image,
        "Cmd": cmd,
        "Labels": p.labels,
        "HostConfig": host,
    });
    if p.anon_volume {
        body["Volumes"] = json!({ "/anon": {} });
    }
    let created = d.api_post(
        &format!("/containers/create?name={}", p.name),
        &body.to_string(),
    );
    let id = created["Id"].as_str().expect("container id").to_string();
    if p.state == "created" {
        return;
    }
    d.api_post(&format!("/containers/{id}/start"), "");
    match p.state {
        // Polled, not `POST /wait`: Podman 4.3 never answers a wait for a container that has
        // already exited.
        "exited" | "exited_error" => {
            d.wait_for(&format!("{} to exit", p.name), || {
                d.api(&format!("/containers/{id}/json"))["State"]["Running"] == false
            });
        }
        "paused" => {
            d.api_post(&format!("/containers/{id}/pause"), "");
        }
        _ => {}
    }
}

/// What the daemon holds, as the oracle needs it.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    pub containers: Vec<oracle::Container>,
    pub images: Vec<oracle::Image>,
    pub build_cache: Vec<oracle::CacheRecord>,
    pub volumes: Vec<String>,
}

impl Detail {
    pub fn read(d: &PrivateDaemon) -> Detail {
        let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let containers = d
            .api("/containers/json?all=1")
            .as_array()
            .unwrap()
            .iter()
            .map(|c| oracle::Container {
                id: str_of(&c["Id"]),
                name: str_of(&c["Names"][0]),
                state: str_of(&c["State"]),
                created: c["Created"].as_i64().unwrap_or_default(),
                image_id: normalized_id(&str_of(&c["ImageID"])),
            })
            .collect();
        let images = d
            .api("/images/json?all=1")
            .as_array()
            .unwrap()
            .iter()
            .map(|i| oracle::Image {
                id: normalized_id(&str_of(&i["Id"])),
                parent: normalized_id(&str_of(&i["ParentId"])),
                tags: i["RepoTags"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(str_of)
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                digests: i["RepoDigests"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(str_of)
                    .filter(|t| t != "<none>@<none>")
                    .collect(),
                superseded: false,
                created: i["Created"].as_i64().unwrap_or_default(),
                dangling_since: None,
                layers: Vec::new(),
                unique_bytes: None,
            })
            .collect();
        let df = d.df();
        let mut images: Vec<oracle::Image> = images;
        // For the retention class: what each image frees (`Size − SharedSize`, as the engine
        // reports it) and, for the tagged ones, their layers.
        let unique: BTreeMap<String, u64> = df_list(&df, "Images")
            .iter()
            .map(|i| {
                let size = i["Size"].as_i64().unwrap_or_default();
                let shared = i["SharedSize"].as_i64().unwrap_or_default().max(0);
                (
                    normalized_id(&str_of(&i["Id"])),
                    (size - shared).max(0) as u64,
                )
            })
            .collect();
        for i in images.iter_mut() {
            i.unique_bytes = unique.get(&i.id).copied();
            // Podman refuses the class: no layers needed there.
            if !i.tags.is_empty() && engine().kind == Kind::Docker {
                i.layers = d.api(&format!("/images/{}/json", i.id))["RootFS"]["Layers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(str_of)
                    .collect();
            }
        }
        let time = |v: &Value| {
            v.as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_micros() as f64 / 1e6)
        };
        let build_cache = df_list(&df, "BuildCache")
            .iter()
            .map(|r| oracle::CacheRecord {
                id: str_of(&r["ID"]),
                kind: str_of(&r["Type"]),
                in_use: r["InUse"].as_bool().unwrap_or(true),
                shared: r["Shared"].as_bool().unwrap_or(true),
                last_used: time(&r["LastUsedAt"])
                    .or_else(|| time(&r["CreatedAt"]))
                    .unwrap_or(f64::MAX),
            })
            .collect();
        let volumes = df_list(&df, "Volumes")
            .iter()
            .map(|v| str_of(&v["Name"]))
            .collect();
        Detail {
            containers,
            images,
            build_cache,
            volumes,
        }
    }
}

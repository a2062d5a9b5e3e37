//! Randomized worlds on a real private dockerd: prunegate never removes what it must keep,
//! always removes what the policy makes eligible when every gate is open, and its dry run
//! predicts exactly what the run removes.
//!
//! CI runs the fixed seeds below at scale 1. The long run is `sudo scripts/worlds` (see
//! docs/testing.md); any seed is replayed with
//! `PRUNEGATE_WORLD_SEEDS=<seed> PRUNEGATE_WORLD_SCALE=<scale> cargo test --test worlds -- --nocapture`.

mod common;
mod world;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use world::oracle::{self, Inventories, Run, Window};
use world::{retain, Detail, HistoryDraw, Settings};

/// Chosen so that CI sees worlds with every gate open and every class enabled, with classes
/// switched off, with each gate closed, swarms, `reclaim`, and the retention class on with its
/// history (the dry run listing images, and the run stopping part-way down its order) and with
/// a gate closed (checked by `the_fixed_seeds_cover_every_gate`).
const CI_SEEDS: &[u64] = &[1, 2, 4, 8, 9, 16, 24, 34];

/// Parses `1-40`, `7` or `3,9,12`.
fn parse_seeds(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || panic!("PRUNEGATE_WORLD_SEEDS: {part:?} is not a seed or a range a-b");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (
                    a.parse().unwrap_or_else(|_| bad()),
                    b.parse().unwrap_or_else(|_| bad()),
                );
                out.extend(a..=b);
            }
            None => out.push(part.parse().unwrap_or_else(|_| bad())),
        }
    }
    out
}

fn seeds_and_scale() -> (Vec<u64>, usize, bool) {
    let scale = std::env::var("PRUNEGATE_WORLD_SCALE")
        .ok()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("PRUNEGATE_WORLD_SCALE: {s:?} is not a number"))
        })
        .unwrap_or(1);
    match std::env::var("PRUNEGATE_WORLD_SEEDS") {
        Ok(s) => (parse_seeds(&s), scale, false),
        Err(_) => (CI_SEEDS.to_vec(), scale, true),
    }
}

struct Outcome {
    verdict: oracle::Verdict,
    all_open: bool,
    /// Every gate open and the retention class judging on a seeded history.
    judged_retention: bool,
    line: String,
}

/// Sorted ids: listings come in no fixed order.
fn ids<T>(v: &[T], id: impl Fn(&T) -> &String) -> Vec<String> {
    let mut out: Vec<String> = v.iter().map(|x| id(x).clone()).collect();
    out.sort();
    out
}

fn kinds(d: &Detail) -> [Vec<String>; 4] {
    [
        ids(&d.containers, |c| &c.id),
        ids(&d.images, |i| &i.id),
        ids(&d.build_cache, |r| &r.id),
        ids(&d.volumes, |v| v),
    ]
}

/// The watched filesystem at `path` as `df` counts it (used and available bytes).
fn df(path: &std::path::Path) -> retain::Disk {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=used,avail"])
        .arg(path)
        .output()
        .expect("running df");
    let text = String::from_utf8_lossy(&out.stdout);
    let n: Vec<u64> = text
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(n.len() == 2, "df {}: {text}", path.display());
    retain::Disk {
        used: n[0],
        available: n[1],
    }
}

/// The retention class's part of the verdict, when the world has the class and every gate was
/// open: marks in `e` what each tagged image had to do, judged by `world::retain` on what the
/// daemon held before, the history the world left and the watched disk (`disk`, read before the
/// dry run: nothing the runs remove is on it); and returns the problems with the two reports'
/// `tagged_images` steps — the run's in its order, the dry run's list and `may_also_remove` —
/// with how many of them are the dry run's, and a word for the world's line.
fn retention_verdict(
    settings: &Settings,
    w: &world::World,
    (before, disk, now): (&Detail, retain::Disk, i64),
    e: &mut oracle::Expect,
    dry: &Value,
    real: &Value,
) -> (Vec<String>, usize, String) {
    let (Some(r), Some(rw)) = (&settings.retention, &w.retention) else {
        return (Vec::new(), 0, String::new());
    };
    let mut problems = Vec::new();
    let (dry_step, real_step) = (retain::step(dry), retain::step(real));
    let history = match (&rw.history, engine().kind) {
        (_, Kind::Podman) => Err("not supported on Podman"),
        (None, _) if r.history == HistoryDraw::Missing => Err("no use history yet"),
        (None, _) => Err("was of another daemon"),
        (Some(h), _) => Ok(h),
    };
    let history = match history {
        Ok(h) => h,
        // Nothing tagged goes (the generic verdict says so); the step says why.
        Err(says) => {
            for (what, step) in [("dry run", dry_step), ("run", real_step)] {
                let ok = step.is_some_and(|s| {
                    s["status"] == "skipped" && s["reason"].as_str().unwrap_or("").contains(says)
                });
                if !ok {
                    problems.push(format!(
                        "tagged_images in the {what}: expected skipped, \"{says}\"; got {step:?}"
                    ));
                }
            }
            return (problems, 0, format!(" tagged: none ({says})"));
        }
    };
    let policy = retain::Policy {
        high: r.high,
        low: r.low,
        min_idle_secs: r.min_idle_secs,
        keep: r
            .keep
            .iter()
            .map(|k| regex::Regex::new(k).unwrap())
            .collect(),
        keep_newest: r.keep_newest,
    };
    let seen = retain::Seen {
        images: &before.images,
        containers: &before.containers,
        swarm_tags: &rw.swarm_tags,
        history,
        now,
    };
    let judged = retain::judge(&seen, &policy);
    let removes = retain::select(&judged.eligible, disk, &policy);
    // The dry run judges on the disk less what it predicts the safe classes free; what the run
    // takes beyond that list it gives under may_also_remove (docs/retention.md).
    let freed: u64 = dry["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["class"] != "tagged_images")
        .filter_map(|s| s["reclaimed_bytes"].as_u64())
        .sum();
    let listed = retain::select(&judged.eligible, disk.less(freed), &policy);
    let maybe: Vec<String> = removes
        .iter()
        .filter(|id| !listed.contains(id))
        .cloned()
        .collect();
    for (id, why) in &judged.protected {
        e.stay(id, format!("tagged, kept by retention: {why}"));
    }
    for (id, _) in &judged.eligible {
        if removes.contains(id) {
            e.stay.remove(id);
            e.go(
                id,
                "tagged, eligible for retention and needed to reach low_percent",
            );
        } else {
            e.stay(id, "tagged, eligible for retention but not needed");
        }
    }
    let context = || {
        format!(
            "disk {}% (high {}, low {}), dry run judged on {}% ({freed} B freed before),              eligible {:?}",
            disk.percent(),
            r.high,
            r.low,
            disk.less(freed).percent(),
            judged.eligible
        )
    };
    let got = retain::listed(real_step, "items");
    if got != removes {
        problems.push(format!(
            "tagged_images: the run removed {got:?} in that order, its rules give {removes:?}; {}",
            context()
        ));
    }
    let mut mismatches = 0;
    for (key, want) in [("items", &listed), ("may_also_remove", &maybe)] {
        let got = retain::listed(dry_step, key);
        if &got != want {
            mismatches += 1;
            problems.push(format!(
                "tagged_images: the dry run's {key} are {got:?}, its rules give {want:?}; {}",
                context()
            ));
        }
    }
    let note = format!(
        " tagged: {} eligible, {} must go ({} listed, {} maybe; {} kB freed before)",
        judged.eligible.len(),
        removes.len(),
        listed.len(),
        maybe.len(),
        freed / 1000
    );
    (problems, mismatches, note)
}

/// The oracle's verdict on world `w` between `before` and `after`, the runs having taken place
/// from `t0` to `t1` (Unix seconds). `disk`: the retention class's watched filesystem before
/// the runs, when its part is to be judged.
fn verdict(
    settings: &Settings,
    w: &world::World,
    (before, after): (&Detail, &Detail),
    (t0, t1): (f64, f64),
    disk: Option<retain::Disk>,
    dry: &serde_json::Value,
    real: &serde_json::Value,
) -> oracle::Verdict {
    let gates = settings.expected_gates(&w.live_names);
    let older = w.older_than_ms as f64 / 1000.0;
    let mut images = before.images.clone();
    let holders: BTreeMap<String, String> = images
        .iter()
        .flat_map(|i| i.tags.iter().map(|t| (t.clone(), i.id.clone())))
        .collect();
    for i in &mut images {
        i.dangling_since = w.dangling_since.get(&i.id).copied();
        i.superseded = w
            .seen_tags
            .get(&i.id)
            .into_iter()
            .flatten()
            .any(|t| holders.get(t).is_some_and(|holder| *holder != i.id));
    }
    let mut e = oracle::expect(
        &before.containers,
        &images,
        &before.build_cache,
        &before.volumes,
        settings.classes,
        Run {
            all_open: gates.values().all(|o| *o),
            window: Window {
                lo: t0 - older,
                hi: t1 - older,
            },
            rules: oracle::Rules::of_test_engine(),
        },
    );
    let (problems, mismatches, note) = match disk {
        Some(disk) if gates.values().all(|o| *o) => {
            retention_verdict(settings, w, (before, disk, t0 as i64), &mut e, dry, real)
        }
        _ => (Vec::new(), 0, String::new()),
    };
    let after_sets = kinds(after).map(|v| v.into_iter().collect::<BTreeSet<_>>());
    let [c, i, b, v] = &after_sets;
    let mut verdict = oracle::judge(
        &e,
        Inventories {
            before: kinds(before),
            after: [c, i, b, v],
        },
        dry,
        real,
        &gates,
    );
    verdict.problems.extend(problems);
    verdict.dry_run_mismatches += mismatches;
    verdict.note = note;
    verdict
}

fn run_world(seed: u64, scale: usize) -> Outcome {
    let started = std::time::Instant::now();
    let settings = Settings::from_seed(seed, scale);
    let _swarm = SWARM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = PrivateDaemon::start();
    let w = world::build(&mut d, &settings);
    let before = Detail::read(&d);
    let disk = w.retention.as_ref().map(|r| df(&r.disk));
    let config = settings.config(&w);
    let command = settings.command;

    let t0 = world::unix_now();
    let dry = d.prunegate(&config, &[command, "--dry-run", "--json"]);
    let between = Detail::read(&d);
    let real = d.prunegate(&config, &[command, "--json"]);
    let t1 = world::unix_now();
    let after = Detail::read(&d);

    let all_open = settings.expected_gates(&w.live_names).values().all(|o| *o);
    let mut verdict = verdict(
        &settings,
        &w,
        (&before, &after),
        (t0, t1),
        disk,
        &dry.json(),
        &real.json(),
    );
    if kinds(&between) != kinds(&before) {
        verdict
            .problems
            .push("the dry run changed what the daemon holds".into());
    }
    let want = if all_open { 0 } else { 10 };
    for (what, run) in [("dry run", &dry), ("run", &real)] {
        if run.code != want {
            verdict.problems.push(format!(
                "{what} exited {}, expected {want}: {}",
                run.code, run.stderr
            ));
        }
    }
    let late = t1 - w.ready > w.slack;
    let line =
        format!(
        "seed {seed:>4}: {:<118}{} objects {:>4} must go {:>4} removed {:>4} wrongful {} missed {} unsure {} \
         problems {}{}{} ({:.0} s)",
        settings.summary(),
        if late { " (runs outlasted the gap)" } else { "" },
        verdict.examined,
        verdict.must_go,
        verdict.removed,
        verdict.wrongful.len(),
        verdict.missed.len(),
        verdict.unsure,
        verdict.problems.len(),
        verdict.note,
        w.pulls,
        started.elapsed().as_secs_f64()
    );
    let judged_retention = all_open
        && engine().kind == Kind::Docker
        && settings
            .retention
            .as_ref()
            .is_some_and(|r| r.history == HistoryDraw::Seeded);
    Outcome {
        verdict,
        all_open,
        judged_retention,
        line,
    }
}

#[test]
fn randomized_worlds_lose_nothing() {
    let (seeds, scale, fixed) = seeds_and_scale();
    assert!(!seeds.is_empty(), "no seeds to run");
    let (mut worlds, mut open_worlds, mut examined, mut removed, mut must_go) = (0, 0, 0, 0, 0);
    let (mut wrongful, mut missed, mut unsure, mut problems) = (0, 0, 0, 0);
    let mut mismatches = 0;
    let (mut retention_worlds, mut retention_objects) = (0, 0);
    let mut failures = Vec::new();
    for &seed in &seeds {
        let replay = format!(
            "replay: PRUNEGATE_WORLD_SEEDS={seed} PRUNEGATE_WORLD_SCALE={scale} \
             cargo test --test worlds -- --nocapture"
        );
        let outcome = std::panic::catch_unwind(|| run_world(seed, scale)).unwrap_or_else(|_| {
            failures.push(format!(
                "seed {seed}: the world could not be built or run\n{replay}"
            ));
            Outcome {
                verdict: oracle::Verdict::default(),
                all_open: false,
                judged_retention: false,
                line: format!("seed {seed:>4}: FAILED to build or run"),
            }
        });
        println!("{}", outcome.line);
        let v = &outcome.verdict;
        worlds += 1;
        open_worlds += usize::from(outcome.all_open);
        if outcome.judged_retention {
            retention_worlds += 1;
            retention_objects += v.examined;
        }
        examined += v.examined;
        removed += v.removed;
        must_go += v.must_go;
        wrongful += v.wrongful.len();
        missed += v.missed.len();
        unsure += v.unsure;
        problems += v.problems.len() - v.dry_run_mismatches;
        mismatches += v.dry_run_mismatches;
        let found: Vec<&String> = v
            .wrongful
            .iter()
            .chain(&v.missed)
            .chain(&v.problems)
            .collect();
        if !found.is_empty() {
            let list: Vec<String> = found.iter().map(|f| format!("  {f}")).collect();
            failures.push(format!("seed {seed}:\n{}\n{replay}", list.join("\n")));
        }
    }
    println!(
        "totals: engine {}, worlds {worlds} (every gate open in {open_worlds}), objects examined \
         {examined}, must go {must_go}, removed {removed}, wrongful {wrongful}, missed {missed}, \
         dry-run mismatches {mismatches}, unsure {unsure}, other problems {problems}; \
         with the retention class judging on its history: worlds {retention_worlds}, objects \
         {retention_objects}",
        engine().name
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    if fixed {
        assert!(
            open_worlds > 0 && open_worlds < worlds,
            "the fixed seeds must include worlds with every gate open and with one closed"
        );
    }
}

#[test]
fn seeds_parse_as_lists_and_ranges() {
    assert_eq!(parse_seeds("3, 7-9,12"), vec![3, 7, 8, 9, 12]);
    assert_eq!(parse_seeds("5"), vec![5]);
}

#[test]
fn the_fixed_seeds_cover_every_gate() {
    use world::Toggle;
    // What the seeds draw: Podman, which has no swarm mode, runs them without their swarms.
    let s: Vec<Settings> = CI_SEEDS.iter().map(|&n| Settings::drawn(n, 1)).collect();
    let summaries: Vec<String> = s.iter().map(Settings::summary).collect();
    let covered = |what: &str, f: &dyn Fn(&Settings) -> bool| {
        assert!(
            s.iter().any(f),
            "no fixed seed has {what}:\n{}",
            summaries.join("\n")
        );
    };
    let c = |x: &Settings| x.classes;
    covered("every class on and no gate closed", &|x| {
        c(x).containers
            && c(x).images
            && c(x).build_cache
            && x.disk != Toggle::Closed
            && x.grace != Toggle::Closed
            && !x.ci_live
            && !x.pending_service
            && x.pattern == "^ci-"
    });
    covered("a class off", &|x| {
        !(c(x).containers && c(x).images && c(x).build_cache)
    });
    covered("the disk gate closed", &|x| {
        x.disk == Toggle::Closed && x.command == "run"
    });
    covered("the grace gate closed", &|x| x.grace == Toggle::Closed);
    covered("a live CI run", &|x| {
        x.ci_live && x.live_runs_enabled && x.pattern == "^ci-"
    });
    covered("a service that cannot converge", &|x| {
        x.pending_service && x.converging_enabled
    });
    covered("reclaim in a swarm", &|x| x.command == "reclaim" && x.swarm);
    let open = |x: &Settings| {
        x.disk != Toggle::Closed && x.grace != Toggle::Closed && !x.ci_live && !x.pending_service
    };
    covered(
        "the retention class with its history, every gate open",
        &|x| {
            open(x)
                && x.retention
                    .as_ref()
                    .is_some_and(|r| r.history == HistoryDraw::Seeded)
        },
    );
    covered(
        "the retention class after a build its history must hold",
        &|x| {
            open(x)
                && x.retention
                    .as_ref()
                    .is_some_and(|r| r.history == HistoryDraw::Seeded && r.build == Some(false))
        },
    );
    covered(
        "the retention class after a flood past the daemon's event buffer",
        &|x| {
            open(x)
                && x.retention.as_ref().is_some_and(|r| {
                    r.history == HistoryDraw::Seeded && r.uses == world::UsesDraw::Flood
                })
        },
    );
    covered("the retention class after a daemon restart", &|x| {
        open(x)
            && !x.swarm
            && x.retention
                .as_ref()
                .is_some_and(|r| r.history == HistoryDraw::Seeded && r.restart)
    });
    covered("the retention class with a gate closed", &|x| {
        x.retention.is_some() && !open(x)
    });
}

/// The oracle can fail: a blanket `docker system prune --all --volumes` on a world is caught
/// removing tagged images and volumes.
#[test]
fn the_oracle_catches_a_blanket_prune() {
    let settings = Settings::from_seed(1, 1);
    let mut d = PrivateDaemon::start();
    let w = world::build(&mut d, &settings);
    let before = Detail::read(&d);
    let t0 = world::unix_now();
    let dry = d.prunegate(&settings.config(&w), &["run", "--dry-run", "--json"]);
    if engine().kind == Kind::Podman {
        // The CLI's system prune ends in a build-cache prune, which Podman answers 404, and
        // Podman 4.3 refuses `image prune --all` ("dangling" filter given twice): the same
        // blanket removal, by hand. Podman 5.8 refuses to force-remove an image a running or
        // paused container uses (4.3 and 5.4 remove the container with it); a system prune
        // leaves those too, so its refusals are not this test's failure.
        d.docker(&["container", "prune", "--force"]);
        let images = d.docker(&["image", "ls", "--all", "--quiet"]);
        let mut rmi = vec!["rmi", "--force"];
        rmi.extend(images.split_whitespace());
        let _ = d.docker_output(&rmi);
        d.docker(&["volume", "prune", "--force"]);
    } else {
        d.docker(&["system", "prune", "--all", "--volumes", "--force"]);
    }
    let t1 = world::unix_now();
    let after = Detail::read(&d);
    let v = verdict(
        &settings,
        &w,
        (&before, &after),
        (t0, t1),
        None,
        &dry.json(),
        &serde_json::json!({}),
    );
    let wrongful = v.wrongful.join("\n");
    assert!(wrongful.contains(": tagged "), "{wrongful}");
    assert!(wrongful.contains(": a volume"), "{wrongful}");
    assert!(
        !v.problems.is_empty(),
        "the dry run did not predict a blanket prune"
    );
}

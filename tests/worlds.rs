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
use std::collections::BTreeSet;
use world::oracle::{self, Inventories, Run, Window};
use world::{Detail, Settings};

/// Chosen so that CI sees worlds with every gate open and every class enabled, with classes
/// switched off, with each gate closed, swarms, and `reclaim` (checked by
/// `the_fixed_seeds_cover_every_gate`).
const CI_SEEDS: &[u64] = &[1, 2, 4, 8, 16, 24, 34];

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

/// The oracle's verdict on world `w` between `before` and `after`, the runs having taken place
/// from `t0` to `t1` (Unix seconds).
fn verdict(
    settings: &Settings,
    w: &world::World,
    (before, after): (&Detail, &Detail),
    (t0, t1): (f64, f64),
    dry: &serde_json::Value,
    real: &serde_json::Value,
) -> oracle::Verdict {
    let gates = settings.expected_gates(&w.live_names);
    let older = w.older_than_ms as f64 / 1000.0;
    let mut images = before.images.clone();
    for i in &mut images {
        i.dangling_since = w.dangling_since.get(&i.id).copied();
    }
    let e = oracle::expect(
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
    let after_sets = kinds(after).map(|v| v.into_iter().collect::<BTreeSet<_>>());
    let [c, i, b, v] = &after_sets;
    oracle::judge(
        &e,
        Inventories {
            before: kinds(before),
            after: [c, i, b, v],
        },
        dry,
        real,
        &gates,
    )
}

fn run_world(seed: u64, scale: usize) -> Outcome {
    let started = std::time::Instant::now();
    let settings = Settings::from_seed(seed, scale);
    let _swarm = SWARM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let d = PrivateDaemon::start();
    let w = world::build(&d, &settings);
    let before = Detail::read(&d);
    let config = settings.config(w.older_than_ms);
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
         problems {} ({:.0} s)",
        settings.summary(),
        if late { " (runs outlasted the gap)" } else { "" },
        verdict.examined,
        verdict.must_go,
        verdict.removed,
        verdict.wrongful.len(),
        verdict.missed.len(),
        verdict.unsure,
        verdict.problems.len(),
        started.elapsed().as_secs_f64()
    );
    Outcome {
        verdict,
        all_open,
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
                line: format!("seed {seed:>4}: FAILED to build or run"),
            }
        });
        println!("{}", outcome.line);
        let v = &outcome.verdict;
        worlds += 1;
        open_worlds += usize::from(outcome.all_open);
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
         dry-run mismatches {mismatches}, unsure {unsure}, other problems {problems}",
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
}

/// The oracle can fail: a blanket `docker system prune --all --volumes` on a world is caught
/// removing tagged images and volumes.
#[test]
fn the_oracle_catches_a_blanket_prune() {
    let settings = Settings::from_seed(1, 1);
    let d = PrivateDaemon::start();
    let w = world::build(&d, &settings);
    let before = Detail::read(&d);
    let t0 = world::unix_now();
    let dry = d.prunegate(
        &settings.config(w.older_than_ms),
        &["run", "--dry-run", "--json"],
    );
    if engine().kind == Kind::Podman {
        // The CLI's system prune ends in a build-cache prune, which Podman answers 404, and
        // Podman 4.3 refuses `image prune --all` ("dangling" filter given twice): the same
        // blanket removal, by hand.
        d.docker(&["container", "prune", "--force"]);
        let images = d.docker(&["image", "ls", "--all", "--quiet"]);
        let mut rmi = vec!["rmi", "--force"];
        rmi.extend(images.split_whitespace());
        d.docker(&rmi);
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

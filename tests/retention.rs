//! The opt-in retention class (docs/retention.md) on a real private daemon: each protection
//! with and without, use learned from events between runs, a lost, corrupt or other daemon's
//! history, the watermarks, several tags, a swarm rollback target, a live CI run, a layer shared
//! with a dangling image the images step removes, and the class off. The watched disk is a small
//! tmpfs filled to a known level (`small_fs`), so the watermarks are the test's to set.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A run config: the disk gate and the class on `disk`, everything old enough at once
/// (`older_than = 0s`), state and audit log in the daemon's directory.
fn config(d: &PrivateDaemon, disk: &Path, retention: &str) -> String {
    format!(
        "[gates.disk]\npath = \"{}\"\nused_percent = 1\n[prune]\nolder_than = \"0s\"\n\
         [state]\ndir = \"{}\"\n[audit]\npath = \"{}\"\n[retention]\n{retention}\n",
        disk.display(),
        state_dir(d).display(),
        d.dir.path().join("audit.log").display()
    )
}

fn state_dir(d: &PrivateDaemon) -> PathBuf {
    d.dir.path().join("state")
}

fn history_path(d: &PrivateDaemon) -> PathBuf {
    state_dir(d).join("retention.json")
}

/// A report's step of `class`.
fn step(report: &Value, class: &str) -> Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["class"] == class)
        .cloned()
        .unwrap_or_else(|| panic!("no {class} step in {report}"))
}

/// The `tagged_images` step of a report.
fn tagged(report: &Value) -> Value {
    step(report, "tagged_images")
}

fn tagged_items(report: &Value) -> Vec<String> {
    items(&tagged(report))
}

/// A step's `items`: the ids it removed (or would).
fn items(step: &Value) -> Vec<String> {
    step["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The dry run's list is what the run removes, in its order: its `items`, then as many of its
/// `may_also_remove` (in order) as the safe classes' bytes did not come off the watched disk —
/// here a tmpfs, which they never free, so with a prediction of freed bytes the run takes
/// some of those too.
fn assert_dry_run_matches(dry: &Value, removed: &[String], context: &str) {
    let step = tagged(dry);
    let listed = tagged_items(dry);
    let maybe: Vec<String> = step["may_also_remove"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|o| o["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    let all: Vec<String> = listed.iter().chain(&maybe).cloned().collect();
    assert!(
        removed.starts_with(&listed) && all.starts_with(removed),
        "dry run {listed:?} then maybe {maybe:?}; removed {removed:?}\n{context}"
    );
}

/// The class removed nothing in `report`, and said why: `says`.
fn assert_skipped(report: &Value, says: &str) {
    let step = tagged(report);
    assert_eq!(step["status"], "skipped", "{says}: {step}");
    assert!(
        step["reason"].as_str().unwrap_or_default().contains(says),
        "{says}: {step}"
    );
}

/// Why the class kept the image with `tag`.
/// The reasons of the history gaps a report lists (none when it lists none).
fn gap_reasons(report: &Value) -> Vec<String> {
    report["history_gaps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["why"].as_str().map(String::from))
        .collect()
}

fn why_kept(report: &Value, tag: &str) -> String {
    tagged(report)["kept"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["tags"].as_array().unwrap().iter().any(|t| t == tag))
        .unwrap_or_else(|| panic!("{tag} not among the kept: {}", tagged(report)))["why"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every tag on the daemon, sorted.
fn tags(d: &PrivateDaemon) -> Vec<String> {
    tags_in(&d.api("/images/json"))
}

/// Every tag on the daemon, or `None` when the listing fails. A list taken while another client
/// deletes images can fail on the containerd store (docker 28.5 answered 404 "NotFound: content
/// digest …: not found" for an image deleted mid-listing); a watcher polling during a removal
/// step takes that as "look again", not as an error.
fn tags_now(d: &PrivateDaemon) -> Option<Vec<String>> {
    match d.try_api("GET", "/images/json") {
        Ok((200, body)) => serde_json::from_slice(&body).ok().map(|v| tags_in(&v)),
        _ => None,
    }
}

fn tags_in(images: &serde_json::Value) -> Vec<String> {
    let mut t: Vec<String> = images
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["RepoTags"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .filter(|t| t != "<none>:<none>")
        .map(|t| t.trim_start_matches("localhost/").to_string())
        .collect();
    t.sort();
    t
}

/// A moment long past (2020-09-13) for histories the tests write by hand.
const LONG_AGO: i64 = 1_600_000_000;

/// Rewrites the history so that every image was first seen `age_secs` ago (the test cannot
/// wait a month; the file is the operator-visible state the class reads).
fn age_history(d: &PrivateDaemon, age_secs: i64) {
    let path = history_path(d);
    let mut h: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (_, r) in h["images"].as_object_mut().unwrap() {
        let t = r["first_seen"].as_i64().unwrap() - age_secs;
        r["first_seen"] = t.into();
    }
    // The history as a whole began that long ago too (a first sight before the history's
    // start is a contradiction the class refuses); it is up to date as it was.
    let started = h["started_at"].as_i64().unwrap() - age_secs;
    h["started_at"] = started.into();
    std::fs::write(&path, serde_json::to_string(&h).unwrap()).unwrap();
}

#[test]
fn each_protection_keeps_its_image_and_cold_images_go_by_every_tag() {
    let mut d = PrivateDaemon::start();
    let full = d.small_fs(8, 95);
    d.build("pg-base:1", "", "base one");
    settle();
    d.build("pg-base:2", "", "base two");
    let app1 = d.build_from("pg-app:1", "pg-base:2", "app one");
    settle();
    d.build_from("pg-app:2", "pg-base:1", "app two");
    d.build("pg-keep:1", "", "keep one");
    settle();
    d.build("pg-x:1", "", "x one");
    d.docker(&["tag", "pg-x:1", "pg-keep:old"]);
    settle();
    d.build("pg-x:2", "", "x two");
    let used = d.build("pg-used:1", "", "used one");
    settle();
    d.build("pg-used:2", "", "used two");
    // Running: a stopped container would go in the containers step of the same run.
    d.run_detached("user", "pg-used:1", &[]);
    let multi = d.build("pg-multi:1", "", "multi");
    d.docker(&["tag", "pg-multi:1", "pg-other:1"]);
    settle();
    d.build("pg-multi:2", "", "multi two");
    d.build("pg-other:2", "", "other two");
    let all_tags = tags(&d);
    let on = "enabled = true\nmin_idle = \"0s\"\nlow_percent = 0\nkeep_newest = 1\nkeep = [\"^pg-keep:\"]";

    // The class off (the default): no tagged_images step, nothing tagged removed.
    let off = d.prunegate(&config(&d, &full, ""), &["run", "--json"]);
    off.expect(0);
    assert!(
        off.json()["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["class"] != "tagged_images"),
        "{}",
        off.stdout
    );
    assert_eq!(tags(&d), all_tags);
    assert!(!history_path(&d).exists(), "the class off keeps no history");

    // First run with the class: no history yet, so nothing goes; the history is started.
    let first = d.prunegate(&config(&d, &full, on), &["run", "--json"]);
    first.expect(0);
    assert_skipped(&first.json(), "no use history yet");
    assert_eq!(tags(&d), all_tags);
    assert!(history_path(&d).exists());

    // Second run: the dry run lists exactly what the run removes, in its order.
    let dry = d.prunegate(&config(&d, &full, on), &["run", "--dry-run", "--json"]);
    dry.expect(0);
    let run = d.prunegate(&config(&d, &full, on), &["run", "--json"]);
    run.expect(0);
    let report = run.json();
    let removed = tagged_items(&report);
    assert_dry_run_matches(&dry.json(), &removed, &dry.stdout);
    let mut want = vec![app1.clone(), multi.clone()];
    want.sort();
    let mut got = removed.clone();
    got.sort();
    assert_eq!(got, want, "{}", run.stdout);
    // The bytes each image frees, as the dry run projected them.
    let dry_objects = tagged(&dry.json())["objects"].clone();
    let dry_maybe = tagged(&dry.json())["may_also_remove"].clone();
    for o in tagged(&report)["objects"].as_array().unwrap() {
        let predicted = dry_objects
            .as_array()
            .into_iter()
            .chain(dry_maybe.as_array())
            .flatten()
            .find(|p| p["id"] == o["id"])
            .unwrap();
        assert_eq!(predicted["size_bytes"], o["size_bytes"], "{o}");
    }
    let left = tags(&d);
    for gone in ["pg-app:1", "pg-multi:1", "pg-other:1"] {
        assert!(!left.contains(&gone.to_string()), "{gone} left: {left:?}");
    }
    // Each protection said.
    assert!(why_kept(&report, "pg-base:1").contains("a base of"));
    assert!(why_kept(&report, "pg-keep:1").contains("matches retention.keep"));
    assert!(why_kept(&report, "pg-x:1").contains("pg-keep:old matches retention.keep"));
    assert!(why_kept(&report, "pg-used:1").contains("used by container user"));
    assert!(why_kept(&report, "pg-app:2").contains("newest #1 of pg-app"));
    assert!(why_kept(&report, "pg-base:2").contains("newest #1 of pg-base"));
    // The audit log: tags, digests, last use, first seen, why eligible.
    let audit = std::fs::read_to_string(d.dir.path().join("audit.log")).unwrap();
    let line: Value = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["class"] == "tagged_images" && l["id"] == multi.as_str())
        .unwrap_or_else(|| panic!("no audit line for {multi}:\n{audit}"));
    let text = line.to_string();
    for field in ["pg-multi:1", "pg-other:1", "first_seen", "last_used", "why"] {
        assert!(text.contains(field), "{field} not in {text}");
    }

    // Without the protections: the container gone and no keep pattern, those images go too;
    // the base of an image that stays still stays.
    d.docker(&["rm", "-f", "user"]);
    let bare = "enabled = true\nmin_idle = \"0s\"\nlow_percent = 0\nkeep_newest = 1";
    let r = d.prunegate(&config(&d, &full, bare), &["run", "--json"]);
    r.expect(0);
    let removed = tagged_items(&r.json());
    assert!(removed.contains(&used), "{}", r.stdout);
    let left = tags(&d);
    assert!(!left.contains(&"pg-keep:1".to_string()), "{left:?}");
    assert!(left.contains(&"pg-base:1".to_string()), "{left:?}");
    assert!(left.contains(&"pg-app:2".to_string()), "{left:?}");
}

#[test]
fn use_is_learned_between_runs_and_an_unknown_history_removes_nothing() {
    let mut d = PrivateDaemon::start();
    let full = d.small_fs(8, 95);
    let a1 = d.build("pg-a:1", "", "a one");
    let a2 = d.build("pg-a:2", "", "a two");
    settle();
    d.build("pg-a:3", "", "a three");
    let on = "enabled = true\nmin_idle = \"1h\"\nlow_percent = 0\nkeep_newest = 1";
    d.prunegate(&config(&d, &full, on), &["run"]).expect(0);
    // A month passes; then pg-a:1 is used by a short-lived container, gone before the run.
    age_history(&d, 30 * 86_400);
    // Created, run and removed (Podman's compat API never answers `docker run --rm`'s attach).
    d.exited("short-lived", "pg-a:1");
    d.docker(&["rm", "short-lived"]);
    let r = d.prunegate(&config(&d, &full, on), &["run", "--json"]);
    r.expect(0);
    assert_eq!(
        tagged_items(&r.json()),
        std::slice::from_ref(&a2),
        "{}",
        r.stdout
    );
    assert!(
        why_kept(&r.json(), "pg-a:1").contains("within retention.min_idle"),
        "{}",
        r.stdout
    );
    let h: Value =
        serde_json::from_str(&std::fs::read_to_string(history_path(&d)).unwrap()).unwrap();
    assert!(h["images"][&a1]["last_used"].is_i64(), "{h}");

    // A live CI run (a compose project named ci-…): nothing at all, whatever the history says.
    age_history(&d, 30 * 86_400);
    d.build("pg-a:4", "", "a four");
    d.run_detached(
        "ci-job",
        "pg-a:4",
        &["--label", "com.docker.compose.project=ci-17"],
    );
    let before = tags(&d);
    let r = d.prunegate(&config(&d, &full, on), &["run", "--json"]);
    r.expect(10);
    assert_eq!(gate(&r.json(), "live_runs")["open"], false);
    assert_eq!(tags(&d), before);
    d.docker(&["rm", "-f", "ci-job"]);

    // Lost, corrupt, or another daemon's history: nothing goes, and the run says why.
    let cases: [(&str, Option<&str>); 3] = [
        ("no use history yet", None),
        ("is unreadable", Some("{\"daemon_id\": ")),
        (
            "was of another daemon",
            Some(r#"{"daemon_id":"ANOTHER:DAEMON","updated_at":1,"images":{}}"#),
        ),
    ];
    for (says, content) in cases {
        match content {
            None => std::fs::remove_file(history_path(&d)).unwrap(),
            Some(c) => std::fs::write(history_path(&d), c).unwrap(),
        }
        let before = tags(&d);
        let r = d.prunegate(&config(&d, &full, on), &["run", "--json"]);
        r.expect(0);
        assert_skipped(&r.json(), says);
        assert_eq!(tags(&d), before, "{says}: nothing removed");
        // The history is started afresh: this daemon's, with every image first seen now.
        let h: Value =
            serde_json::from_str(&std::fs::read_to_string(history_path(&d)).unwrap()).unwrap();
        assert_ne!(h["daemon_id"], "ANOTHER:DAEMON");
        assert!(h["images"].as_object().unwrap().len() >= 3, "{h}");
    }
}

#[test]
fn the_watermarks_bound_what_goes_least_recently_used_first() {
    let mut d = PrivateDaemon::start();
    // 64 MB at 95%; each image frees about 3 MB (its own random content): from 95% to the
    // low watermark of 88% takes some of the four images, not all.
    let full = d.small_fs(64, 95);
    let ids: Vec<String> = (1..=4)
        .map(|n| {
            let content: String = (0..3_000_000).map(|_| fastrand::alphanumeric()).collect();
            d.build(&format!("pg-w:{n}"), "", &content)
        })
        .collect();
    let on = |high: u8| {
        format!("enabled = true\nmin_idle = \"0s\"\nhigh_percent = {high}\nlow_percent = 88\nkeep_newest = 0")
    };
    // The builds' tag events (each a use) in seconds before the history begins: the order the
    // test writes below is then the only use the runs know.
    settle();
    d.prunegate(&config(&d, &full, &on(90)), &["run"]).expect(0);
    // Use order: pg-w:3 least recently, then 1, 4, 2.
    let path = history_path(&d);
    let mut h: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (i, t) in [(2, 1_000), (0, 2_000), (3, 3_000), (1, 4_000)] {
        h["images"][&ids[i]]["last_used"] = (LONG_AGO + t as i64).into();
        h["images"][&ids[i]]["first_seen"] = LONG_AGO.into();
    }
    h["started_at"] = LONG_AGO.into();
    std::fs::write(&path, h.to_string()).unwrap();

    // Below the high watermark: nothing.
    let r = d.prunegate(&config(&d, &full, &on(99)), &["run", "--json"]);
    r.expect(0);
    assert_skipped(&r.json(), "below retention.high_percent (99%)");

    let dry = d.prunegate(&config(&d, &full, &on(90)), &["run", "--dry-run", "--json"]);
    let r = d.prunegate(&config(&d, &full, &on(90)), &["run", "--json"]);
    r.expect(0);
    let removed = tagged_items(&r.json());
    assert_dry_run_matches(&dry.json(), &removed, &dry.stdout);
    let lru = [&ids[2], &ids[0], &ids[3], &ids[1]];
    assert!(
        !removed.is_empty() && removed.len() < 4,
        "some, not all: {}",
        r.stdout
    );
    for (n, id) in removed.iter().enumerate() {
        assert_eq!(id, lru[n], "least recently used first: {}", r.stdout);
    }
    // Stopped at the first image that brings the projection to the low watermark.
    let reason = tagged(&r.json())["reason"].as_str().unwrap().to_string();
    let projected: u8 = reason
        .split("projected ")
        .nth(1)
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(projected <= 88, "{reason}");
    let next = lru[removed.len()];
    let next_tag = format!("pg-w:{}", 1 + ids.iter().position(|i| i == next).unwrap());
    assert!(
        why_kept(&r.json(), &next_tag).contains("not needed"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_swarm_services_rollback_target_stays() {
    let _swarm = SWARM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = PrivateDaemon::start();
    let full = d.small_fs(8, 95);
    d.build("pg-svc:1", "", "svc one");
    d.build("pg-svc:2", "", "svc two");
    let cold = d.build("pg-cold:1", "", "cold");
    d.swarm_init();
    d.service("web", &[], "pg-svc:1");
    d.docker(&[
        "service",
        "update",
        "--detach=false",
        "--no-resolve-image",
        "--image",
        "pg-svc:2",
        "web",
    ]);
    let on = "enabled = true\nmin_idle = \"0s\"\nlow_percent = 0\nkeep_newest = 0";
    d.prunegate(&config(&d, &full, on), &["run"]).expect(0);
    let r = d.prunegate(&config(&d, &full, on), &["run", "--json"]);
    r.expect(0);
    let report = r.json();
    // The old task's container went in the containers step: only the spec keeps pg-svc:1.
    assert_eq!(tagged_items(&report), [cold], "{}", r.stdout);
    assert!(
        why_kept(&report, "pg-svc:1").contains("rollback target"),
        "{}",
        r.stdout
    );
    assert!(
        why_kept(&report, "pg-svc:2").contains("web"),
        "{}",
        r.stdout
    );
}

/// Each removal is a destructive call of its own: the activity gates are re-checked before every
/// image after the first. A CI run that starts while the step works stops it there: the rest
/// stay, the report lists exactly what went, and the run ends skipped by that gate.
#[test]
fn a_ci_run_starting_during_the_step_stops_it_before_the_next_image() {
    let mut d = PrivateDaemon::start();
    let full = d.small_fs(8, 95);
    let n = 60;
    let layers: Vec<Vec<u8>> = (0..n)
        .map(|i| layer_tar(&[("data.txt", format!("image {i}\n").as_bytes(), 0o644)]))
        .collect();
    let images: Vec<TarImage> = (0..n)
        .map(|i| TarImage {
            created: "2000-01-01T00:00:00Z".into(),
            tags: vec![format!("pg-many{i}:1")],
            layers: vec![i],
            label: format!("many-{i}"),
        })
        .collect();
    let tarball = d.dir.path().join("many.tar");
    std::fs::write(&tarball, image_tarball(&layers, &images)).unwrap();
    d.docker(&["load", "-q", "-i", tarball.to_str().unwrap()]);
    d.build("pg-ci:1", "", "ci");
    let on =
        "enabled = true\nmin_idle = \"0s\"\nlow_percent = 0\nkeep_newest = 0\nkeep = [\"^pg-ci:\"]";
    d.prunegate(&config(&d, &full, on), &["run"]).expect(0);
    let before = tags(&d);

    // As soon as the first image is gone, a CI run starts.
    let run = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            d.wait_for("the first tagged image to go", || {
                tags_now(&d).is_some_and(|t| t.len() < before.len())
            });
            d.run_detached(
                "ci-run",
                "pg-ci:1",
                &["--label", "com.docker.compose.project=ci-5"],
            );
        });
        let run = d.prunegate(&config(&d, &full, on), &["run", "--json"]);
        watcher.join().unwrap();
        run
    });
    run.expect(10);
    let report = run.json();
    assert_eq!(report["stopped_by"]["name"], "live_runs", "{}", run.stdout);
    let step = tagged(&report);
    let removed = tagged_items(&report);
    assert!(
        !removed.is_empty() && removed.len() < n,
        "some went, the rest stayed: {step}"
    );
    assert!(
        step["reason"]
            .as_str()
            .unwrap()
            .contains("more not removed: gate live_runs closed"),
        "{step}"
    );
    // The report lists exactly what the daemon lost.
    let after = tags(&d);
    assert_eq!(before.len() - after.len(), removed.len(), "{step}");
}

/// A tagged image sharing a layer with a dangling image the images step removes frees that
/// layer too once the dangling image is gone: the real step, reading `/system/df` after the
/// safe classes, sees it larger than the dry run did. The dry run still lists what the run
/// removes: it counted the shared layer in the dangling image's size, as freed by the images
/// step before the class, so the run never needs fewer images than listed — only fewer of
/// `may_also_remove` (docs/retention.md, "The dry run").
#[test]
fn an_image_sharing_a_layer_with_a_pruned_dangling_image_takes_no_fewer_than_listed() {
    let mut d = PrivateDaemon::start();
    let full = d.small_fs(16, 99);
    let mut rng = fastrand::Rng::with_seed(13);
    let mut bytes = |kb: usize| -> Vec<u8> { (0..kb * 1024).map(|_| rng.u8(..)).collect() };
    // Layers: 0 shared (300 kB), 1 the tagged image's own, 2 the dangling one's, 3 the kept
    // image's, 4.. the cold images'.
    let mut layers: Vec<Vec<u8>> = [300, 50, 50, 10]
        .iter()
        .enumerate()
        .map(|(i, kb)| layer_tar(&[(&format!("l{i}.bin"), &bytes(*kb), 0o644)]))
        .collect();
    let cold = 8;
    for i in 0..cold {
        layers.push(layer_tar(&[(&format!("c{i}.bin"), &bytes(300), 0o644)]));
    }
    let image = |tag: &str, layers: Vec<usize>| TarImage {
        created: "2000-01-01T00:00:00Z".into(),
        tags: vec![tag.to_string()],
        layers,
        label: tag.to_string(),
    };
    let mut images = vec![
        image("pg-share:1", vec![0, 1]),
        image("pg-gone:1", vec![0, 2]),
        image("pg-keep:1", vec![3]),
    ];
    images.extend((0..cold).map(|i| image(&format!("pg-cold{i}:1"), vec![4 + i])));
    let tarball = d.dir.path().join("shared.tar");
    std::fs::write(&tarball, image_tarball(&layers, &images)).unwrap();
    d.docker(&["load", "-q", "-i", tarball.to_str().unwrap()]);
    let share = d.image_id("pg-share:1");
    let gone = d.image_id("pg-gone:1");
    // The load's events (each a use) in seconds before the history begins.
    settle();
    let on = "enabled = true\nmin_idle = \"0s\"\nhigh_percent = 95\nlow_percent = 90\n\
              keep_newest = 0\nkeep = [\"^pg-keep:\"]";
    d.prunegate(&config(&d, &full, on), &["run"]).expect(0);
    // Least recently used first: pg-share:1, then the cold images in turn.
    let path = history_path(&d);
    let mut h: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut order = vec![share.clone()];
    order.extend((0..cold).map(|i| d.image_id(&format!("pg-cold{i}:1"))));
    for (n, i) in order.iter().enumerate() {
        h["images"][i]["last_used"] = (LONG_AGO + 1_000 + n as i64).into();
        h["images"][i]["first_seen"] = LONG_AGO.into();
    }
    h["started_at"] = LONG_AGO.into();
    std::fs::write(&path, h.to_string()).unwrap();
    // pg-gone:1's tag moves away: its image is dangling, sharing layer 0 with pg-share:1.
    d.docker(&["tag", "pg-keep:1", "pg-gone:1"]);
    // On the containerd store its dangling record is made now: older than a 0s cut-off in a
    // second.
    settle();

    let dry = d.prunegate(&config(&d, &full, on), &["run", "--dry-run", "--json"]);
    dry.expect(0);
    let r = d.prunegate(&config(&d, &full, on), &["run", "--json"]);
    r.expect(0);
    let (dry, run) = (dry.json(), r.json());
    assert!(
        items(&step(&dry, "images")).contains(&gone),
        "the images step lists the dangling image: {dry}"
    );
    assert!(
        items(&step(&run, "images")).contains(&gone),
        "and removes it: {}",
        r.stdout
    );
    let listed = tagged_items(&dry);
    assert_eq!(
        listed.first(),
        Some(&share),
        "pg-share:1 listed first: {dry}"
    );
    let removed = tagged_items(&run);
    assert_dry_run_matches(&dry, &removed, &r.stdout);
    // The case is the one described: pg-share:1 freed more in the run than the dry run said.
    let size = |s: Value| s["objects"][0]["size_bytes"].as_u64().unwrap();
    let (before, after) = (size(tagged(&dry)), size(tagged(&run)));
    assert!(
        after > before + 200 * 1024,
        "pg-share:1 frees its shared layer once the dangling image is gone: {before} then {after}\n{}",
        r.stdout
    );
}

/// Moves every time in the history `secs` into the past — its start, each first sight and last
/// use, its gaps — as if that long had passed with nothing used; the stretch up to its last
/// update stays observed (that is now).
fn age_all(d: &PrivateDaemon, secs: i64) {
    let path = history_path(d);
    let mut h: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let back = |v: &mut Value| {
        if let Some(t) = v.as_i64() {
            *v = (t - secs).into();
        }
    };
    back(&mut h["started_at"]);
    for (_, u) in h["images"].as_object_mut().unwrap() {
        back(&mut u["first_seen"]);
        back(&mut u["last_used"]);
    }
    std::fs::write(&path, h.to_string()).unwrap();
}

/// The retention config of the history tests: everything idle for 10 minutes may go, down to
/// an empty disk, none kept for being newest.
const LRU_ONLY: &str = "enabled = true\nmin_idle = \"10m\"\nlow_percent = 0\nkeep_newest = 0";

/// A warm image used once by a short-lived container (created, run, removed).
fn use_briefly(d: &PrivateDaemon, image: &str) {
    let name = format!("brief-{}", unique());
    d.exited(&name, image);
    d.docker(&["rm", &name]);
}

/// Issue 21's flood: an image used a minute before the run, then 200 short-lived containers of
/// another — past the daemon's buffer of 256 events. Replayed by the run alone, that is a gap:
/// nothing it covered may go, and the report says so (before, the warm image was removed).
/// With `prunegate record` running, the use is recorded as it happens: the warm image stays and
/// the cold one goes.
#[test]
fn a_use_before_a_flood_of_short_containers_is_never_lost() {
    let mut d = PrivateDaemon::start();
    let full = d.small_fs(8, 95);
    d.build("pg-warm:1", "", "warm");
    let cold = d.build("pg-cold:1", "", "cold");
    d.build("pg-churn:1", "", "churn");
    settle();
    let config = config(&d, &full, LRU_ONLY);
    d.prunegate(&config, &["run"]).expect(0);
    age_all(&d, 40 * 86_400);
    use_briefly(&d, "pg-warm:1");
    d.flood("pg-churn:1", 200);
    let r = d.prunegate(&config, &["run", "--json"]);
    r.expect(0);
    let report = r.json();
    assert!(
        gap_reasons(&report)
            .iter()
            .any(|w| w.contains("the daemon keeps only 256")),
        "the truncated replay is a gap: {}",
        r.stdout
    );
    assert!(tags(&d).contains(&"pg-warm:1".to_string()), "{}", r.stdout);
    let text = d.prunegate(&config, &["run", "--dry-run"]);
    assert!(
        !tagged_items(&report).contains(&d.image_id("pg-warm:1")),
        "{}",
        text.stdout
    );
    let audit = std::fs::read_to_string(d.dir.path().join("audit.log")).unwrap();
    assert!(audit.contains("\"history_gap\""), "{audit}");

    // With the recorder.
    age_all(&d, 40 * 86_400);
    let log = d.dir.path().join("record.log");
    let mut recorder = d
        .prunegate_cmd(&config, &["record"])
        .env("PRUNEGATE_LOG", "prunegate=info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    d.wait_for("the recorder to follow the events", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("following the daemon's events")
    });
    use_briefly(&d, "pg-warm:1");
    d.flood("pg-churn:1", 200);
    settle();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &recorder.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = recorder.wait().unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "the recorder: {status}\n{said}");
    let r = d.prunegate(&config, &["run", "--json"]);
    r.expect(0);
    let report = r.json();
    assert_eq!(
        tagged_items(&report),
        vec![cold],
        "the cold image goes, the warm one stays: {}\nrecorder:\n{said}",
        r.stdout
    );
    assert!(
        why_kept(&report, "pg-warm:1").contains("within retention.min_idle"),
        "{}",
        r.stdout
    );
}

/// A daemon restart empties its event buffer: a use before it cannot be replayed. The
/// stretch is a gap, the warm image stays (before, it was removed).
#[test]
fn a_daemon_restart_between_a_use_and_the_run_is_a_gap() {
    let mut d = PrivateDaemon::start();
    let full = d.small_fs(8, 95);
    d.build("pg-warm:1", "", "warm");
    d.build("pg-cold:1", "", "cold");
    settle();
    let config = config(&d, &full, LRU_ONLY);
    d.prunegate(&config, &["run"]).expect(0);
    age_all(&d, 40 * 86_400);
    use_briefly(&d, "pg-warm:1");
    d.kill_and_restart();
    let r = d.prunegate(&config, &["run", "--json"]);
    r.expect(0);
    let report = r.json();
    assert!(
        gap_reasons(&report).iter().any(|w| w.contains("restarted")),
        "{}",
        r.stdout
    );
    assert!(tags(&d).contains(&"pg-warm:1".to_string()), "{}", r.stdout);
    let text = d.prunegate(&config, &["check"]);
    assert!(text.code == 0 || text.code == 10, "{}", text.stderr);
}

/// Issue 21's builder stage: `FROM pg-builder:1 AS build` in a multi-stage build makes no
/// container and leaves no layer in the result, and no engine names it (checked on Docker
/// 20.10 and 28.5, both stores): before, the builder was removed as idle however often CI
/// built with it. A build is a moment at which every image counts as used: the class removes
/// nothing and the report says why. Once `keep` names the builder and
/// `retention.build_bases_kept` says so, the builder stays by `keep` and the cold image goes.
#[test]
fn a_build_stage_holds_every_image_until_keep_names_the_bases() {
    let mut d = PrivateDaemon::start();
    let full = d.small_fs(8, 95);
    d.build("pg-builder:1", "", "builder");
    let cold = d.build("pg-cold:1", "", "cold");
    settle();
    let lru = config(&d, &full, LRU_ONLY);
    d.prunegate(&lru, &["run"]).expect(0);
    age_all(&d, 40 * 86_400);
    // The control: on the aged history both are eligible.
    let dry = d.prunegate(&lru, &["run", "--dry-run", "--json"]);
    let eligible = tagged_items(&dry.json());
    assert!(
        eligible.contains(&cold) && eligible.contains(&d.image_id("pg-builder:1")),
        "{}",
        dry.stdout
    );
    // In a later second than the history's start (a build in that second is taken as before
    // it: every image counts from then anyway).
    settle();
    d.build_with_stage("pg-app:1", "pg-builder:1");
    let before = tags(&d);
    let r = d.prunegate(&lru, &["run", "--json"]);
    r.expect(0);
    let report = r.json();
    assert!(
        gap_reasons(&report)
            .iter()
            .any(|w| w.contains("a build ran at")),
        "the build is a gap: {}",
        r.stdout
    );
    assert!(tagged_items(&report).is_empty(), "{}", r.stdout);
    assert_eq!(tags(&d), before, "nothing removed: {}", r.stdout);
    assert!(
        why_kept(&report, "pg-builder:1").contains("within retention.min_idle"),
        "{}",
        r.stdout
    );
    // The next run without another build: the build was accounted for once.
    let again = d.prunegate(&lru, &["run", "--json"]);
    assert!(
        again.json()["history_gaps"]
            .as_array()
            .is_none_or(|g| g.is_empty()),
        "{}",
        again.stdout
    );

    // The operator names the builder and says every build base is named.
    age_all(&d, 40 * 86_400);
    let named = config(
        &d,
        &full,
        &format!("{LRU_ONLY}\nkeep = [\"^pg-builder:\"]\nbuild_bases_kept = true"),
    );
    d.build_with_stage("pg-app:2", "pg-builder:1");
    let r = d.prunegate(&named, &["run", "--json"]);
    r.expect(0);
    let report = r.json();
    assert!(
        report["history_gaps"]
            .as_array()
            .is_none_or(|g| g.is_empty()),
        "{}",
        r.stdout
    );
    assert!(tagged_items(&report).contains(&cold), "{}", r.stdout);
    assert!(
        tags(&d).contains(&"pg-builder:1".to_string()),
        "{}",
        r.stdout
    );
    assert!(
        why_kept(&report, "pg-builder:1").contains("keep"),
        "{}",
        r.stdout
    );
}

/// `first_seen: 0` made an image first seen seconds before eligible; a history updated in the
/// future (a clock stepped back an hour) read as old. Each: the class removes nothing, says
/// why, and starts the history afresh — a cold image that was eligible on the sane history
/// included.
#[test]
fn a_history_that_contradicts_itself_or_the_clock_removes_nothing() {
    let mut d = PrivateDaemon::start();
    let full = d.small_fs(8, 95);
    let cold = d.build("pg-cold:1", "", "cold");
    d.build("pg-other:1", "", "other");
    settle();
    let config = config(&d, &full, LRU_ONLY);
    d.prunegate(&config, &["run"]).expect(0);
    age_all(&d, 40 * 86_400);
    // The control: on the sane history the cold image is eligible.
    let dry = d.prunegate(&config, &["run", "--dry-run", "--json"]);
    assert!(tagged_items(&dry.json()).contains(&cold), "{}", dry.stdout);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    type Edit = fn(&mut Value, i64, &str);
    let cases: [(&str, Edit); 2] = [
        ("before the history began", |h, _, id| {
            h["images"][id]["first_seen"] = 0.into();
        }),
        ("the clock went backwards", |h, now, _| {
            h["updated_at"] = (now + 3600).into();
        }),
    ];
    for (says, edit) in cases {
        let path = history_path(&d);
        let mut h: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut h, now(), &cold);
        std::fs::write(&path, h.to_string()).unwrap();
        let before = tags(&d);
        let r = d.prunegate(&config, &["run", "--json"]);
        r.expect(0);
        assert_skipped(&r.json(), "cannot be believed");
        assert_skipped(&r.json(), says);
        assert_eq!(tags(&d), before, "{says}: nothing removed");
        let h: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            h["started_at"].as_i64().unwrap() >= now() - 60,
            "afresh: {h}"
        );
        assert!(
            h["gaps"].as_array().is_some_and(|g| !g.is_empty()),
            "the repair is a gap: {h}"
        );
        age_all(&d, 40 * 86_400);
    }
}

/// The engine refuses the final `DELETE` of a multi-tag image after its other tags were taken
/// off (a container made meanwhile; here the relay answers 409): every tag is put back, and
/// the step says which (before, the image was left stripped of them).
#[test]
fn a_refused_final_delete_puts_the_tags_back() {
    let mut d = PrivateDaemon::start();
    let full = d.small_fs(8, 95);
    let multi = d.build("pg-multi:1", "", "multi");
    d.docker(&["tag", "pg-multi:1", "pg-multi:2"]);
    d.docker(&["tag", "pg-multi:1", "pg-multi:3"]);
    settle();
    let config = config(&d, &full, LRU_ONLY);
    d.prunegate(&config, &["run"]).expect(0);
    age_all(&d, 40 * 86_400);
    let by_id = format!("/images/{multi}");
    let relay = Relay::start(d.sock.clone(), move |method, path| {
        if method == "DELETE" && path.starts_with(&by_id) {
            Reply::With(
                409,
                br#"{"message":"conflict: unable to delete (must be forced) - image is being used by stopped container 0123456789ab"}"#
                    .to_vec(),
            )
        } else {
            Reply::Pass
        }
    });
    let r = Run::from(
        d.prunegate_cmd_at(&relay.host, &config, &["run", "--json"])
            .output()
            .unwrap(),
    );
    r.expect(0);
    let step = tagged(&r.json());
    let reason = step["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("tags put back: pg-multi:"), "{reason}");
    let left = tags(&d);
    for t in ["pg-multi:1", "pg-multi:2", "pg-multi:3"] {
        assert!(
            left.contains(&t.to_string()),
            "{t} lost: {left:?}\n{reason}"
        );
    }
    assert!(
        relay.seen().iter().any(|s| s.starts_with("POST /images/")),
        "{:?}",
        relay.seen()
    );
}

/// An image id names its content, so its layers never change: the class inspects each tagged
/// image once, then remembers its layers (`state.dir/layers.json`). A run with the cache makes
/// exactly one request fewer per tagged image than the same run without it.
#[test]
fn layers_are_read_once_per_image() {
    let mut d = PrivateDaemon::start();
    let full = d.small_fs(8, 95);
    let n = 4;
    for i in 0..n {
        d.build(&format!("pg-l{i}:1"), "", &format!("layers {i}"));
    }
    settle();
    let config = config(&d, &full, "enabled = true");
    // The first run starts the history (the class removes nothing, reads nothing more); the
    // second reads every image's layers and remembers them.
    d.prunegate(&config, &["run"]).expect(0);
    d.prunegate(&config, &["run"]).expect(0);
    let calls = |d: &PrivateDaemon| {
        let r = d.prunegate(&config, &["run", "--json"]);
        r.expect(0);
        r.json()["api_calls"].as_u64().unwrap()
    };
    let cached = calls(&d);
    let layers = state_dir(&d).join("layers.json");
    let remembered: Value =
        serde_json::from_str(&std::fs::read_to_string(&layers).unwrap()).unwrap();
    let tagged = remembered.as_object().unwrap().len();
    assert!(tagged >= n, "{remembered}");
    std::fs::remove_file(&layers).unwrap();
    let uncached = calls(&d);
    assert_eq!(
        uncached - cached,
        tagged as u64,
        "one inspect per tagged image saved: {cached} with the cache, {uncached} without"
    );
}

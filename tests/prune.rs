//! prunegate against a real private dockerd (not in a swarm): what goes, what stays, and what
//! a closed gate keeps.

mod common;
use common::*;

/// A world with every kind of object prunegate must keep or remove.
struct World {
    keep_images: Vec<String>,
    keep_containers: Vec<String>,
    remove_containers: Vec<String>,
    remove_images: Vec<String>,
    volumes: Vec<String>,
}

fn build_world(d: &PrivateDaemon) -> World {
    let base = d.build("pg-base:1", "", "base");
    let cache = d.build("pg-cache:1", "", "tagged but unused");
    let junk_dangling = d.dangling("pg-junk:1");
    let junk_current = d.image_id("pg-junk:1");
    // A dangling image still used by a running container must stay.
    d.build("pg-held:1", "", "held one");
    let running_held = d.run_detached("held", "pg-held:1", &[]);
    let held_dangling = d.image_id("pg-held:1");
    let held_current = d.retag("pg-held:1", "", "held two");
    let old_dangling = d.load_old_dangling("world");
    let (classic_top, classic_parent) = d.classic_dangling_chain("pg-classic:1", "pg-base:1");
    let classic_current = d.image_id("pg-classic:1");
    let running = d.run_detached("keeper", "pg-base:1", &["-v", "named1:/data"]);
    let exited = d.exited("exited1", "pg-base:1");
    let created = d.created("created1", "pg-cache:1");
    d.docker(&["volume", "create", "named2"]);
    let volumes = d.inventory().volumes;
    assert_eq!(
        volumes.len(),
        3,
        "named1, named2 and exited1's anonymous volume: {volumes:?}"
    );
    World {
        keep_images: vec![
            base,
            cache,
            junk_current,
            held_dangling,
            held_current,
            classic_current,
        ],
        keep_containers: vec![running, running_held],
        remove_containers: vec![exited, created],
        remove_images: vec![junk_dangling, old_dangling, classic_top, classic_parent],
        volumes,
    }
}

#[test]
fn all_gates_open_prunes_exactly_the_safe_classes() {
    let d = PrivateDaemon::start();
    let w = build_world(&d);
    let cache_before = d.inventory().build_cache.len();
    assert_eq!(
        cache_before > 0,
        engine().has_build_cache(),
        "the builds left build cache (Podman keeps none)"
    );
    settle();
    let r = d.prunegate(OPEN_NOW, &["run", "--json"]);
    r.expect(0);
    let report = r.json();
    assert_eq!(report["outcome"], "pruned");
    let after = d.inventory();
    for id in &w.remove_containers {
        assert!(
            !after.containers.contains(id),
            "stopped container {id} should be gone"
        );
    }
    for id in &w.keep_containers {
        assert!(
            after.containers.contains(id),
            "running container {id} must stay"
        );
    }
    for id in &w.remove_images {
        assert!(
            !after.images.contains(id),
            "dangling image {id} should be gone"
        );
    }
    for id in &w.keep_images {
        assert!(
            after.images.contains(id),
            "image {id} (tagged, or used by a container) must stay"
        );
    }
    assert_eq!(after.volumes, w.volumes, "volumes must never be touched");
    assert!(
        !engine().has_build_cache() || after.build_cache.len() < cache_before,
        "unused build cache should be pruned ({cache_before} records before, {} after)",
        after.build_cache.len()
    );
    let mut reported = items(&report, "containers");
    let mut expected = w.remove_containers.clone();
    reported.sort();
    expected.sort();
    assert_eq!(
        reported, expected,
        "the report lists the containers removed"
    );
    for id in &w.remove_images {
        assert!(
            items(&report, "images").contains(id),
            "report lists image {id}"
        );
    }
    assert!(report["api_calls"].as_u64().unwrap() > 0);
    // A second run finds nothing left that the policy allows.
    let again = d.prunegate(OPEN_NOW, &["run", "--json"]);
    again.expect(0);
    assert_eq!(again.json()["outcome"], "nothing_to_do", "{}", again.stdout);
}

#[test]
fn dry_run_removes_nothing_and_lists_what_the_real_run_removes() {
    let d = PrivateDaemon::start();
    build_world(&d);
    settle();
    let before = d.inventory();
    let dry = d.prunegate(OPEN_NOW, &["run", "--dry-run", "--json"]);
    dry.expect(0);
    let dry = dry.json();
    assert_eq!(dry["outcome"], "dry_run");
    assert_eq!(d.inventory(), before, "a dry run must remove nothing");
    for step in dry["steps"].as_array().unwrap() {
        // Podman has no build-cache prune: the dry run skips it as the run does.
        let expected = if step["class"] == "build_cache" && !engine().has_build_cache() {
            "skipped"
        } else {
            "would_remove"
        };
        assert_eq!(step["status"], expected, "{step}");
        for o in step["objects"].as_array().into_iter().flatten() {
            assert!(o["size_bytes"].is_u64(), "each object has a size: {o}");
        }
    }
    let real = d.prunegate(OPEN_NOW, &["run", "--json"]);
    real.expect(0);
    let real = real.json();
    for class in ["containers", "images"] {
        assert_eq!(
            items(&dry, class),
            items(&real, class),
            "{class}: dry run vs real run"
        );
    }
    // Build cache: exactly the certain set, plus only records the dry run named as possible.
    let removed = items(&real, "build_cache");
    let wrong = build_cache_outside_prediction(&dry, &removed);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn objects_younger_than_the_cut_off_survive() {
    let d = PrivateDaemon::start();
    d.build("pg-base:1", "", "base");
    let young_dangling = d.dangling("pg-junk:1");
    let old_dangling = d.load_old_dangling("age");
    let young_exited = d.exited("young", "pg-base:1");
    let cache_before = d.inventory().build_cache;
    let config = "[gates.disk]\nused_percent = 1\n[prune]\nolder_than = \"1h\"\n";
    let r = d.prunegate(config, &["run", "--json"]);
    r.expect(0);
    let report = r.json();
    let after = d.inventory();
    assert!(
        after.containers.contains(&young_exited),
        "a container from a minute ago must stay"
    );
    assert!(
        after.images.contains(&young_dangling),
        "a dangling image built now must stay"
    );
    // The classic store ages an image by its config's date; the containerd store by when its
    // record was made — for an image loaded untagged, now (moby daemon/containerd setupFilters).
    let old_goes = !engine().containerd_store;
    assert_eq!(
        !after.images.contains(&old_dangling),
        old_goes,
        "a dangling image created in 2000 and loaded now: removed on the classic store only"
    );
    assert_eq!(
        after.build_cache, cache_before,
        "build cache used just now must stay"
    );
    let expected: Vec<String> = if old_goes { vec![old_dangling] } else { vec![] };
    assert_eq!(items(&report, "images"), expected);
    assert_eq!(report["older_than"], "1h");
}

/// The dry run ages images by the same rule as the daemon's prune on each image store: on the
/// containerd store an image built in 2000 and untagged a moment ago is young (its dangling
/// record is), and the dry run keeps it as the prune does.
#[test]
fn the_dry_run_ages_a_freshly_untagged_old_image_as_the_daemon_does() {
    let d = PrivateDaemon::start();
    d.build("pg-base:1", "", "base");
    let old = d.load_old_dangling("untagged-now");
    d.docker(&["tag", &old, "pg-old:1"]);
    d.retag("pg-old:1", "", "newer");
    settle();
    let config = "[gates.disk]\nused_percent = 1\n[prune]\nolder_than = \"1h\"\ncontainers = false\nbuild_cache = false\n";
    let dry = d.prunegate(config, &["run", "--dry-run", "--json"]);
    dry.expect(0);
    let real = d.prunegate(config, &["run", "--json"]);
    real.expect(0);
    assert_eq!(items(&dry.json(), "images"), items(&real.json(), "images"));
    let gone = !d.inventory().images.contains(&old);
    assert_eq!(
        gone,
        !engine().containerd_store,
        "built in 2000, untagged now: the classic store removes it, the containerd store keeps it"
    );
}

#[test]
fn disk_below_threshold_closes_the_gate_and_removes_nothing() {
    let mut d = PrivateDaemon::start();
    build_world(&d);
    let empty = d.small_fs(8, 0);
    settle();
    let config = format!(
        "[gates.disk]\npath = \"{}\"\n[prune]\nolder_than = \"0s\"\n",
        empty.display()
    );
    let report = d.expect_closed(&config, "run", "disk", "below");
    // With the path configured, a closed disk gate is judged before the daemon is asked.
    assert_eq!(report["api_calls"], 0, "{report}");
    assert_eq!(report["gates"].as_array().unwrap().len(), 1);
    // `check` still evaluates every gate.
    let check = d.prunegate(&config, &["check", "--json"]).json();
    assert_eq!(check["gates"].as_array().unwrap().len(), 4);
    // The same filesystem filled past the threshold opens it.
    let full = d.small_fs(8, 90);
    let config = format!(
        "[gates.disk]\npath = \"{}\"\n[prune]\nolder_than = \"0s\"\n",
        full.display()
    );
    let r = d.prunegate(&config, &["check", "--json"]);
    r.expect(0);
    assert_eq!(gate(&r.json(), "disk")["open"], true);
}

/// `df --output=pcent` (and `ipcent`) for `path`, as numbers.
fn df(path: &std::path::Path, field: &str) -> u64 {
    let out = std::process::Command::new("df")
        .arg(format!("--output={field}"))
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('%')
        .parse()
        .unwrap()
}

#[test]
fn disk_percent_equals_df() {
    let mut d = PrivateDaemon::start();
    let small = d.small_fs(16, 63);
    // The engine's own data root, as its info gives it (dockerd's --data-root, Podman's graphroot).
    let data_root = std::path::PathBuf::from(d.api("/info")["DockerRootDir"].as_str().unwrap());
    for (path, configured) in [(small, true), (data_root, false)] {
        let config = if configured {
            format!("[gates.disk]\npath = \"{}\"\n", path.display())
        } else {
            String::new()
        };
        let report = d.prunegate(&config, &["check", "--json"]).json();
        let ev = &gate(&report, "disk")["evidence"];
        assert_eq!(ev["path"], path.display().to_string());
        assert_eq!(
            ev["used_percent"].as_u64().unwrap(),
            df(&path, "pcent"),
            "Use% at {}",
            path.display()
        );
        assert_eq!(
            ev["inodes_used_percent"].as_u64().unwrap(),
            df(&path, "ipcent"),
            "IUse% at {}",
            path.display()
        );
    }
}

/// Every watched filesystem is measured and the fullest decides; unset, the engine's own paths
/// are watched — here `DockerRootDir` alone, on every engine of the matrix: a private dockerd
/// runs its own containerd, whose root lies under its data root (`Containerd.Address` is not a
/// system containerd's socket).
#[test]
fn the_fullest_watched_filesystem_decides() {
    let mut d = PrivateDaemon::start();
    let roomy = d.small_fs(8, 30);
    let full = d.small_fs(8, 92);
    let paths = |ps: &[&std::path::Path]| {
        let list: Vec<String> = ps.iter().map(|p| format!("\"{}\"", p.display())).collect();
        format!("[gates.disk]\npaths = [{}]\n", list.join(", "))
    };
    let report = d
        .prunegate(&paths(&[&roomy, &full]), &["check", "--json"])
        .json();
    let g = gate(&report, "disk");
    assert_eq!(g["open"], true, "{g}");
    assert_eq!(g["evidence"]["path"], full.display().to_string(), "{g}");
    let listed = g["evidence"]["filesystems"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{g}");
    assert_eq!(listed[0]["path"], roomy.display().to_string());
    assert_eq!(listed[0]["path_source"], "config");
    assert!(
        g["reason"].as_str().unwrap().contains("fullest of 2"),
        "{g}"
    );

    let report = d.prunegate(&paths(&[&roomy]), &["check", "--json"]).json();
    assert_eq!(gate(&report, "disk")["open"], false);

    let report = d.prunegate("", &["check", "--json"]).json();
    let listed = gate(&report, "disk")["evidence"]["filesystems"].clone();
    let data_root = d.api("/info")["DockerRootDir"].clone();
    assert_eq!(
        listed,
        serde_json::json!([{
            "path": data_root,
            "path_source": "docker_root_dir",
            "used_percent": listed[0]["used_percent"],
            "inodes_used_percent": listed[0]["inodes_used_percent"],
        }]),
        "containerd address: {}",
        d.api("/info")["Containerd"]
    );
}

#[test]
fn live_compose_project_closes_the_gate() {
    let d = PrivateDaemon::start();
    build_world(&d);
    d.run_detached(
        "ci-run-web",
        "pg-base:1",
        &["--label", "com.docker.compose.project=ci-run-42"],
    );
    settle();
    d.expect_closed(OPEN_NOW, "run", "live_runs", "ci-run-42");
    // A pattern that does not match it lets the run go ahead.
    let narrow = format!("{OPEN_NOW}[gates.live_runs]\npattern = \"^nightly-\"\n");
    let r = d.prunegate(&narrow, &["run", "--json"]);
    r.expect(0);
    assert_eq!(r.json()["outcome"], "pruned");
}

#[test]
fn reclaim_prunes_below_the_disk_threshold() {
    let d = PrivateDaemon::start();
    let w = build_world(&d);
    settle();
    // 100% is never reached on a working disk: `run` is closed, `reclaim` skips that gate only.
    let config = "[gates.disk]\nused_percent = 100\ninodes_used_percent = 100\n[prune]\nolder_than = \"0s\"\n";
    d.prunegate(config, &["run"]).expect(10);
    let r = d.prunegate(config, &["reclaim", "--json"]);
    r.expect(0);
    let report = r.json();
    assert_eq!(report["command"], "reclaim");
    assert_eq!(report["outcome"], "pruned");
    assert!(gate(&report, "disk")["reason"]
        .as_str()
        .unwrap()
        .contains("reclaim skips"));
    let after = d.inventory();
    for id in &w.remove_containers {
        assert!(!after.containers.contains(id));
    }
    for id in &w.keep_images {
        assert!(
            after.images.contains(id),
            "reclaim keeps tagged and used images"
        );
    }
    assert_eq!(after.volumes, w.volumes);
}

#[test]
fn check_reports_every_gate_and_a_constant_number_of_api_calls() {
    let d = PrivateDaemon::start();
    let small = d.prunegate(OPEN_NOW, &["check", "--json"]);
    small.expect(0);
    let small = small.json();
    assert_eq!(small["outcome"], "open");
    let names: Vec<&str> = small["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["disk", "live_runs", "converging", "grace"]);
    build_world(&d);
    for i in 0..10 {
        d.created(&format!("extra{i}"), "pg-base:1");
    }
    let big = d.prunegate(OPEN_NOW, &["check", "--json"]).json();
    assert_eq!(
        small["api_calls"], big["api_calls"],
        "API calls must not grow with the number of objects"
    );
    // Text output names each gate too.
    let text = d.prunegate(OPEN_NOW, &["check"]).stdout;
    for name in ["disk", "live_runs", "converging", "grace"] {
        assert!(text.contains(&format!("gate {name}")), "{text}");
    }
}

#[test]
fn a_gate_that_closes_between_steps_stops_the_run() {
    let d = PrivateDaemon::start();
    let junk = d.slow_prune_world(600);
    let child = d.spawn_run_until_container_prune(OPEN_NOW);
    // A compose project starts (a running container makes it live) during the first step.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "ci-late-web",
        "--network",
        "none",
        "--label",
        "com.docker.compose.project=ci-late",
        "pg-base:1",
    ]);
    let run = Run::from(child.wait_with_output().unwrap());
    let left = d.container_count();
    assert_eq!(left, 1, "the container step ran to the end");
    run.expect(10);
    let report = run.json();
    assert_eq!(report["outcome"], "skipped");
    assert_eq!(
        report["stopped_by"]["name"], "live_runs",
        "{}",
        report["stopped_by"]
    );
    d.assert_stopped_after_containers(&report, 600, "live_runs", &junk);
}

/// The retention class on every engine of the matrix: run on Docker (its step is there and
/// judges), refused on Podman with the reason, and nothing tagged removed there.
#[test]
fn the_retention_class_runs_on_docker_and_is_refused_on_podman() {
    let mut d = PrivateDaemon::start();
    let full = d.small_fs(8, 95);
    d.build("pg-r:1", "", "r one");
    let config = format!(
        "[gates.disk]\npath = \"{}\"\n[prune]\nolder_than = \"0s\"\n[state]\ndir = \"{}\"\n\
         [retention]\nenabled = true\nmin_idle = \"0s\"\nkeep_newest = 0\n",
        full.display(),
        d.dir.path().join("state").display()
    );
    for _ in 0..2 {
        let r = d.prunegate(&config, &["run", "--json"]);
        r.expect(0);
        let report = r.json();
        let step = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["class"] == "tagged_images")
            .cloned()
            .unwrap_or_else(|| panic!("no tagged_images step: {}", r.stdout));
        let reason = step["reason"].as_str().unwrap_or_default();
        if engine().kind == Kind::Podman {
            assert_eq!(step["status"], "skipped", "{step}");
            assert!(reason.contains("not supported on Podman"), "{step}");
            assert!(!d.dir.path().join("state/retention.json").exists());
        } else {
            assert!(!reason.contains("Podman"), "{step}");
        }
    }
    let tags = d.docker(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    if engine().kind == Kind::Podman {
        assert!(
            tags.contains("pg-r:1"),
            "nothing tagged removed on Podman: {tags}"
        );
    } else {
        // The second run had a history: the one cold image went.
        assert!(!tags.contains("pg-r:1"), "{tags}");
    }
}

/// `prune.older_than = "0"` means no age limit, as `"0s"` does: moby reads the string "0" in
/// `until` as the Unix time 0, so sent verbatim it would keep everything (issue 22).
#[test]
fn a_bare_zero_cut_off_prunes_as_0s_does() {
    let d = PrivateDaemon::start();
    d.build("pg-base:1", "", "base");
    let junk = d.dangling("pg-junk:1");
    let exited = d.exited("exited1", "pg-base:1");
    settle();
    let r = d.prunegate(
        "[gates.disk]\nused_percent = 1\n[prune]\nolder_than = \"0\"\n",
        &["run", "--json"],
    );
    r.expect(0);
    let after = d.inventory();
    assert!(!after.containers.contains(&exited), "{}", r.stdout);
    assert!(!after.images.contains(&junk), "{}", r.stdout);
}

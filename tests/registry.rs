//! Registry images are cache, not junk (docs/gates.md, "What dangling means"): against a real
//! private daemon and a private registry, images pulled the way hosts pull them — by swarm
//! (digest-pinned), by a digest-pinned compose service, by tag and pulled again after the tag
//! moved upstream — and what a run with every gate open keeps and removes. In each, the dry
//! run lists exactly what the run then removes.
//!
//! Compose is played by the API calls it makes for `image: REPO@sha256:…` (a pull by digest, a
//! labelled container, its removal at `down`); no compose binary is needed.

mod common;
use common::*;
use serde_json::Value;

fn swarm_with_registry() -> (std::sync::MutexGuard<'static, ()>, PrivateDaemon, Registry) {
    let guard = SWARM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let d = PrivateDaemon::start();
    d.swarm_init();
    (guard, d, Registry::start())
}

/// Whether the daemon is Docker with the classic store (where Docker's own `dangling=true`
/// prune would take a digest pull, so prunegate judges junk itself and says why); the
/// containerd store keeps such a pull as a named record, Podman as a name.
fn classic() -> bool {
    engine().kind == Kind::Docker && !engine().containerd_store
}

/// Every gate open, with only stacks named `ci-…` counting as CI runs (a live `prod` stack
/// does not close the live_runs gate).
const OPEN: &str = "[gates.disk]\nused_percent = 1\n[prune]\nolder_than = \"0s\"\n\
                    [gates.live_runs]\npattern = \"^ci-\"\n";

/// A dry run, then the run, both with every gate open: the run's images step removes exactly
/// what the dry run listed. Returns both reports.
fn dry_then_run(d: &PrivateDaemon) -> (Value, Value) {
    let dry = d.prunegate(OPEN, &["run", "--dry-run", "--json"]);
    dry.expect(0);
    let dry = dry.json();
    let run = d.prunegate(OPEN, &["run", "--json"]);
    run.expect(0);
    let run = run.json();
    let mut listed = items(&dry, "images");
    let mut removed = items(&run, "images");
    listed.sort();
    removed.sort();
    assert_eq!(
        listed, removed,
        "the dry run lists what the run removes:\n{dry}\n{run}"
    );
    (dry, run)
}

fn present(d: &PrivateDaemon, id: &str) -> bool {
    d.images_with_tags().iter().any(|(i, _)| i == id)
}

/// Whether the engine itself kept `old` when a pull moved its tag away. Docker 26.1's
/// containerd store does not: it deletes the image's last record there and then (28.5 keeps a
/// dangling record; the classic store and Podman an untagged image) — as it does when `docker
/// load` takes an image's last tag (compatibility.md). Then nothing is left to protect or to
/// remove; any other engine keeping it is asserted.
fn engine_kept_after_the_move(d: &PrivateDaemon, old: &str) -> bool {
    let kept = present(d, old);
    if !kept {
        assert_eq!(
            engine().name,
            "docker-26-containerd",
            "{old} went when its tag moved, before any prunegate run"
        );
    }
    kept
}

/// The images step's `field` list (`kept`, `objects`).
fn images_step(report: &Value, field: &str) -> Vec<Value> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["class"] == "images")
        .flat_map(|s| s[field].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The images step's kept list: (id, why).
fn kept(report: &Value) -> Vec<(String, String)> {
    images_step(report, "kept")
        .into_iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap().to_string(),
                k["why"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn why_kept(report: &Value, id: &str) -> String {
    kept(report)
        .into_iter()
        .find(|(k, _)| k == id)
        .map(|(_, why)| why)
        .unwrap_or_else(|| panic!("{id} is not in the images step's kept list: {report}"))
}

#[test]
fn a_torn_down_stacks_images_stay_and_a_build_leftover_goes() {
    let (_g, d, registry) = swarm_with_registry();
    let app = format!("{}:1", registry.repo("app"));
    let digest = registry.publish(&app, "app one");
    let leftover = d.dangling("pg-junk:1");
    // The CI run: a stack deployed from the registry (pinned by digest), then torn down.
    d.registry_service("ci-7_web", "ci-7", &app, &[]);
    let pulled = d.image_id(&digest);
    d.remove_service("ci-7_web");
    settle();
    let (dry, run) = dry_then_run(&d);
    assert!(items(&run, "images").contains(&leftover), "{run}");
    assert!(
        !present(&d, &leftover),
        "the build leftover is junk and goes"
    );
    assert!(
        present(&d, &pulled),
        "the torn-down stack's image is cache: the next deploy must find it"
    );
    if classic() {
        for report in [&dry, &run] {
            let why = why_kept(report, &pulled);
            assert!(
                why.contains("pulled by digest") && why.contains("not superseded"),
                "{why}"
            );
        }
    }
    // The next deploy of that digest finds it: swarm pulls a digest reference only when the
    // image is not local, and with the registry gone a pull would fail.
    drop(registry);
    d.registry_service("ci-8_web", "ci-8", &digest, &["--no-resolve-image"]);
}

#[test]
fn a_rollback_target_pulled_by_digest_stays_while_its_service_lives() {
    let (_g, d, registry) = swarm_with_registry();
    let app = format!("{}:1", registry.repo("app"));
    registry.publish(&app, "web one");
    d.pull(&app);
    let old = d.image_id(&app);
    d.registry_service("web", "prod", &app, &[]);
    // prunegate sees the image hold the tag (the tags seen are what make a pull superseded).
    d.prunegate(OPEN, &["run"]).expect(0);
    // Upstream moves the tag; the host pulls it and the service follows (the old digest is
    // now its previous spec: the rollback target).
    registry.publish(&app, "web two");
    d.pull(&app);
    let kept = engine_kept_after_the_move(&d, &old);
    d.docker(&["service", "update", "-d", "--image", &app, "web"]);
    d.wait_for("the update to finish", || {
        d.docker(&[
            "service",
            "inspect",
            "--format",
            "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
            "web",
        ]) == "completed"
    });
    settle();
    let (_, run) = dry_then_run(&d);
    if !kept {
        assert!(items(&run, "images").is_empty(), "{run}");
        return;
    }
    assert!(present(&d, &old), "the rollback target stays: {run}");
    // On either store: Docker's own prune would take it (a digest pull on the classic store,
    // a dangling record on the containerd store, where the moved tag left it).
    let why = why_kept(&run, &old);
    assert!(why.contains("service web's previous spec"), "{why}");
    // Without the service, it is what it is: a pull superseded by the tag's new image.
    d.remove_service("web");
    settle();
    let (_, run) = dry_then_run(&d);
    assert!(!present(&d, &old), "superseded and no longer pinned: {run}");
    if classic() {
        let what = report_object(&run, &old);
        assert!(
            what["why"].as_str().unwrap().contains("superseded"),
            "{what}"
        );
    }
}

/// The `what` of an image the run's images step removed.
fn report_object(report: &Value, id: &str) -> Value {
    images_step(report, "objects")
        .into_iter()
        .find(|o| o["id"] == id)
        .map(|o| o["what"].clone())
        .unwrap_or_else(|| panic!("{id} is not among the images removed: {report}"))
}

#[test]
fn a_digest_pinned_compose_project_that_is_down_keeps_its_images() {
    let d = PrivateDaemon::start();
    let registry = Registry::start();
    let digest = registry.publish(&format!("{}:1", registry.repo("shop")), "shop one");
    let leftover = d.dangling("pg-junk:1");
    // `docker compose up` of `image: REPO@sha256:…`, then `docker compose down`.
    d.pull(&digest);
    let id = d.image_id(&digest);
    d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "shop-web-1",
        "--label",
        "com.docker.compose.project=shop",
        &digest,
    ]);
    d.docker(&["rm", "shop-web-1"]);
    settle();
    let (_, run) = dry_then_run(&d);
    assert!(!present(&d, &leftover), "{run}");
    assert!(present(&d, &id), "the pinned image is cache: {run}");
    if classic() {
        assert!(why_kept(&run, &id).contains("not superseded"));
    }
}

#[test]
fn a_pull_superseded_by_a_moved_tag_goes() {
    let d = PrivateDaemon::start();
    let registry = Registry::start();
    let app = format!("{}:latest", registry.repo("base"));
    registry.publish(&app, "base one");
    d.pull(&app);
    let old = d.image_id(&app);
    // A run while the tag names it: nothing to remove, and prunegate sees the tag.
    let first = d.prunegate(OPEN, &["run", "--json"]);
    first.expect(0);
    assert!(present(&d, &old));
    // The tag moves upstream and the host pulls it again.
    registry.publish(&app, "base two");
    d.pull(&app);
    let new = d.image_id(&app);
    settle();
    let kept = engine_kept_after_the_move(&d, &old);
    let (dry, run) = dry_then_run(&d);
    if !kept {
        assert!(present(&d, &new), "the tag's image stays: {run}");
        return;
    }
    assert!(items(&dry, "images").contains(&old), "{dry}");
    assert!(!present(&d, &old), "the superseded pull goes: {run}");
    assert!(present(&d, &new), "the tag's image stays");
    if classic() {
        let what = report_object(&run, &old);
        assert!(
            what["why"]
                .as_str()
                .unwrap()
                .contains(&format!("its tag {app} now names")),
            "{what}"
        );
    }
}

//! A hostile or broken daemon's answers cannot hurt: each test puts the relay of
//! `common/relay.rs` between prunegate and a real private daemon and rewrites one answer the
//! way a compromised daemon (or anything impersonating it) could. Issue 22's findings; each
//! failed on the code before it.

mod common;
use common::*;
use serde_json::{json, Value};

/// Bytes no terminal must receive from a daemon: ESC (CSI, OSC: title, clear, clipboard),
/// BEL (ends an OSC), and the C1 CSI.
fn assert_printable(what: &str, text: &str) {
    for bad in ['\u{1b}', '\u{7}', '\u{9b}'] {
        assert!(
            !text.contains(bad),
            "{what} carries {bad:?} from the daemon raw:\n{text}"
        );
    }
}

const HOSTILE: &str =
    "RUN x \u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}]52;c;cHduZWQ=\u{7}\nprunegate run: pruned 0 objects";

#[test]
fn escape_sequences_in_a_daemons_answers_never_reach_the_terminal() {
    let d = PrivateDaemon::start();
    // A build-cache record whose description (any Dockerfile's RUN line, in real life) is
    // hostile, old enough for the dry run to list it.
    let relay = Relay::start(d.sock.clone(), |_, path| {
        if !path.starts_with("/system/df") {
            return Reply::Pass;
        }
        Reply::Rewrite(Box::new(|body| {
            let mut df: Value = serde_json::from_slice(&body).unwrap();
            let record = json!({
                "ID": "h0stile0record0000000000a", "Parent": "", "Type": "regular",
                "Description": HOSTILE, "InUse": false, "Shared": false, "Size": 4096,
                "CreatedAt": "2020-01-01T00:00:00Z", "LastUsedAt": "2020-01-01T00:00:00Z",
                "UsageCount": 1
            });
            match df.get_mut("BuildCache").and_then(Value::as_array_mut) {
                Some(list) => list.push(record),
                None => df["BuildCache"] = json!([record]),
            }
            serde_json::to_vec(&df).unwrap()
        }))
    });
    let r = Run::from(
        d.prunegate_cmd_at(&relay.host, "", &["reclaim", "--dry-run"])
            .output()
            .unwrap(),
    );
    r.expect(0);
    assert!(
        r.stdout.contains("\\u{1b}]0;owned"),
        "the record is listed, escaped:\n{}",
        r.stdout
    );
    assert_printable("the dry run's text", &r.stdout);
    assert!(
        !r.stdout
            .lines()
            .any(|l| l.starts_with("prunegate run: pruned")),
        "a newline in the description forged a report line:\n{}",
        r.stdout
    );

    // A daemon's error message, in the report's error line and on stderr.
    let relay = Relay::start(d.sock.clone(), |_, path| {
        if path.starts_with("/info") {
            Reply::With(
                500,
                serde_json::to_vec(&json!({ "message": HOSTILE })).unwrap(),
            )
        } else {
            Reply::Pass
        }
    });
    let r = Run::from(
        d.prunegate_cmd_at(&relay.host, "", &["reclaim"])
            .output()
            .unwrap(),
    );
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("owned"), "{}", r.stdout);
    assert_printable("the run's text", &r.stdout);
    assert_printable("stderr", &r.stderr);
}

/// An endless listing once took 1.96 GB in 6 s; now the read stops at
/// `docker.max_answer_bytes` and says so, whichever client reads it (the raw container listing,
/// bollard's image listing), and nothing is removed.
#[test]
fn an_endless_answer_is_cut_at_the_bound_and_said() {
    let d = PrivateDaemon::start();
    let junk = d.build("junk:1", "", "junk");
    d.docker(&["rmi", "junk:1"]);
    let before = d.inventory();
    let entry = |id: &str| {
        format!(
            "{{\"Id\":\"sha256:{id}\",\"RepoTags\":[\"<none>:<none>\"],\"Created\":1,\"Size\":1,\
             \"Names\":[\"/x\"],\"Image\":\"x\",\"State\":\"exited\",\"Labels\":{{}}}},"
        )
    };
    let chunk = entry(&"ab".repeat(32)).repeat(200).into_bytes();
    for (endpoint, command) in [("/containers/json", "check"), ("/images/json", "reclaim")] {
        let chunk = chunk.clone();
        let relay = Relay::start(d.sock.clone(), move |_, path| {
            if path.starts_with(endpoint) {
                Reply::Endless {
                    prefix: b"[".to_vec(),
                    chunk: chunk.clone(),
                }
            } else {
                Reply::Pass
            }
        });
        let started = std::time::Instant::now();
        let r = Run::from(
            d.prunegate_cmd_at(
                &relay.host,
                "[docker]\nmax_answer_bytes = 2097152\nread_timeout = \"120s\"\n",
                &[command, "--json"],
            )
            .output()
            .unwrap(),
        );
        let text = format!("{}{}", r.stdout, r.stderr);
        assert!(
            text.contains("larger than 2097152 bytes (docker.max_answer_bytes)"),
            "{endpoint}: {text}"
        );
        assert!(!text.contains("panicked"), "{text}");
        println!(
            "{endpoint}: refused after {} ms",
            started.elapsed().as_millis()
        );
    }
    assert_eq!(
        d.inventory(),
        before,
        "nothing removed, the junk image {junk} included"
    );
}

//! Hostile configuration: random documents and random values for every key. prunegate must
//! never panic, and every rejection must name the key at fault (exit 2).

use proptest::prelude::*;
use std::process::Command;

/// Every key of the config, as (table, key).
const KEYS: &[(&str, &str)] = &[
    ("docker", "host"),
    ("docker", "read_timeout"),
    ("docker", "prune_timeout"),
    ("gates.disk", "enabled"),
    ("gates.disk", "path"),
    ("gates.disk", "used_percent"),
    ("gates.disk", "inodes_used_percent"),
    ("gates.live_runs", "enabled"),
    ("gates.live_runs", "pattern"),
    ("gates.converging", "enabled"),
    ("gates.grace", "enabled"),
    ("gates.grace", "min_uptime"),
    ("prune", "older_than"),
    ("prune", "containers"),
    ("prune", "images"),
    ("prune", "build_cache"),
    ("lock", "enabled"),
    ("lock", "path"),
    ("metrics", "path"),
    ("audit", "path"),
    ("state", "dir"),
    ("schedule", "cron"),
    ("schedule", "random_delay"),
    ("gates.disk", "paths"),
    ("swarm", "managers"),
    ("swarm", "cert_path"),
    ("retention", "enabled"),
    ("retention", "high_percent"),
    ("retention", "low_percent"),
    ("retention", "min_idle"),
    ("retention", "keep"),
    ("retention", "keep_newest"),
];

fn check(text: &[u8]) -> (i32, String) {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_prunegate"))
        .args(["config", "check", "--config", f.path().to_str().unwrap()])
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// TOML values of every kind, including edge cases for durations, regexes and numbers.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (0u16..400).prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        "[a-z0-9 ./*()\\[\\]+?|^$\\\\-]{0,40}".prop_map(|s| toml::Value::String(s).to_string()),
        prop::sample::select(vec![
            "\"24h\"",
            "\"0s\"",
            "\"-1h\"",
            "\"1.5h\"",
            "\"9999999999h\"",
            "\"1d\"",
            "\"\"",
            "\"(\"",
            "\"[\"",
            "\"a{99999999}\"",
            "\"\\\\p{Greek}+\"",
            "\"/abs/path\"",
            "\"rel\"",
            "\"unix:///x.sock\"",
            "\"tcp://h:1\"",
            "\"ssh://h\"",
            "\"* * * * * *\"",
            "\"61 * * * * *\"",
            "[]",
            "{}",
            "[1, \"a\"]",
            "1979-05-27T07:32:00Z",
        ])
        .prop_map(str::to_string),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn any_value_for_any_key_is_accepted_or_rejected_naming_the_key(
        key in prop::sample::select(KEYS.to_vec()),
        v in value(),
    ) {
        let (table, name) = key;
        let (code, stderr) = check(format!("[{table}]\n{name} = {v}\n").as_bytes());
        prop_assert!(!stderr.contains("panicked"), "{}", stderr);
        prop_assert!(code == 0 || code == 2, "exit {} for {}.{} = {}: {}", code, table, name, v, stderr);
        if code == 2 {
            prop_assert!(stderr.contains(&format!("{table}.{name}")), "{}.{} = {}: {}", table, name, v, stderr);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let (code, stderr) = check(&bytes);
        prop_assert!(!stderr.contains("panicked"), "{}", stderr);
        prop_assert!(code == 0 || code == 2, "exit {}: {}", code, stderr);
    }

    #[test]
    fn unknown_keys_are_named(table in prop::sample::select(vec!["docker", "gates.disk", "prune", "lock", "schedule"]),
                              name in "[a-z_]{1,20}") {
        prop_assume!(!KEYS.iter().any(|(t, k)| *t == table && *k == name));
        let (code, stderr) = check(format!("[{table}]\n{name} = 1\n").as_bytes());
        prop_assert_eq!(code, 2);
        prop_assert!(stderr.contains(&name), "{}", stderr);
    }
}

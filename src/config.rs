//! The configuration file: what it may contain, its defaults, and how a bad one is reported.
//!
//! Every key is optional. Unknown keys are errors rather than warnings: a misspelt
//! `older_then = "30d"` silently ignored would prune with the default, which is exactly the kind
//! of surprise a pruner must not spring. Errors name the dotted key and the file.

use crate::duration::GoDuration;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where `--config` points when it is not given. A missing file here means "all defaults".
pub const DEFAULT_CONFIG_PATH: &str = "/etc/prunegate/config.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub docker: DockerConfig,
    pub gates: GatesConfig,
    pub prune: PruneConfig,
    pub lock: LockConfig,
    pub metrics: MetricsConfig,
    pub audit: AuditConfig,
    pub state: StateConfig,
    pub schedule: ScheduleConfig,
    pub swarm: SwarmConfig,
    pub serve: ServeConfig,
    pub retention: RetentionConfig,
}

/// The opt-in class that removes cold tagged images (docs/retention.md): off by default, and
/// then nothing tagged is ever removed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub enabled: bool,
    /// The disk level (Use%, as the disk gate computes it) at which the class starts.
    pub high_percent: u8,
    /// The level it frees down to, by the images' projected unique bytes.
    pub low_percent: u8,
    /// Time since an image was last used (or first seen) before it may go.
    pub min_idle: GoDuration,
    /// Regular expressions over `repository:tag`: an image with a matching tag always stays.
    pub keep: Vec<String>,
    /// The newest images of each repository that always stay.
    pub keep_newest: usize,
    /// The operator's word that `keep` names every image a build on this host uses (`FROM`,
    /// `COPY --from`). No engine says which images a build used, so without it every build
    /// counts as a use of every image present (a gap); with it, builds are not waited for.
    pub build_bases_kept: bool,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            high_percent: 90,
            low_percent: 80,
            min_idle: GoDuration::parse("720h").expect("valid literal"),
            keep: Vec::new(),
            keep_newest: 2,
            build_bases_kept: false,
        }
    }
}

/// `prunegate serve-swarm`, on a manager: the swarm reads the workers' gates need, over mutual
/// TLS, and nothing else (docs/swarm.md, docs/security.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address and port to listen on, e.g. `0.0.0.0:7676`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `ca.pem` (the CA whose client certificates are accepted: the workers'), `cert.pem` and
    /// `key.pem` (this manager's server certificate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<PathBuf>,
}

/// How a swarm worker learns what the swarm is doing: only managers can list services and
/// tasks, so a worker asks one of them with TLS client certificates — `prunegate serve-swarm`
/// on the manager (the restricted way), or the manager's Engine API.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SwarmConfig {
    /// Managers' Engine API addresses (`tcp://host:2376`), tried in order. Used only when this
    /// node is a worker; a manager reads its own socket.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub managers: Vec<String>,
    /// A directory in `DOCKER_CERT_PATH` layout: `ca.pem`, `cert.pem`, `key.pem`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// Daemon address (`unix://…`, `tcp://…`). Unset: `DOCKER_HOST`, then the local socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Bound on every read (info, lists). Short: a hung daemon must not hang the timer.
    pub read_timeout: GoDuration,
    /// Bound on each prune call. Long: the daemon answers a prune only once it has finished.
    pub prune_timeout: GoDuration,
    /// TLS for a `tcp://` daemon: a directory with `ca.pem` (the only CA trusted), `cert.pem`
    /// and `key.pem`. Unset: `DOCKER_CERT_PATH` when `DOCKER_TLS_VERIFY` is set, as the docker
    /// CLI does; else plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<PathBuf>,
    /// Plain HTTP to a daemon on another host lets anyone on the path read and command it, so
    /// such an address is refused unless this is true. Loopback and sockets are always allowed.
    pub allow_plain_tcp: bool,
    /// The largest answer read from a daemon, in bytes: an endless or huge answer is an error,
    /// not memory.
    pub max_answer_bytes: u64,
}

/// The largest answer read when `docker.max_answer_bytes` is not set: 256 MiB, far above the
/// listings of a host with 10,000 images (about 20 MB) and far below the memory of any host.
pub const DEFAULT_MAX_ANSWER: u64 = 256 * 1024 * 1024;

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            host: None,
            read_timeout: GoDuration::parse("30s").expect("valid literal"),
            prune_timeout: GoDuration::parse("30m").expect("valid literal"),
            cert_path: None,
            allow_plain_tcp: false,
            max_answer_bytes: DEFAULT_MAX_ANSWER,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatesConfig {
    pub disk: DiskGateConfig,
    pub live_runs: LiveRunsGateConfig,
    pub converging: ConvergingGateConfig,
    pub grace: GraceGateConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiskGateConfig {
    pub enabled: bool,
    /// A directory on the one filesystem to watch; the same as `paths = [path]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Directories on every filesystem to watch; the fullest decides. Unset (and `path`
    /// unset): the daemon's `DockerRootDir`, plus a system containerd's root on the
    /// containerd image store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<PathBuf>>,
    /// Open when blocks used (as `df` shows it) is at or above this percentage.
    pub used_percent: u8,
    /// Open when inodes used (as `df -i` shows it) is at or above this percentage.
    pub inodes_used_percent: u8,
}

impl Default for DiskGateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            paths: None,
            used_percent: 80,
            inodes_used_percent: 80,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LiveRunsGateConfig {
    pub enabled: bool,
    /// Regular expression (unanchored) over swarm stack and compose project names that marks a
    /// CI run. The default matches every name, so the gate is safe before anyone tunes it.
    pub pattern: String,
}

impl Default for LiveRunsGateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            pattern: ".*".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConvergingGateConfig {
    pub enabled: bool,
}

impl Default for ConvergingGateConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GraceGateConfig {
    pub enabled: bool,
    /// Closed while the host, or the Docker daemon where its start time can be known, has been
    /// up for less than this: a timer catching up at boot must not prune containers that have
    /// not been restarted yet.
    pub min_uptime: GoDuration,
}

impl Default for GraceGateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_uptime: GoDuration::parse("15m").expect("valid literal"),
        }
    }
}

/// The run lock: an exclusive, non-blocking `flock` taken for the whole run. A deploy that
/// holds a shared lock on the same file keeps prunegate out for its duration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LockConfig {
    pub enabled: bool,
    pub path: PathBuf,
}

impl Default for LockConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: PathBuf::from("/run/prunegate/run.lock"),
        }
    }
}

/// Prometheus metrics in the node-exporter textfile format, rewritten after every run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// E.g. /var/lib/prometheus/node-exporter/prunegate.prom. Unset: no metrics file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// The audit log: one JSON line per removed object and per failed prune step, appended, never
/// rotated by prunegate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// E.g. /var/lib/prunegate/audit.jsonl. Unset: no audit log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// Where prunegate keeps what must outlive a run (the cumulative totals behind the metrics).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/lib/prunegate"),
        }
    }
}

/// `prunegate daemon`'s own schedule, for hosts without systemd timers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Cron expression with a seconds field: `sec min hour day-of-month month day-of-week [year]`.
    pub cron: String,
    /// Each run starts after a random extra delay between 0 and this.
    pub random_delay: GoDuration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            cron: "0 */15 * * * *".into(),
            random_delay: GoDuration::parse("0s").expect("valid literal"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PruneConfig {
    /// Only objects older than this are pruned; sent to the daemon as `until`.
    pub older_than: GoDuration,
    pub containers: bool,
    pub images: bool,
    pub build_cache: bool,
}

impl Default for PruneConfig {
    fn default() -> Self {
        Self {
            older_than: GoDuration::parse("24h").expect("valid literal"),
            containers: true,
            images: true,
            build_cache: true,
        }
    }
}

/// A config that could not be used; rendered for the operator, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Where the configuration came from, for the report and `config show`.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub path: PathBuf,
    /// False when the default path was absent and built-in defaults are in force.
    pub file_found: bool,
}

/// Loads the config: `explicit` is `--config` if given. A missing default file means defaults;
/// a missing explicit file is an error, because the operator asked for that file.
pub fn load(explicit: Option<&Path>) -> Result<(Config, Source), ConfigError> {
    let path = explicit.unwrap_or(Path::new(DEFAULT_CONFIG_PATH));
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|e| ConfigError::Invalid {
                path: path.display().to_string(),
                message: format!(
                    "not UTF-8 text (first bad byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            })?;
            let config = parse(&text).map_err(|message| ConfigError::Invalid {
                path: path.display().to_string(),
                message,
            })?;
            Ok((
                config,
                Source {
                    path: path.to_path_buf(),
                    file_found: true,
                },
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => Ok((
            Config::default(),
            Source {
                path: path.to_path_buf(),
                file_found: false,
            },
        )),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses and validates config text. The error names the dotted key at fault.
pub fn parse(text: &str) -> Result<Config, String> {
    let de = toml::Deserializer::new(text);
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().to_string();
        let line = inner
            .span()
            .map(|span| format!(" (line {})", line_of(text, span.start)))
            .unwrap_or_default();
        if key == "." || key.is_empty() {
            format!("{message}{line}")
        } else {
            format!("key `{key}`: {message}{line}")
        }
    })?;
    config.validate()?;
    Ok(config)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

impl Config {
    /// Checks the rules types cannot express. Each message starts with the key it is about.
    /// What has to be parsed — patterns, addresses, the cron expression — is parsed once, where
    /// the settings are derived (`Settings::derive`), and errs there naming its key.
    pub fn validate(&self) -> Result<(), String> {
        let d = &self.gates.disk;
        let r = &self.retention;
        for (key, value) in [
            ("gates.disk.used_percent", d.used_percent),
            ("gates.disk.inodes_used_percent", d.inodes_used_percent),
            ("retention.high_percent", r.high_percent),
            ("retention.low_percent", r.low_percent),
        ] {
            if value > 100 {
                return Err(format!(
                    "key `{key}`: {value} is not a percentage (0 to 100)"
                ));
            }
        }
        if d.path.is_some() && d.paths.is_some() {
            return Err(
                "key `gates.disk.path`: set `gates.disk.path` or `gates.disk.paths`, not both"
                    .to_string(),
            );
        }
        if d.paths.as_ref().is_some_and(Vec::is_empty) {
            return Err(
                "key `gates.disk.paths`: an empty list watches nothing (leave it unset for the \
                 daemon's own paths, or set gates.disk.enabled = false)"
                    .to_string(),
            );
        }
        let one = d.path.iter().map(|p| ("gates.disk.path", p));
        for (key, path) in one.chain(d.paths.iter().flatten().map(|p| ("gates.disk.paths", p))) {
            if !path.is_absolute() {
                return Err(format!(
                    "key `{key}`: {:?} must be an absolute path",
                    path.display().to_string()
                ));
            }
        }
        if r.low_percent >= r.high_percent {
            return Err(format!(
                "key `retention.low_percent`: {} must be below retention.high_percent ({})",
                r.low_percent, r.high_percent
            ));
        }
        if r.min_idle.as_std() < self.prune.older_than.as_std() {
            return Err(format!(
                "key `retention.min_idle`: {} is shorter than prune.older_than ({}): an image \
                 younger than the cut-off is never removed",
                r.min_idle, self.prune.older_than
            ));
        }
        if let Some(p) = self.serve.cert_path.as_ref().filter(|p| !p.is_absolute()) {
            return Err(format!(
                "key `serve.cert_path`: {:?} must be an absolute path",
                p.display().to_string()
            ));
        }
        if let Some(p) = self.docker.cert_path.as_ref().filter(|p| !p.is_absolute()) {
            return Err(format!(
                "key `docker.cert_path`: {:?} must be an absolute path",
                p.display().to_string()
            ));
        }
        if self.docker.max_answer_bytes < 1024 * 1024 {
            return Err(format!(
                "key `docker.max_answer_bytes`: {} is below 1048576 (1 MiB): a daemon's \
                 ordinary answers would be refused",
                self.docker.max_answer_bytes
            ));
        }
        match &self.swarm.cert_path {
            None if !self.swarm.managers.is_empty() => {
                return Err(
                    "key `swarm.cert_path`: required with swarm.managers (a directory \
                     holding ca.pem, cert.pem and key.pem)"
                        .to_string(),
                )
            }
            Some(p) if !p.is_absolute() => {
                return Err(format!(
                    "key `swarm.cert_path`: {:?} must be an absolute path",
                    p.display().to_string()
                ))
            }
            _ => {}
        }
        for (key, value) in [
            ("docker.read_timeout", &self.docker.read_timeout),
            ("docker.prune_timeout", &self.docker.prune_timeout),
        ] {
            if value.is_zero() {
                return Err(format!("key `{key}`: a timeout must be more than 0"));
            }
        }
        for (key, path) in [
            ("lock.path", Some(&self.lock.path)),
            ("metrics.path", self.metrics.path.as_ref()),
            ("audit.path", self.audit.path.as_ref()),
            ("state.dir", Some(&self.state.dir)),
        ] {
            if let Some(p) = path {
                if !p.is_absolute() {
                    return Err(format!(
                        "key `{key}`: {:?} must be an absolute path",
                        p.display().to_string()
                    ));
                }
            }
        }
        if let Some(host) = &self.docker.host {
            crate::address::Address::parse(host).map_err(|e| format!("key `docker.host`: {e}"))?;
        }
        Ok(())
    }

    /// The daemon schedule, or an error naming `schedule.cron`.
    pub fn schedule(&self) -> Result<cron::Schedule, String> {
        self.schedule.cron.parse().map_err(|e| {
            format!(
                "key `schedule.cron`: {:?} is not a cron expression with a seconds field (e.g. \"0 */15 * * * *\"): {e}",
                self.schedule.cron
            )
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config always serializes")
    }
}

/// A `gates.live_runs.pattern` compiled, or an error naming that key.
pub fn live_runs_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern)
        .map_err(|e| format!("key `gates.live_runs.pattern`: not a valid regular expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_all_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        let c = Config::default();
        assert_eq!(c.gates.disk.used_percent, 80);
        assert_eq!(c.prune.older_than.as_str(), "24h");
        assert_eq!(c.gates.live_runs.pattern, ".*");
    }

    #[test]
    fn effective_config_round_trips() {
        let c = parse("[prune]\nolder_than = \"1h\"\nimages = false\n").unwrap();
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err()
    }

    #[test]
    fn errors_name_the_key() {
        assert!(err("[gates.disk]\nused_pct = 3\n").contains("gates.disk"));
        assert!(err("[gates.disk]\nused_pct = 3\n").contains("used_pct"));
        assert!(err("[gates.disk]\nused_percent = \"high\"\n").contains("gates.disk.used_percent"));
        assert!(err("[gates.disk]\nused_percent = 101\n").contains("gates.disk.used_percent"));
        assert!(err("[gates.disk]\nused_percent = 300\n").contains("gates.disk.used_percent"));
        assert!(err("[gates.disk]\npath = \"rel/dir\"\n").contains("gates.disk.path"));
        assert!(
            err("[gates.disk]\npaths = [\"/a\", \"b\"]\n").contains("`gates.disk.paths`: \"b\"")
        );
        assert!(err("[gates.disk]\npaths = []\n").contains("gates.disk.paths"));
        assert!(err("[gates.disk]\npath = \"/a\"\npaths = [\"/b\"]\n").contains("not both"));
        let m = "[swarm]\nmanagers = [\"tcp://10.0.0.1:2376\"]\n";
        assert!(err(m).contains("swarm.cert_path"));
        assert!(err(&format!("{m}cert_path = \"rel\"\n")).contains("absolute"));
        assert!(err("[swarm]\nmanager = []\n").contains("manager"));
        assert!(err("[retention]\nlow_percent = 95\n").contains("retention.low_percent"));
        assert!(err("[retention]\nhigh_percent = 101\n").contains("retention.high_percent"));
        assert!(err("[retention]\nmin_idle = \"1h\"\n").contains("retention.min_idle"));
        assert!(err("[retention]\nkeep_newest = -1\n").contains("retention.keep_newest"));
        assert!(err("[prune]\nolder_than = \"2d\"\n").contains("prune.older_than"));
        assert!(err("[docker]\nread_timeout = \"0s\"\n").contains("docker.read_timeout"));
        assert!(err("[docker]\nhost = \"ftp://x\"\n").contains("docker.host"));
        assert!(err("bogus = 1\n").contains("bogus"));
        assert!(err("[prune\n").contains("line 1"));
        assert!(err("[lock]\npath = \"prunegate.lock\"\n").contains("lock.path"));
        assert!(err("[gates.grace]\nmin_uptime = \"soon\"\n").contains("gates.grace.min_uptime"));
    }
}

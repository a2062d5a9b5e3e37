//! Settings derived once from the configuration: what each layer needs, in the form it uses it
//! (the live-runs pattern compiled, durations as `Duration`, the enabled classes in step order,
//! the address parsed). Runner, planner, gates and sinks take these instead of the whole
//! [`Config`], so a key reaches exactly the code that acts on it, and nothing is re-derived on
//! every re-check.

use crate::address::Address;
use crate::config::{self, Config, LockConfig, Source, StateConfig};
use crate::docker::transport::TlsFiles;
use crate::duration::GoDuration;
use crate::model::Class;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The daemon address in force (`--docker-host`, `docker.host`, `DOCKER_HOST`, default).
    pub address: Address,
    pub read_timeout: Duration,
    pub prune_timeout: Duration,
    /// TLS for a `tcp://` daemon address (`docker.cert_path`, or `DOCKER_CERT_PATH` with
    /// `DOCKER_TLS_VERIFY`); `None`: plain HTTP, or a socket.
    pub tls: Option<TlsFiles>,
    /// `docker.max_answer_bytes`: the bound on every answer from the daemon and the managers.
    pub max_answer: u64,
    /// `[serve]`, when both its keys are set: what `prunegate serve-swarm` needs.
    pub serve: Option<ServeSettings>,
    pub gates: GateSettings,
    pub prune: PruneSettings,
    /// The run lock's path; `None` when `lock.enabled = false`.
    pub lock: Option<PathBuf>,
    pub sinks: SinkSettings,
    pub schedule: ScheduleSettings,
    /// `swarm.managers`, asked (with the client certificates in `swarm.cert_path`) for the
    /// swarm's services and tasks when this node is a worker.
    pub managers: Vec<Address>,
    pub cert_path: Option<PathBuf>,
    /// `[retention]` when `retention.enabled`; `None`: nothing tagged is ever removed.
    pub retention: Option<Retention>,
}

#[derive(Debug, Clone)]
pub struct GateSettings {
    pub disk: DiskGate,
    pub live_runs: LiveRunsGate,
    pub converging: ConvergingGate,
    pub grace: GraceGate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiskGate {
    pub enabled: bool,
    /// `gates.disk.paths` (or `path`); empty: the engine's own paths, known only once `/info`
    /// is read (`Engine::data_paths`).
    pub paths: Vec<PathBuf>,
    pub used_percent: u8,
    pub inodes_used_percent: u8,
}

impl Default for DiskGate {
    fn default() -> Self {
        Self::from(&config::DiskGateConfig::default())
    }
}

impl From<&config::DiskGateConfig> for DiskGate {
    fn from(c: &config::DiskGateConfig) -> Self {
        Self {
            enabled: c.enabled,
            paths: c
                .paths
                .clone()
                .unwrap_or_default()
                .into_iter()
                .chain(c.path.clone())
                .collect(),
            used_percent: c.used_percent,
            inodes_used_percent: c.inodes_used_percent,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LiveRunsGate {
    pub enabled: bool,
    /// The pattern as written, for evidence and messages.
    pub pattern: String,
    /// The same pattern, compiled once.
    pub regex: regex::Regex,
}

impl LiveRunsGate {
    pub fn new(enabled: bool, pattern: &str) -> Result<Self, String> {
        let regex = config::live_runs_regex(pattern)?;
        Ok(Self {
            enabled,
            pattern: pattern.to_string(),
            regex,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvergingGate {
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GraceGate {
    pub enabled: bool,
    pub min_uptime: GoDuration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PruneSettings {
    /// `prune.older_than`: sent verbatim as `until`, and the dry run's cut-off.
    pub older_than: GoDuration,
    /// The enabled classes, in step order.
    pub classes: Vec<Class>,
    /// Whether the build-cache step lists the records before pruning them, so the audit log
    /// can describe each one (a `/system/df` read, worth it only when there is an audit log).
    pub describe_build_cache: bool,
}

impl PruneSettings {
    /// The `until` filter every prune call sends: the duration as written, but `0s` for a bare
    /// `0` — moby's `timetypes.GetTimestamp` reads the string "0" as the Unix time 0, not as a
    /// duration, so `until=0` would keep everything (issue 22's finding).
    pub fn until(&self) -> &str {
        match self.older_than.as_str() {
            "0" => "0s",
            text => text,
        }
    }

    /// Unix seconds at `now` before which an object counts as old enough (the dry run's
    /// cut-off; computed per run, since `prunegate daemon` keeps one settings for many runs).
    pub fn cutoff(&self, now: i64) -> i64 {
        now - self.older_than.as_std().as_secs() as i64
    }
}

/// What the sinks need: where each writes, and the threshold the metrics publish.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSettings {
    pub audit: Option<PathBuf>,
    pub metrics: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub disk_threshold_percent: u8,
}

#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// `schedule.cron` as written, for logs.
    pub cron_text: String,
    pub cron: cron::Schedule,
    pub random_delay: GoDuration,
}

impl Settings {
    /// Derives the settings from a validated config and the address in force. Errors name the
    /// key (they cannot happen after [`Config::validate`], but a derivation never panics).
    pub fn derive(config: &Config, address: Address) -> Result<Settings, String> {
        let g = &config.gates;
        let p = &config.prune;
        let classes = Class::ORDER
            .into_iter()
            .filter(|c| match c {
                Class::Containers => p.containers,
                Class::Images => p.images,
                Class::BuildCache => p.build_cache,
                Class::TaggedImages => config.retention.enabled,
            })
            .collect();
        let cron = config.schedule()?;
        Ok(Settings {
            address,
            read_timeout: config.docker.read_timeout.as_std(),
            prune_timeout: config.docker.prune_timeout.as_std(),
            tls: config.docker.cert_path.clone().map(|dir| TlsFiles { dir }),
            max_answer: config.docker.max_answer_bytes,
            serve: match (&config.serve.listen, &config.serve.cert_path) {
                (Some(listen), Some(dir)) => Some(ServeSettings {
                    listen: listen.parse().map_err(|e| {
                        format!(
                            "key `serve.listen`: {listen:?} is not an address and port like \
                             0.0.0.0:7676: {e}"
                        )
                    })?,
                    tls: TlsFiles { dir: dir.clone() },
                }),
                _ => None,
            },
            gates: GateSettings {
                disk: DiskGate::from(&g.disk),
                live_runs: LiveRunsGate::new(g.live_runs.enabled, &g.live_runs.pattern)?,
                converging: ConvergingGate {
                    enabled: g.converging.enabled,
                },
                grace: GraceGate {
                    enabled: g.grace.enabled,
                    min_uptime: g.grace.min_uptime.clone(),
                },
            },
            prune: PruneSettings {
                older_than: p.older_than.clone(),
                classes,
                describe_build_cache: config.audit.path.is_some(),
            },
            lock: config.lock.enabled.then(|| config.lock.path.clone()),
            managers: config
                .swarm
                .managers
                .iter()
                .map(|m| {
                    let a = Address::parse(m).map_err(|e| format!("key `swarm.managers`: {e}"))?;
                    match a.authority() {
                        Some(_) => Ok(a),
                        None => Err(format!(
                            "key `swarm.managers`: {m:?} must be tcp://host:port (a manager's \
                             prunegate serve-swarm or Engine API, with TLS; a manager node itself \
                             needs no managers)"
                        )),
                    }
                })
                .collect::<Result<_, String>>()?,
            cert_path: config.swarm.cert_path.clone(),
            retention: match config.retention.enabled {
                true => Some(Retention::try_from(&config.retention)?),
                false => None,
            },
            sinks: SinkSettings {
                audit: config.audit.path.clone(),
                metrics: config.metrics.path.clone(),
                state_dir: config.state.dir.clone(),
                disk_threshold_percent: g.disk.used_percent,
            },
            schedule: ScheduleSettings {
                cron_text: config.schedule.cron.clone(),
                cron,
                random_delay: config.schedule.random_delay.clone(),
            },
        })
    }

    /// Loads the config (`explicit` is `--config`), settles the address (`cli_host` is
    /// `--docker-host`) and derives the settings: every failure is a usage error naming the
    /// file, key or flag.
    pub fn load(
        explicit: Option<&Path>,
        cli_host: Option<&str>,
    ) -> Result<(Settings, Config, Source), String> {
        let (config, source) = config::load(explicit).map_err(|e| e.to_string())?;
        let address = Address::resolve(cli_host, config.docker.host.as_deref())?;
        let mut settings = Settings::derive(&config, address)?;
        if settings
            .address
            .is_own_socket(nix::unistd::geteuid().as_raw())
        {
            settings.adopt_user_dirs(
                &config,
                user_dirs(
                    std::env::var_os("XDG_STATE_HOME"),
                    std::env::var_os("HOME"),
                    std::env::var_os("XDG_RUNTIME_DIR"),
                ),
            );
        }
        if settings.tls.is_none() {
            settings.tls = env_tls(
                std::env::var_os("DOCKER_TLS_VERIFY"),
                std::env::var_os("DOCKER_CERT_PATH"),
                std::env::var_os("HOME"),
            );
        }
        refuse_plain_tcp(
            &settings.address,
            settings.tls.as_ref(),
            config.docker.allow_plain_tcp,
        )
        .map_err(|e| {
            let origin = Address::origin(cli_host, config.docker.host.as_deref());
            format!("{}: {e}", origin.key())
        })?;
        Ok((settings, config, source))
    }
}

impl Settings {
    /// For a user's own (rootless) engine, the state directory and the run lock are the
    /// user's, where the config leaves them at the system's defaults (`/var/lib/prunegate`,
    /// `/run/prunegate/run.lock`): those are root's, and the lock a system timer and its deploys
    /// share is about the system's engine, not this one.
    fn adopt_user_dirs(
        &mut self,
        config: &Config,
        (state, lock): (Option<PathBuf>, Option<PathBuf>),
    ) {
        if let Some(dir) = state.filter(|_| config.state.dir == StateConfig::default().dir) {
            self.sinks.state_dir = dir;
        }
        if let Some(path) = lock.filter(|_| config.lock.path == LockConfig::default().path) {
            self.lock = self.lock.take().map(|_| path);
        }
    }
}

/// A user's own state directory and run lock: `$XDG_STATE_HOME/prunegate` (else
/// `~/.local/state/prunegate`, as systemd's `StateDirectory=` of a user unit) and
/// `$XDG_RUNTIME_DIR/prunegate.lock` (the runtime directory is the user's own, 0700, and always
/// there in a session). Only absolute paths are taken.
fn user_dirs(
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
    xdg_runtime_dir: Option<std::ffi::OsString>,
) -> (Option<PathBuf>, Option<PathBuf>) {
    let absolute = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    let state = absolute(xdg_state_home)
        .or_else(|| absolute(home).map(|h| h.join(".local/state")))
        .map(|d| d.join("prunegate"));
    let lock = absolute(xdg_runtime_dir).map(|d| d.join("prunegate.lock"));
    (state, lock)
}

/// `prunegate serve-swarm`'s listening address and certificates (`ca.pem`: the workers' CA).
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub listen: std::net::SocketAddr,
    pub tls: TlsFiles,
}

/// The docker CLI's TLS environment: `DOCKER_TLS_VERIFY` set and not empty means TLS with the
/// certificates in `DOCKER_CERT_PATH` (default `~/.docker`).
fn env_tls(
    verify: Option<std::ffi::OsString>,
    cert_path: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<TlsFiles> {
    verify.filter(|v| !v.is_empty())?;
    let dir = match cert_path.filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(home?).join(".docker"),
    };
    Some(TlsFiles { dir })
}

/// A `tcp://` daemon on another host without TLS is refused unless `docker.allow_plain_tcp`:
/// whoever is on the network path could read it and, through it, command the daemon.
fn refuse_plain_tcp(
    address: &Address,
    tls: Option<&TlsFiles>,
    allowed: bool,
) -> Result<(), String> {
    if address.authority().is_none() || address.is_loopback() || tls.is_some() || allowed {
        return Ok(());
    }
    Err(format!(
        "{address} is plain HTTP to another host: anyone on the way could read the daemon and \
         command it. Use TLS (key `docker.cert_path`, or DOCKER_TLS_VERIFY=1 with \
         DOCKER_CERT_PATH), or set `docker.allow_plain_tcp = true` for a network you trust"
    ))
}

/// `[retention]`, derived once; `None` in the settings when the class is off.
#[derive(Debug, Clone)]
pub struct Retention {
    pub high_percent: u8,
    pub low_percent: u8,
    pub min_idle_secs: i64,
    pub keep: Vec<regex::Regex>,
    pub keep_newest: usize,
    /// `retention.build_bases_kept`: builds need not be read, and hold nothing.
    pub build_bases_kept: bool,
}

impl TryFrom<&crate::config::RetentionConfig> for Retention {
    type Error = String;

    /// Each `keep` pattern compiled, here and only here: one that does not compile is an error
    /// naming it, never dropped (a dropped pattern would let its images go).
    fn try_from(c: &crate::config::RetentionConfig) -> Result<Self, String> {
        Ok(Retention {
            high_percent: c.high_percent,
            low_percent: c.low_percent,
            min_idle_secs: c.min_idle.as_std().as_secs() as i64,
            keep: c
                .keep
                .iter()
                .map(|k| {
                    regex::Regex::new(k)
                        .map_err(|e| format!("key `retention.keep`: {k:?} is not a regex: {e}"))
                })
                .collect::<Result<_, _>>()?,
            keep_newest: c.keep_newest,
            build_bases_kept: c.build_bases_kept,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rootless user's run keeps its state and lock in their directories, unless their config
    /// names others; with the lock disabled it stays disabled.
    #[test]
    fn a_users_own_engine_takes_the_users_state_and_lock_where_the_config_is_silent() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        let dirs = user_dirs(None, os("/home/a"), os("/run/user/1000"));
        assert_eq!(
            dirs,
            (
                Some(PathBuf::from("/home/a/.local/state/prunegate")),
                Some(PathBuf::from("/run/user/1000/prunegate.lock"))
            )
        );
        assert_eq!(
            user_dirs(os("/x/state"), os("/home/a"), os("relative")),
            (Some(PathBuf::from("/x/state/prunegate")), None),
            "XDG_STATE_HOME first; a relative runtime directory is not taken"
        );
        let address = || Address::parse("unix:///run/user/1000/docker.sock").unwrap();
        let mut s = Settings::derive(&Config::default(), address()).unwrap();
        s.adopt_user_dirs(&Config::default(), dirs.clone());
        assert_eq!(
            s.sinks.state_dir,
            PathBuf::from("/home/a/.local/state/prunegate")
        );
        assert_eq!(s.lock, Some(PathBuf::from("/run/user/1000/prunegate.lock")));
        let mut named = Config::default();
        named.state.dir = "/srv/pg".into();
        named.lock.enabled = false;
        let mut s = Settings::derive(&named, address()).unwrap();
        s.adopt_user_dirs(&named, dirs);
        assert_eq!(
            s.sinks.state_dir,
            PathBuf::from("/srv/pg"),
            "the config's own"
        );
        assert_eq!(s.lock, None, "a disabled lock stays disabled");
    }

    #[test]
    fn derived_from_the_defaults() {
        let address = Address::parse("unix:///run/x.sock").unwrap();
        let s = Settings::derive(&Config::default(), address).unwrap();
        // The retention class is a step only when enabled: off by default.
        assert_eq!(s.prune.classes, Class::ORDER[..3]);
        let mut on = Config::default();
        on.retention.enabled = true;
        let s2 = Settings::derive(&on, Address::parse("unix:///run/x.sock").unwrap()).unwrap();
        assert_eq!(s2.prune.classes, Class::ORDER);
        assert_eq!(s.prune.until(), "24h");
        assert_eq!(s.prune.cutoff(100_000), 100_000 - 86_400);
        assert!(!s.prune.describe_build_cache);
        assert!(s.gates.live_runs.regex.is_match("anything"));
        assert_eq!(s.lock, Some(PathBuf::from("/run/prunegate/run.lock")));
        assert_eq!(s.sinks.disk_threshold_percent, 80);
    }

    #[test]
    fn classes_off_and_lock_off_are_left_out() {
        let config = config::parse(
            "[prune]\nimages = false\n[lock]\nenabled = false\n[audit]\npath = \"/a\"\n",
        )
        .unwrap();
        let s = Settings::derive(&config, Address::parse("tcp://h:1").unwrap()).unwrap();
        assert_eq!(s.prune.classes, [Class::Containers, Class::BuildCache]);
        assert_eq!(s.lock, None);
        assert!(s.prune.describe_build_cache);
    }

    #[test]
    fn a_bare_zero_cut_off_is_sent_as_a_duration() {
        for (written, sent) in [("0", "0s"), ("0s", "0s"), ("90m", "90m")] {
            let config = config::parse(&format!("[prune]\nolder_than = \"{written}\"\n")).unwrap();
            let s = Settings::derive(&config, Address::parse("tcp://h:1").unwrap()).unwrap();
            assert_eq!(s.prune.until(), sent, "{written}");
        }
    }

    #[test]
    fn plain_tcp_to_another_host_is_refused_unless_allowed_or_tls() {
        let far = Address::parse("tcp://10.0.0.1:2375").unwrap();
        let err = refuse_plain_tcp(&far, None, false).unwrap_err();
        assert!(err.contains("docker.allow_plain_tcp"), "{err}");
        assert!(refuse_plain_tcp(&far, None, true).is_ok());
        let tls = TlsFiles {
            dir: PathBuf::from("/etc/prunegate/tls"),
        };
        assert!(refuse_plain_tcp(&far, Some(&tls), false).is_ok());
        let near = Address::parse("tcp://127.0.0.1:2375").unwrap();
        assert!(refuse_plain_tcp(&near, None, false).is_ok());
    }

    #[test]
    fn the_docker_clis_tls_environment_is_honoured() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(env_tls(None, os("/c"), os("/root")), None);
        assert_eq!(env_tls(os(""), os("/c"), os("/root")), None);
        assert_eq!(
            env_tls(os("1"), os("/c"), os("/root")),
            Some(TlsFiles {
                dir: PathBuf::from("/c")
            })
        );
        assert_eq!(
            env_tls(os("1"), None, os("/root")),
            Some(TlsFiles {
                dir: PathBuf::from("/root/.docker")
            })
        );
    }

    /// What must be parsed is parsed once, here, and a bad value is an error naming its key —
    /// never dropped (a `retention.keep` pattern dropped would let its images go).
    #[test]
    fn patterns_addresses_and_cron_are_parsed_once_here_and_name_their_key() {
        let err = |text: &str| {
            let config = config::parse(text).expect("the file's own rules pass");
            Settings::derive(&config, Address::parse("unix:///run/x.sock").unwrap()).unwrap_err()
        };
        assert!(err("[retention]\nenabled = true\nkeep = [\"(\"]\n").contains("retention.keep"));
        assert!(err("[gates.live_runs]\npattern = \"(ci\"\n").contains("gates.live_runs.pattern"));
        assert!(err("[schedule]\ncron = \"every 5 minutes\"\n").contains("schedule.cron"));
        assert!(
            err("[swarm]\nmanagers = [\"unix:///run/docker.sock\"]\ncert_path = \"/t\"\n")
                .contains("must be tcp://")
        );
        assert!(
            err("[serve]\nlisten = \"everywhere\"\ncert_path = \"/t\"\n").contains("serve.listen")
        );
    }
}

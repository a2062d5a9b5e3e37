//! Daemon addresses: which one applies, and what it names. Parsed once, where the address is
//! settled; every reader (the API client, the raw reads, the daemon-uptime probe) takes the
//! parsed [`Address`] instead of splitting the string again.

use std::path::Path;

/// The address used when neither `--docker-host`, `docker.host` nor `DOCKER_HOST` says one
/// (and, for a user other than root, no rootless engine of theirs answers: [`user_socket`]).
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Where a rootless engine puts its socket, under the user's runtime directory
/// (`$XDG_RUNTIME_DIR`, else `/run/user/UID`): rootless Docker's `dockerd-rootless.sh`, and
/// Podman's `podman.socket` user unit (and `podman system service` without an address).
pub const USER_SOCKETS: [&str; 2] = ["docker.sock", "podman/podman.sock"];

/// Where the address in force came from, so an error can name what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Config,
    Env,
    /// A rootless engine's socket in the user's runtime directory.
    UserSocket,
    Default,
}

impl Origin {
    /// The flag, key or variable an operator changes to change the address.
    pub fn key(self) -> &'static str {
        match self {
            Origin::Flag => "--docker-host",
            Origin::Config => "docker.host",
            Origin::Env | Origin::Default | Origin::UserSocket => "DOCKER_HOST",
        }
    }
}

/// A daemon address this build can talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    text: String,
    endpoint: Endpoint,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// `unix:///path`: the socket's absolute path.
    Unix(String),
    /// `tcp://host:port` or `http://host:port`: the authority, sent plain HTTP.
    Tcp(String),
}

impl Address {
    /// Checks that `text` is an address this build can talk to, so a typo is a usage error
    /// (exit 2) rather than a runtime failure deep in a run.
    pub fn parse(text: &str) -> Result<Address, String> {
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            format!(
                "{text:?} is not an address like unix:///var/run/docker.sock or tcp://host:2375"
            )
        })?;
        let endpoint = match scheme {
            "unix" if rest.starts_with('/') => Endpoint::Unix(rest.to_string()),
            "unix" => {
                return Err(format!(
                    "{text:?}: a unix socket address needs an absolute path"
                ))
            }
            "tcp" | "http" => {
                let authority = rest.split('/').next().unwrap_or("");
                if authority.is_empty() {
                    return Err(format!(
                        "{text:?}: no host name or address after {scheme}://"
                    ));
                }
                Endpoint::Tcp(authority.to_string())
            }
            other => {
                return Err(format!(
                    "{text:?}: scheme {other:?} is not supported (use unix:// or tcp://; for \
                     ssh, forward the socket with `ssh -L`)"
                ))
            }
        };
        Ok(Address {
            text: text.to_string(),
            endpoint,
        })
    }

    /// Picks the daemon address: the command line, then the config, then `DOCKER_HOST`, then
    /// the local socket. An empty `DOCKER_HOST` counts as unset, as it does for the docker CLI.
    ///
    /// For a user other than root the local socket is their own rootless engine's when exactly
    /// one answers in their runtime directory ([`user_socket`]); two are an error, since which
    /// engine to prune is the operator's to say.
    pub fn resolve(cli: Option<&str>, config: Option<&str>) -> Result<Address, String> {
        let (text, origin) = Self::chosen(cli, config)?;
        Address::parse(&text).map_err(|e| format!("{}: {e}", origin.key()))
    }

    /// Which flag, key or variable the address in force comes from, for errors about it.
    pub fn origin(cli: Option<&str>, config: Option<&str>) -> Origin {
        Self::chosen(cli, config).map_or(Origin::Default, |(_, o)| o)
    }

    /// The address as the precedence picks it, with the user's own socket looked up only
    /// when nothing names one.
    fn chosen(cli: Option<&str>, config: Option<&str>) -> Result<(String, Origin), String> {
        let env = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
        let (text, origin) = pick(cli, config, env);
        if origin != Origin::Default {
            return Ok((text, origin));
        }
        let euid = nix::unistd::geteuid().as_raw();
        let runtime = std::env::var_os("XDG_RUNTIME_DIR");
        Ok(match user_socket(euid, runtime, socket_owner)? {
            Some(own) => (own, Origin::UserSocket),
            None => (text, origin),
        })
    }

    /// Whether this is the local socket of user `euid`'s own engine (a rootless one): a Unix
    /// socket they own, and they are not root.
    pub fn is_own_socket(&self, euid: u32) -> bool {
        euid != 0 && self.socket_path().and_then(socket_owner) == Some(euid)
    }

    /// The address as written: what reports, logs and bollard are given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The socket's path for a `unix://` address.
    pub fn socket_path(&self) -> Option<&Path> {
        match &self.endpoint {
            Endpoint::Unix(p) => Some(Path::new(p)),
            Endpoint::Tcp(_) => None,
        }
    }

    /// `host:port` for a `tcp://` or `http://` address.
    pub fn authority(&self) -> Option<&str> {
        match &self.endpoint {
            Endpoint::Tcp(a) => Some(a),
            Endpoint::Unix(_) => None,
        }
    }

    /// The host of a `tcp://` address, without port or brackets: the name a TLS certificate
    /// must carry.
    pub fn host(&self) -> Option<&str> {
        let authority = self.authority()?;
        if let Some(rest) = authority.strip_prefix('[') {
            return rest.split(']').next();
        }
        Some(authority.rsplit_once(':').map_or(authority, |(h, _)| h))
    }

    /// Whether a `tcp://` address stays on this host (a loopback address or `localhost`):
    /// plain HTTP to it crosses no network.
    pub fn is_loopback(&self) -> bool {
        match self.host() {
            None => true,
            Some("localhost") => true,
            Some(h) => h
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A rootless engine's socket of user `euid`, when nothing names an address: the one of
/// [`USER_SOCKETS`] that exists in their runtime directory (`runtime`, their
/// `$XDG_RUNTIME_DIR`, else `/run/user/EUID`). `None` for root, or when there is none (then
/// the system socket, for a user in the `docker` group). Two are an error naming both, and so
/// is a socket there that another user owns (a runtime directory that is not the user's own,
/// such as a shared one, must not choose the daemon prunegate obeys). `owner` tells a path's
/// owner when it is a socket.
pub fn user_socket(
    euid: u32,
    runtime: Option<std::ffi::OsString>,
    owner: impl Fn(&Path) -> Option<u32>,
) -> Result<Option<String>, String> {
    if euid == 0 {
        return Ok(None);
    }
    let dir = runtime
        .filter(|r| Path::new(r).is_absolute())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| format!("/run/user/{euid}").into());
    let mut found = Vec::new();
    for name in USER_SOCKETS {
        let path = dir.join(name);
        match owner(&path) {
            None => {}
            Some(uid) if uid == euid => found.push(format!("unix://{}", path.display())),
            Some(uid) => {
                return Err(format!(
                    "{} belongs to uid {uid}, not to this user (uid {euid}): not used; set \
                     docker.host (or DOCKER_HOST) to the daemon to prune",
                    path.display()
                ))
            }
        }
    }
    match found.len() {
        0 | 1 => Ok(found.pop()),
        _ => Err(format!(
            "two of this user's engines answer ({}): set docker.host (or DOCKER_HOST) to the \
             one to prune",
            found.join(" and ")
        )),
    }
}

/// The owner of `path` when it is a socket (not following a symbolic link).
fn socket_owner(path: &Path) -> Option<u32> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type().is_socket().then(|| meta.uid())
}

/// The precedence itself, apart from the environment so it can be tested.
fn pick(cli: Option<&str>, config: Option<&str>, env: Option<String>) -> (String, Origin) {
    if let Some(h) = cli {
        (h.to_string(), Origin::Flag)
    } else if let Some(h) = config {
        (h.to_string(), Origin::Config)
    } else if let Some(h) = env {
        (h, Origin::Env)
    } else {
        (DEFAULT_HOST.to_string(), Origin::Default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_checks() {
        let unix = Address::parse("unix:///var/run/docker.sock").unwrap();
        assert_eq!(unix.socket_path(), Some(Path::new("/var/run/docker.sock")));
        let tcp = Address::parse("tcp://127.0.0.1:2375").unwrap();
        assert_eq!(tcp.authority(), Some("127.0.0.1:2375"));
        assert!(Address::parse("unix://relative.sock").is_err());
        assert!(Address::parse("tcp://").is_err());
        assert!(Address::parse("/var/run/docker.sock").is_err());
        assert!(Address::parse("ssh://me@host").unwrap_err().contains("ssh"));
        let host = |a: &str| Address::parse(a).unwrap().host().map(str::to_string);
        assert_eq!(host("tcp://10.0.0.1:2376").as_deref(), Some("10.0.0.1"));
        assert_eq!(host("tcp://[::1]:2376").as_deref(), Some("::1"));
        assert_eq!(host("tcp://manager").as_deref(), Some("manager"));
        let lo = |a: &str| Address::parse(a).unwrap().is_loopback();
        assert!(lo("tcp://127.0.0.1:2375") && lo("tcp://[::1]:2375") && lo("tcp://localhost:1"));
        assert!(lo("unix:///run/docker.sock"));
        assert!(!lo("tcp://10.0.0.1:2375") && !lo("tcp://docker.example:2375"));
    }

    /// A rootless user's timer finds their engine's socket with nothing configured; root and a
    /// user without one keep the system socket; two engines, or a socket another user owns,
    /// are refused rather than guessed.
    #[test]
    fn a_user_other_than_root_finds_their_own_engines_socket() {
        let rt = || Some(std::ffi::OsString::from("/run/user/1000"));
        let owned = |sockets: &'static [(&'static str, u32)]| {
            move |p: &Path| {
                sockets
                    .iter()
                    .find(|(s, _)| p == Path::new(s))
                    .map(|(_, uid)| *uid)
            }
        };
        let docker = &[("/run/user/1000/docker.sock", 1000)];
        assert_eq!(user_socket(0, rt(), owned(docker)), Ok(None), "root");
        assert_eq!(
            user_socket(1000, rt(), owned(docker)),
            Ok(Some("unix:///run/user/1000/docker.sock".into()))
        );
        let podman = &[("/run/user/1000/podman/podman.sock", 1000)];
        assert_eq!(
            user_socket(1000, None, owned(podman)),
            Ok(Some("unix:///run/user/1000/podman/podman.sock".into())),
            "no XDG_RUNTIME_DIR: /run/user/UID"
        );
        assert_eq!(user_socket(1000, rt(), owned(&[])), Ok(None), "none");
        let both = &[
            ("/run/user/1000/docker.sock", 1000),
            ("/run/user/1000/podman/podman.sock", 1000),
        ];
        let e = user_socket(1000, rt(), owned(both)).unwrap_err();
        assert!(
            e.contains("podman.sock") && e.contains("docker.host"),
            "{e}"
        );
        let shared = Some(std::ffi::OsString::from("/tmp"));
        let planted = &[("/tmp/docker.sock", 1001)];
        let e = user_socket(1000, shared, owned(planted)).unwrap_err();
        assert!(e.contains("uid 1001"), "{e}");
        let relative = Some(std::ffi::OsString::from("run"));
        assert_eq!(
            user_socket(1000, relative, owned(docker)),
            Ok(Some("unix:///run/user/1000/docker.sock".into())),
            "a relative XDG_RUNTIME_DIR is not used"
        );
    }

    #[test]
    fn precedence_flag_config_env_default() {
        let env = || Some("tcp://e:1".to_string());
        assert_eq!(
            pick(Some("tcp://a:1"), Some("tcp://b:1"), env()),
            ("tcp://a:1".into(), Origin::Flag)
        );
        assert_eq!(
            pick(None, Some("tcp://b:1"), env()),
            ("tcp://b:1".into(), Origin::Config)
        );
        assert_eq!(pick(None, None, env()), ("tcp://e:1".into(), Origin::Env));
        assert_eq!(
            pick(None, None, None),
            (DEFAULT_HOST.into(), Origin::Default)
        );
    }
}

//! The run's vocabulary, shared by every layer and importing none of them: the commands, the
//! prune classes, what a removed object was, a failed read, the labels that name stacks and
//! compose projects, and how sizes and durations are written for people.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What the operator asked for; decides which gates are judged and whether anything is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Check,
    Run,
    Reclaim,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Check => "check",
            Command::Run => "run",
            Command::Reclaim => "reclaim",
        }
    }
}

/// A kind of object prunegate prunes, in the order the steps run: containers first, so that
/// the images they held are free for the images step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Containers,
    Images,
    BuildCache,
    /// The opt-in retention class (docs/retention.md): cold tagged images. Last in
    /// [`Class::ORDER`], and a step only with `retention.enabled`.
    TaggedImages,
}

/// The three classes a prune step removes, each behind its own engine endpoint (or, for
/// images on Docker, image by image): what the planner predicts and `prune_step` carries out.
/// The fourth class, tagged images, is judged on its own reads and use history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneClass {
    Containers,
    Images,
    BuildCache,
}

impl From<PruneClass> for Class {
    fn from(c: PruneClass) -> Class {
        match c {
            PruneClass::Containers => Class::Containers,
            PruneClass::Images => Class::Images,
            PruneClass::BuildCache => Class::BuildCache,
        }
    }
}

impl Class {
    /// The steps in the order a run takes them.
    pub const ORDER: [Class; 4] = [
        Class::Containers,
        Class::Images,
        Class::BuildCache,
        Class::TaggedImages,
    ];

    /// The prune class this is, or `None` for the retention class.
    pub fn prune(self) -> Option<PruneClass> {
        match self {
            Class::Containers => Some(PruneClass::Containers),
            Class::Images => Some(PruneClass::Images),
            Class::BuildCache => Some(PruneClass::BuildCache),
            Class::TaggedImages => None,
        }
    }
    /// Every class a report can carry, for the metrics' per-class series.
    pub const ALL: [Class; 4] = [
        Class::Containers,
        Class::Images,
        Class::BuildCache,
        Class::TaggedImages,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Containers => "containers",
            Class::Images => "images",
            Class::BuildCache => "build_cache",
            Class::TaggedImages => "tagged_images",
        }
    }
}

/// What an object prunegate removes (or would) was: the id, the size where known, a line for
/// people and the fields an audit needs. The same shape for the dry run's prediction, the real
/// run's report and the audit log, so the three can be compared line by line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub id: String,
    /// Bytes, where the daemon says (a container's writable layer only with `size=true`, which
    /// only the dry run asks for).
    pub size_bytes: Option<u64>,
    pub description: String,
    /// Class-specific fields: container name/image/state; image digests; cache type/description.
    pub what: serde_json::Value,
}

/// A failed read, kept as data so that a gate can say why it is closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadError {
    /// The HTTP status when the daemon answered with an error.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u16>,
    pub message: String,
}

/// The most of a daemon's error message a report, a log line or a metric label carries. Podman
/// 4.3 answers a container prune that raced another with one line per container ("container …
/// does not exist in database"): 1,000 of them made a 170 kB reason.
const MAX_MESSAGE: usize = 600;

impl ReadError {
    /// A failure that is not an answer from the daemon (no connection, bad data).
    pub fn local(message: impl Into<String>) -> Self {
        Self {
            status: None,
            message: message.into(),
        }
    }

    /// The daemon's error answer: its message trimmed, and cut to [`MAX_MESSAGE`] bytes with a
    /// note of how much was left out.
    pub fn answered(status: u16, message: &str) -> Self {
        let message = message.trim();
        let message = if message.len() <= MAX_MESSAGE {
            message.to_string()
        } else {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}… ({} more bytes)", &message[..cut], message.len() - cut)
        };
        Self {
            status: Some(status),
            message,
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(code) => write!(f, "daemon answered {code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A read's result as stored in a snapshot: serialisable so that snapshots captured from a real
/// daemon can be replayed by the gates' unit tests.
pub type Read<T> = Result<T, ReadError>;

/// The label swarm puts on a stack's services and task containers.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";
/// The label Compose puts on a project's containers.
pub const COMPOSE_LABEL: &str = "com.docker.compose.project";

/// `999 B`, `1.5 MB`: decimal units, as the docker CLI prints sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `30s`, `30m`, `53m10s`, `2h5m`: for messages, in Docker's duration syntax.
pub fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 && h == 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// A file under `tests/fixtures/` (answers captured from real daemons), for unit tests;
/// panics naming the path when it cannot be read.
#[cfg(test)]
pub fn fixture(path: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemons_long_error_is_cut_and_says_so() {
        let line = "container 3e1c does not exist in database: no such container; ";
        let e = ReadError::answered(500, &line.repeat(1000));
        assert_eq!(e.status, Some(500));
        assert!(e.message.len() < 700, "{}", e.message.len());
        assert!(e
            .message
            .ends_with(&format!("({} more bytes)", line.len() * 1000 - 1 - 600)));
        let short = ReadError::answered(409, " a prune operation is already running\n");
        assert_eq!(short.message, "a prune operation is already running");
        // Never cut inside a character.
        assert!(ReadError::answered(500, &"é".repeat(400))
            .message
            .contains('…'));
    }

    #[test]
    fn durations_read_like_docker_durations() {
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
        assert_eq!(humanize(Duration::from_secs(30)), "30s");
        assert_eq!(humanize(Duration::from_secs(1800)), "30m");
        assert_eq!(humanize(Duration::from_secs(3190)), "53m10s");
        assert_eq!(humanize(Duration::from_secs(7_500)), "2h5m");
        assert_eq!(humanize(Duration::from_secs(86_400)), "24h");
    }

    #[test]
    fn bytes_are_readable() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
    }
}

/// Set by SIGTERM/SIGINT. Steps check it only between steps (and between images in a step that
/// deletes one by one), so a decision is never cut in half and a prune the daemon has started
/// is allowed to finish. A *read* in flight is cut at once ([`Interrupt::wait`] in the
/// transport): it changes nothing, and a daemon that never answers must not keep a stopping
/// run for the whole read timeout.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    raised: std::sync::Arc<std::sync::atomic::AtomicBool>,
    notify: std::sync::Arc<tokio::sync::Notify>,
}

impl Interrupt {
    pub fn raise(&self) {
        self.raised.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn raised(&self) -> bool {
        self.raised.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Returns once the interrupt is raised (at once if it already is).
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.raised() {
                return;
            }
            notified.await;
        }
    }
}

//! Durations in Docker's own syntax.
//!
//! The prune cut-off is sent to the daemon verbatim as the `until` filter, and the daemon parses
//! it with Go's `time.ParseDuration`. Accepting any other syntax (`2d`, `1 hour`) here would mean
//! either rewriting what the operator wrote or having the daemon reject it mid-run, so the config
//! accepts exactly Go's syntax (`300ms`, `90s`, `45m`, `1h30m`, `24h`) for every duration key.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A non-negative duration that remembers the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoDuration {
    text: String,
    nanos: u64,
}

impl GoDuration {
    /// Parses Go's duration syntax; negative values are refused because a negative cut-off or
    /// timeout is always a typo in this tool's config.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("empty duration; write e.g. \"24h\", \"90m\" or \"30s\"".into());
        }
        let nanos = go_parse_duration::parse_duration(trimmed).map_err(|_| {
            format!(
                "{text:?} is not a duration in Docker's syntax (units ns, us, ms, s, m, h; \
                 e.g. \"24h\", \"1h30m\"; there is no \"d\")"
            )
        })?;
        if nanos < 0 {
            return Err(format!(
                "{text:?} is negative; a duration here must be 0 or more"
            ));
        }
        Ok(Self {
            text: trimmed.to_string(),
            nanos: nanos as u64,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn as_std(&self) -> Duration {
        Duration::from_nanos(self.nanos)
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        GoDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_go_syntax() {
        assert_eq!(
            GoDuration::parse("24h").unwrap().as_std(),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            GoDuration::parse("1h30m").unwrap().as_std(),
            Duration::from_secs(5_400)
        );
        assert_eq!(
            GoDuration::parse("1.5h").unwrap().as_std(),
            Duration::from_secs(5_400)
        );
        assert_eq!(
            GoDuration::parse("250ms").unwrap().as_std(),
            Duration::from_millis(250)
        );
        assert!(GoDuration::parse("0s").unwrap().is_zero());
        assert_eq!(GoDuration::parse(" 5m ").unwrap().as_str(), "5m");
    }

    #[test]
    fn refuses_other_syntaxes_and_negatives() {
        for bad in ["", "2d", "1 hour", "24", "h", "-1h", "1h-", "abc"] {
            assert!(GoDuration::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}

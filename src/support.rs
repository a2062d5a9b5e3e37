//! Which daemons prunegate can ask to prune what, given the filters it must send.
//!
//! A daemon that does not know a filter either refuses it (400 "invalid filter", turned into a
//! skipped step by the runner) or, worse, ignores it. Docker before 18.09 (API 1.39) takes no
//! filters on `POST /build/prune` at all: it would remove every unused build-cache record, young
//! ones too. So on those daemons the build-cache step is skipped before it is sent.

use crate::plan::Class;

/// Major and minor of a Docker engine version (`18.06.3-ce`, `20.10.24`, `29.0.1`); `None` for
/// anything else (Podman and other compatible servers number their own versions).
fn docker_release(server_version: &str) -> Option<(u32, u32)> {
    let mut parts = server_version.split(['.', '-', '+']);
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    // Docker's year-based versions began at 17.03.
    (17..100).contains(&major).then_some((major, minor))
}

/// Why `class` must not be pruned on a daemon reporting `server_version`, if it must not.
pub fn refuse(class: Class, server_version: Option<&str>) -> Option<String> {
    let version = server_version?;
    let release = docker_release(version)?;
    (class == Class::BuildCache && release < (18, 9)).then(|| {
        format!(
            "Docker {version} ignores filters on build-cache prune (before 18.09, API 1.39): \
             it would remove build cache younger than the cut-off"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_cache_is_refused_only_before_18_09() {
        assert!(refuse(Class::BuildCache, Some("18.06.3-ce"))
            .unwrap()
            .contains("18.06.3-ce"));
        assert!(refuse(Class::BuildCache, Some("17.12.1-ce")).is_some());
        for ok in ["18.09.0", "20.10.24", "29.0.1", "4.3.1", "weird", ""] {
            assert_eq!(refuse(Class::BuildCache, Some(ok)), None, "{ok}");
        }
        assert_eq!(refuse(Class::BuildCache, None), None);
        assert_eq!(refuse(Class::Containers, Some("17.03.0-ce")), None);
    }
}

//! The filters each prune sends, explicit every time (`until` always, `dangling=true` on images
//! always) so that the daemon's defaults can never widen what is removed. The dry run's list on
//! the containerd image store sends the image prune's own, to get the prune's own answer.

use std::collections::HashMap;

pub fn container_filters(until: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("until".to_string(), vec![until.to_string()])])
}

pub fn image_filters(until: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([
        ("dangling".to_string(), vec!["true".to_string()]),
        ("until".to_string(), vec![until.to_string()]),
    ])
}

/// No `label` filter: the CLI path that ignores it would remove everything.
pub fn build_cache_filters(until: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("until".to_string(), vec![until.to_string()])])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_always_dangling_only() {
        let f = image_filters("24h");
        assert_eq!(f["dangling"], vec!["true"]);
        assert_eq!(f["until"], vec!["24h"]);
        assert!(!container_filters("1h").contains_key("dangling"));
        assert!(!build_cache_filters("1h").contains_key("label"));
    }
}

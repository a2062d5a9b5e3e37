//! [`Candidate`]s from what the daemon lists: built the same way for the dry run's prediction,
//! the real run's report and the audit log, so the three describe an object alike.

use super::inventory::BuildCacheRecord;
use crate::model::Candidate;
use bollard::models::{ContainerSummary, ImageSummary};
use serde_json::json;

fn size(n: Option<i64>) -> Option<u64> {
    n.filter(|n| *n >= 0).map(|n| n as u64)
}

/// `sized`: whether the listing was made with `size=true`; the daemon then omits a zero
/// `SizeRw`, so a missing size means 0 rather than unknown.
pub fn container(c: &ContainerSummary, sized: bool) -> Candidate {
    let name = c
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map_or("?", |n| n.trim_start_matches('/'));
    let state = c.state.map_or("?".to_string(), |s| s.to_string());
    let image = c.image.as_deref().unwrap_or("?");
    Candidate {
        id: c.id.clone().unwrap_or_default(),
        size_bytes: size(c.size_rw.or(if sized { Some(0) } else { None })),
        description: format!("container {name} ({state}, image {image})"),
        what: json!({
            "name": name,
            "image": image,
            "image_id": c.image_id,
            "state": state,
            "created": c.created,
        }),
    }
}

pub fn image(i: &ImageSummary) -> Candidate {
    let digests: Vec<&str> = crate::engine::digests(&i.repo_digests).collect();
    Candidate {
        id: i.id.clone(),
        size_bytes: size(Some(i.size)),
        description: if digests.is_empty() {
            "untagged image".to_string()
        } else {
            format!("untagged image, was {}", digests.join(", "))
        },
        what: json!({ "repo_digests": digests, "created": i.created }),
    }
}

pub fn build_cache(r: &BuildCacheRecord) -> Candidate {
    Candidate {
        id: r.id.clone(),
        size_bytes: size(Some(r.size)),
        description: format!("{} build cache: {}", r.kind, r.description),
        what: json!({
            "type": r.kind,
            "description": r.description,
            "last_used_at": r.last_used_at,
        }),
    }
}

/// An object the daemon reported removed that was not in the listing read just before.
pub fn unknown(id: String, kind: &str) -> Candidate {
    Candidate {
        id,
        size_bytes: None,
        description: format!("{kind} (not listed before the prune)"),
        what: serde_json::Value::Null,
    }
}

//! The retention class's oracle, written from its documented rules (docs/retention.md), not
//! from `src/retention.rs`: which tagged images a run may remove, in which order, and how many
//! of them bring the projected disk to the low watermark. Pure: unit-tested below on hand-made
//! data.

use super::oracle::{Container, Image};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The `[retention]` keys a world runs with.
pub struct Policy {
    pub high: u8,
    pub low: u8,
    pub min_idle_secs: i64,
    pub keep: Vec<regex::Regex>,
    pub keep_newest: usize,
}

/// The watched filesystem, in bytes as `df` counts them.
#[derive(Debug, Clone, Copy)]
pub struct Disk {
    pub used: u64,
    pub available: u64,
}

impl Disk {
    /// Use% as `df` prints it: rounded up.
    pub fn percent(self) -> u64 {
        let total = self.used + self.available;
        (self.used * 100).div_ceil(total.max(1))
    }

    /// The same filesystem with `bytes` more of it free.
    pub fn less(self, bytes: u64) -> Disk {
        let b = bytes.min(self.used);
        Disk {
            used: self.used - b,
            available: self.available + b,
        }
    }
}

/// What the class must know of a world before the run.
pub struct Seen<'a> {
    pub images: &'a [Image],
    pub containers: &'a [Container],
    /// Tags the swarm's services and their tasks name.
    pub swarm_tags: &'a BTreeSet<String>,
    /// The use history the run starts from: image id → first seen, last used.
    pub history: &'a BTreeMap<String, (i64, Option<i64>)>,
    /// When the runs took place (Unix seconds); the history keeps its times far from
    /// `min_idle`'s boundary.
    pub now: i64,
}

/// Every tagged image, judged.
#[derive(Debug, Default)]
pub struct Judged {
    /// The eligible images, least recently used first, with what each frees.
    pub eligible: Vec<(String, u64)>,
    /// The others, with the protection that keeps each.
    pub protected: BTreeMap<String, String>,
}

/// `repository` of `repository:tag` (a registry's port is not a tag).
fn repository(tag: &str) -> &str {
    match tag.rfind(':') {
        Some(i) if !tag[i..].contains('/') => &tag[..i],
        _ => tag,
    }
}

/// The protections of docs/retention.md, "What it never removes", then the order.
pub fn judge(s: &Seen, p: &Policy) -> Judged {
    let tagged: Vec<&Image> = s.images.iter().filter(|i| !i.tags.is_empty()).collect();
    let users: BTreeMap<&str, &str> = s
        .containers
        .iter()
        .map(|c| (c.image_id.as_str(), c.name.as_str()))
        .collect();
    let mut by_repository: BTreeMap<&str, Vec<&Image>> = BTreeMap::new();
    for i in &tagged {
        let repositories: BTreeSet<&str> = i.tags.iter().map(|t| repository(t)).collect();
        for r in repositories {
            by_repository.entry(r).or_default().push(i);
        }
    }
    let mut newest = BTreeSet::new();
    for (_, mut list) in by_repository {
        list.sort_by_key(|i| std::cmp::Reverse(i.created));
        newest.extend(list.iter().take(p.keep_newest).map(|i| i.id.as_str()));
    }
    let mut j = Judged::default();
    let mut idle: Vec<(i64, &Image)> = Vec::new();
    for i in &tagged {
        let id = i.id.as_str();
        let kept = if let Some(c) = users.get(id) {
            Some(format!("used by container {c}"))
        } else if i.tags.iter().any(|t| s.swarm_tags.contains(t)) {
            Some("named by a swarm service".to_string())
        } else if let Some(t) = i.tags.iter().find(|t| p.keep.iter().any(|k| k.is_match(t))) {
            Some(format!("{t} matches keep"))
        } else if newest.contains(id) {
            Some("among the keep_newest of its repository".to_string())
        } else if i.unique_bytes.is_none() {
            Some("no size in /system/df".to_string())
        } else {
            match s.history.get(id) {
                None => Some("not in the history: first seen at the run".to_string()),
                Some((first, last)) => {
                    let since = last.unwrap_or(*first).max(*first);
                    if s.now - since < p.min_idle_secs {
                        Some("used or first seen within min_idle".to_string())
                    } else {
                        idle.push((since, i));
                        None
                    }
                }
            }
        };
        if let Some(why) = kept {
            j.protected.insert(i.id.clone(), why);
        }
    }
    // A base of an image that stays (its layers a prefix of that image's) stays too.
    let staying: Vec<&&Image> = tagged
        .iter()
        .filter(|i| j.protected.contains_key(&i.id))
        .collect();
    idle.retain(|(_, i)| {
        let base_of = staying
            .iter()
            .find(|s| s.id != i.id && !i.layers.is_empty() && s.layers.starts_with(&i.layers));
        if let Some(s) = base_of {
            j.protected
                .insert(i.id.clone(), format!("a base of {}, which stays", s.id));
            return false;
        }
        // Removing it would free nothing (every layer it has is another image's too): it
        // stays, its tag kept (docs/retention.md).
        if i.unique_bytes == Some(0) {
            j.protected
                .insert(i.id.clone(), "removing it frees nothing".to_string());
            return false;
        }
        true
    });
    idle.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    j.eligible = idle
        .into_iter()
        .map(|(_, i)| (i.id.clone(), i.unique_bytes.unwrap_or_default()))
        .collect();
    j
}

/// The images a step removes on `disk`: none below `high`; else, in order, each while the
/// projected use (the disk less what the images before it free) is above `low`.
pub fn select(eligible: &[(String, u64)], disk: Disk, p: &Policy) -> Vec<String> {
    if disk.percent() < u64::from(p.high) {
        return Vec::new();
    }
    let mut d = disk;
    let mut out = Vec::new();
    for (id, bytes) in eligible {
        if d.percent() <= u64::from(p.low) {
            break;
        }
        d = d.less(*bytes);
        out.push(id.clone());
    }
    out
}

/// A report's `tagged_images` step, if it has one.
pub fn step(report: &Value) -> Option<&Value> {
    report["steps"]
        .as_array()?
        .iter()
        .find(|s| s["class"] == "tagged_images")
}

/// The ids a step lists, in its order: `items`, or the objects under `may_also_remove`.
pub fn listed(step: Option<&Value>, key: &str) -> Vec<String> {
    step.and_then(|s| s[key].as_array())
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().or_else(|| v["id"].as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str, tags: &[&str], created: i64, layers: &[&str], unique: u64) -> Image {
        Image {
            id: id.into(),
            parent: String::new(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            created,
            dangling_since: None,
            digests: Vec::new(),
            superseded: false,
            layers: layers.iter().map(|l| l.to_string()).collect(),
            unique_bytes: Some(unique),
        }
    }

    fn policy(keep: &[&str], keep_newest: usize) -> Policy {
        Policy {
            high: 90,
            low: 80,
            min_idle_secs: 3_600,
            keep: keep.iter().map(|k| regex::Regex::new(k).unwrap()).collect(),
            keep_newest,
        }
    }

    const NOW: i64 = 100_000;

    #[test]
    fn each_protection_and_the_order() {
        let images = [
            img("base", &["a:base"], 1, &["L0"], 0),
            img("used", &["a:u"], 2, &["L0", "u"], 10),
            img("kept", &["a:k", "x:old"], 3, &["L0", "k"], 10),
            img("new", &["a:2"], 9, &["L0", "a2"], 10),
            img("old-a", &["a:1"], 5, &["L0", "a1"], 10),
            img("older-a", &["a:0"], 4, &["L0", "a0"], 10),
            img("recent", &["a:r"], 6, &["L0", "r"], 10),
            img("dangling", &[], 1, &["L0", "d"], 10),
            img("unknown", &["a:n"], 7, &["L0", "n"], 10),
        ];
        let containers = [Container {
            id: "c".into(),
            name: "user".into(),
            state: "exited".into(),
            created: 1,
            image_id: "used".into(),
        }];
        let old = NOW - 7_200;
        let history: BTreeMap<String, (i64, Option<i64>)> = [
            ("base", (1, None)),
            ("used", (1, None)),
            ("kept", (1, None)),
            ("new", (1, None)),
            ("old-a", (1, Some(old))),
            ("older-a", (old - 5, None)),
            ("recent", (1, Some(NOW - 60))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let seen = Seen {
            images: &images,
            containers: &containers,
            swarm_tags: &BTreeSet::new(),
            history: &history,
            now: NOW,
        };
        let j = judge(&seen, &policy(&["^x:"], 1));
        let ids: Vec<&str> = j.eligible.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(ids, ["older-a", "old-a"]);
        let why = |id: &str| j.protected[id].clone();
        assert!(why("used").contains("used by container user"));
        assert!(why("kept").contains("x:old matches keep"));
        assert!(why("new").contains("keep_newest"));
        assert!(why("recent").contains("min_idle"));
        assert!(why("unknown").contains("not in the history"));
        assert!(why("base").contains("a base of"), "{:?}", j.protected);
        assert!(!j.protected.contains_key("dangling"));
        // Without keep_newest, `new` is first seen long ago too: eligible, after the others.
        let j = judge(&seen, &policy(&["^x:"], 0));
        let ids: Vec<&str> = j.eligible.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(ids, ["new", "older-a", "old-a"]);
        // The swarm's tag keeps its image.
        let swarm = BTreeSet::from(["a:1".to_string()]);
        let j = judge(
            &Seen {
                swarm_tags: &swarm,
                ..seen
            },
            &policy(&[], 1),
        );
        assert!(j.protected["old-a"].contains("swarm"));
    }

    #[test]
    fn the_watermarks() {
        let p = policy(&[], 0);
        let eligible: Vec<(String, u64)> = (0..5).map(|n| (format!("i{n}"), 30)).collect();
        // 95% of 1000: each image frees 3%; 95 → 92 → 89 → 86 → 83 → 80.
        let disk = Disk {
            used: 950,
            available: 50,
        };
        assert_eq!(select(&eligible, disk, &p).len(), 5);
        assert_eq!(select(&eligible[..2], disk, &p).len(), 2);
        // At 89%: below high, nothing.
        assert!(select(&eligible, disk.less(60), &p).is_empty());
        // At 90% exactly: three images bring it to 81, 81 > 80: four.
        assert_eq!(select(&eligible, disk.less(50), &p).len(), 4);
        // Rounded up as df does: 80.1% is 81%.
        assert_eq!(
            Disk {
                used: 801,
                available: 199
            }
            .percent(),
            81
        );
    }
}

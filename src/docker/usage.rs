//! What `docker system df` knows — tagged images and volumes for the advisory (read after a
//! full pass that left the disk over the threshold, to say how much space is held by what
//! prunegate never removes), build-cache records for the dry run and the retention class — and
//! the one decoder of its two shapes. A raw read, since bollard 0.21 cannot decode the API 1.41
//! shape. Plain data: what counts as unused is the report's business.

use super::Daemon;
use crate::model::ReadError;
use serde::{Deserialize, Serialize};

/// Images, volumes and build-cache records as `/system/df` lists them, whichever shape the
/// daemon answers in.
#[derive(Debug, Default)]
pub struct DiskUsage {
    pub images: Option<Vec<ImageUsage>>,
    pub volumes: Option<Vec<VolumeUsage>>,
    pub build_cache: Option<Vec<BuildCacheRecord>>,
}

/// One build-cache record, decoded from either the API ≤ 1.51 shape or the 1.52 one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildCacheRecord {
    #[serde(rename = "ID")]
    pub id: String,
    /// API 1.41 has a single `Parent`; 1.42+ a `Parents` list.
    #[serde(rename = "Parent", default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(rename = "Parents", default, skip_serializing_if = "Option::is_none")]
    pub parents: Option<Vec<String>>,
    #[serde(rename = "Type", default)]
    pub kind: String,
    #[serde(rename = "Description", default)]
    pub description: String,
    #[serde(rename = "InUse", default)]
    pub in_use: bool,
    #[serde(rename = "Shared", default)]
    pub shared: bool,
    #[serde(rename = "Size", default)]
    pub size: i64,
    #[serde(rename = "CreatedAt", default)]
    pub created_at: Option<String>,
    #[serde(rename = "LastUsedAt", default)]
    pub last_used_at: Option<String>,
}

impl BuildCacheRecord {
    /// When the record was last used, else made, as the daemon wrote it (RFC 3339); `None` when
    /// neither time parses. The dry run ages records by it, the retention class dates builds.
    pub fn last_used(&self) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        let parse = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        };
        parse(&self.last_used_at).or_else(|| parse(&self.created_at))
    }
}

/// Both shapes: the legacy lists `Images`, `Volumes` and `BuildCache` (API 1.41 to 1.52), and
/// `ImageUsage.Items`, `VolumeUsage.Items` and `BuildCacheUsage.Items` (1.52 on, listed only
/// with `verbose=1`; 1.53 drops the legacy ones — moby's API version history).
#[derive(Debug, Default, Deserialize)]
struct Raw {
    #[serde(rename = "Images", default)]
    images: Option<Vec<ImageUsage>>,
    #[serde(rename = "Volumes", default)]
    volumes: Option<Vec<VolumeUsage>>,
    #[serde(rename = "ImageUsage", default)]
    image_usage: Option<Items<ImageUsage>>,
    #[serde(rename = "VolumeUsage", default)]
    volume_usage: Option<Items<VolumeUsage>>,
    #[serde(rename = "BuildCache", default)]
    build_cache: Option<Vec<BuildCacheRecord>>,
    #[serde(rename = "BuildCacheUsage", default)]
    build_cache_usage: Option<Items<BuildCacheRecord>>,
}

#[derive(Debug, Deserialize)]
struct Items<T> {
    #[serde(rename = "Items", default = "Option::default")]
    items: Option<Vec<T>>,
}

/// Decodes a `/system/df` answer of any API version from 1.41 to 1.53.
pub fn decode(body: &[u8]) -> Result<DiskUsage, String> {
    let raw: Raw = serde_json::from_slice(body).map_err(|e| format!("decoding /system/df: {e}"))?;
    Ok(DiskUsage {
        images: raw.images.or(raw.image_usage.and_then(|u| u.items)),
        volumes: raw.volumes.or(raw.volume_usage.and_then(|u| u.items)),
        build_cache: raw
            .build_cache
            .or(raw.build_cache_usage.and_then(|u| u.items)),
    })
}

#[derive(Debug, Deserialize)]
pub struct ImageUsage {
    #[serde(rename = "Id", default)]
    pub id: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Containers", default)]
    pub containers: i64,
    #[serde(rename = "Size", default)]
    pub size: i64,
    #[serde(rename = "SharedSize", default)]
    pub shared_size: i64,
}

#[derive(Debug, Deserialize)]
pub struct VolumeUsage {
    #[serde(rename = "UsageData", default)]
    pub usage: Option<VolumeUsageData>,
}

#[derive(Debug, Deserialize)]
pub struct VolumeUsageData {
    #[serde(rename = "Size", default)]
    pub size: i64,
    #[serde(rename = "RefCount", default)]
    pub ref_count: i64,
}

impl Daemon {
    pub async fn disk_usage(&self) -> Result<DiskUsage, ReadError> {
        // Not `type=`-restricted (1.42 on): Debian 12's 20.10 takes none. `verbose=1` makes
        // API 1.52+ list the items; older daemons ignore it.
        let body = self.raw_get("/system/df?verbose=1").await?;
        decode(&body).map_err(ReadError::local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_legacy_and_the_api_1_53_shapes_alike() {
        // API 1.41 (Docker 20.10): legacy lists only.
        let legacy = br#"{"LayersSize":1,"Images":[{"RepoTags":["a:1"],"Containers":0,"Size":5,"SharedSize":0}],
            "Volumes":[{"Name":"v","UsageData":{"Size":7,"RefCount":0}}],"Containers":[],"BuildCache":[]}"#;
        // API 1.53 (Docker 29) with verbose=1: summaries with items, no legacy lists.
        let new = br#"{"ImageUsage":{"ActiveCount":0,"TotalCount":1,"Reclaimable":5,"TotalSize":5,
            "Items":[{"RepoTags":["a:1"],"Containers":0,"Size":5,"SharedSize":0}]},
            "VolumeUsage":{"ActiveCount":0,"TotalCount":1,"Reclaimable":7,"TotalSize":7,
            "Items":[{"Name":"v","UsageData":{"Size":7,"RefCount":0}}]},
            "ContainerUsage":{"TotalSize":0},"BuildCacheUsage":{"TotalSize":0}}"#;
        for body in [&legacy[..], &new[..]] {
            let du = decode(body).unwrap();
            let images = du.images.unwrap();
            assert_eq!(
                images[0].repo_tags.as_deref(),
                Some(&["a:1".to_string()][..])
            );
            assert_eq!(images[0].size, 5);
            assert_eq!(du.volumes.unwrap()[0].usage.as_ref().unwrap().size, 7);
        }
        // 1.52+ without verbose: summaries only, no items — nothing to list, not an error.
        let bare =
            decode(br#"{"ImageUsage":{"TotalSize":5},"VolumeUsage":{"TotalSize":7}}"#).unwrap();
        assert!(bare.images.is_none() && bare.volumes.is_none());
    }

    /// Docker 29.7.2's own answers (API 1.55; `tests/fixtures/docker_29.7.2_*`, captured from
    /// a private daemon of either store): `/system/df?verbose=1` lists its images under
    /// `ImageUsage.Items` only, and the build cache under `BuildCacheUsage.Items`, with the
    /// last use a build leaves.
    #[test]
    fn reads_docker_29s_captured_answers() {
        for (store, records) in [("containerd", 7), ("classic", 9)] {
            let read = |f: &str| crate::model::fixture(&format!("docker_29.7.2_{store}/{f}"));
            let du = decode(&read("system_df.json")).unwrap();
            let images = du.images.unwrap();
            let mut tags: Vec<String> = images
                .iter()
                .flat_map(|i| i.repo_tags.clone().unwrap_or_default())
                .collect();
            tags.sort();
            assert_eq!(
                tags,
                ["cap-app:1", "cap-base:1", "cap-base:other"],
                "{store}"
            );
            assert!(images.iter().all(|i| i.size > 0), "{store}");
            let cache = crate::docker::inventory::decode_build_cache(&read("build_cache.json"));
            let cache = cache.unwrap();
            assert_eq!(cache.len(), records, "{store}");
            assert!(cache.iter().all(|r| r.last_used().is_some()), "{store}");
            assert_eq!(du.build_cache.map(|c| c.len()), Some(records), "{store}");
        }
    }
}

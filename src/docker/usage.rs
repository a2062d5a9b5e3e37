//! What `docker system df` knows about tagged images and volumes, for the advisory only: read
//! after a full pass that left the disk over the threshold, to say how much space is held by
//! what prunegate never removes. A raw read, since bollard 0.21 cannot decode the API 1.41 shape.

use super::{Daemon, ReadError};
use crate::report::Advisory;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct DiskUsage {
    #[serde(rename = "Images", default)]
    pub images: Option<Vec<ImageUsage>>,
    #[serde(rename = "Volumes", default)]
    pub volumes: Option<Vec<VolumeUsage>>,
}

#[derive(Debug, Deserialize)]
pub struct ImageUsage {
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

impl DiskUsage {
    /// Tagged images with no container, by their unshared size; volumes with no reference.
    pub fn advisory(&self, disk_used_percent_after: Option<u8>) -> Advisory {
        let unused_images: Vec<&ImageUsage> = self
            .images
            .iter()
            .flatten()
            .filter(|i| i.containers == 0)
            .filter(|i| i.repo_tags.iter().flatten().any(|t| t != "<none>:<none>"))
            .collect();
        let unused_volumes: Vec<&VolumeUsageData> = self
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.usage.as_ref())
            .filter(|u| u.ref_count == 0)
            .collect();
        Advisory {
            disk_used_percent_after,
            unused_tagged_images: unused_images.len(),
            unused_tagged_images_bytes: unused_images
                .iter()
                .map(|i| (i.size - i.shared_size.max(0)).max(0) as u64)
                .sum(),
            unused_volumes: unused_volumes.len(),
            unused_volumes_bytes: unused_volumes.iter().map(|u| u.size.max(0) as u64).sum(),
        }
    }
}

impl Daemon {
    pub async fn disk_usage(&self) -> Result<DiskUsage, ReadError> {
        let body = self.raw_get("/system/df").await?;
        serde_json::from_slice(&body).map_err(|e| ReadError {
            status: None,
            message: format!("decoding /system/df: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_unused_tagged_images_and_unreferenced_volumes() {
        let du: DiskUsage = serde_json::from_str(
            r#"{"Images":[
                {"RepoTags":["base:1"],"Containers":1,"Size":100,"SharedSize":0},
                {"RepoTags":["cache:1"],"Containers":0,"Size":100,"SharedSize":40},
                {"RepoTags":["<none>:<none>"],"Containers":0,"Size":7,"SharedSize":0}],
               "Volumes":[{"UsageData":{"Size":10,"RefCount":0}},{"UsageData":{"Size":99,"RefCount":1}}]}"#,
        )
        .unwrap();
        let a = du.advisory(Some(91));
        assert_eq!(
            (a.unused_tagged_images, a.unused_tagged_images_bytes),
            (1, 60)
        );
        assert_eq!((a.unused_volumes, a.unused_volumes_bytes), (1, 10));
    }
}

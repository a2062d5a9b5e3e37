//! What `docker system df` knows about tagged images and volumes, for the advisory only: read
//! after a full pass that left the disk over the threshold, to say how much space is held by
//! what prunegate never removes. A raw read, since bollard 0.21 cannot decode the API 1.41
//! shape. Plain data: what counts as unused is the report's business.

use super::Daemon;
use crate::model::ReadError;
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

impl Daemon {
    pub async fn disk_usage(&self) -> Result<DiskUsage, ReadError> {
        let body = self.raw_get("/system/df").await?;
        serde_json::from_slice(&body)
            .map_err(|e| ReadError::local(format!("decoding /system/df: {e}")))
    }
}

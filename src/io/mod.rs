//! Reading and writing Waymo data: v2 parquet components, WOMD `Scenario` (with its history's
//! LiDAR and camera tokens) and v1 `Frame` TFRecords.

pub mod detect;
pub mod fixture;
pub mod image;
pub mod inspect;
pub mod output;
pub mod proto;
pub mod shard;
pub mod tfrecord;
pub mod v1;
mod v1_range_image;
pub mod v2;
pub mod womd;
pub mod womd_sensors;

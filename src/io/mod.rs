//! Reading and writing Waymo data: v2 parquet components, WOMD `Scenario` and v1 `Frame`
//! TFRecords.

pub mod image;
pub mod proto;
pub mod tfrecord;
pub mod v1;
pub mod womd;

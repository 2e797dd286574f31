//! Reading and writing Waymo data: v2 parquet components, WOMD `Scenario` and v1 `Frame`
//! TFRecords.

pub mod fixture;
pub mod image;
pub mod inspect;
pub mod proto;
mod tfinspect;
pub mod tfrecord;
pub mod v1;
pub mod v2;
pub mod womd;

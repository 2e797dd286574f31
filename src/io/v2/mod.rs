//! Waymo Open Dataset v2 parquet: `{root}/{component}/{segment}.parquet`, columns named
//! and typed as docs/formats.md#component-schemas, read tolerantly (#tolerant-reading).

pub mod columns;
pub mod dataset;
pub mod file;
pub mod motion;
pub mod normalize;
pub mod records;
pub mod schema;
mod thrift_guard;
pub mod writer;

pub use dataset::{Dataset, FileInfo, FrameBatches, FrameReader, FrameRequest, SegmentWriter};
pub use file::ComponentFile;
pub use normalize::Deviation;
pub use records::*;
pub use schema::{ColType, ColumnSpec, Component};
pub use writer::{ComponentWriter, component_path, write_component};

//! Hand-written protobuf messages for the Waymo formats scenetok reads and writes.
//!
//! Only the fields scenetok uses are declared; prost skips the others when decoding. Field
//! names, numbers and wire types follow the official proto2 definitions (`scenario.proto`,
//! `map.proto`, `dataset.proto`, `label.proto`, `motion_submission.proto`, `compressed_lidar.proto`,
//! `camera_tokens.proto`); proto2 `optional`
//! scalars are `Option<T>` so "absent" and "zero" stay distinguishable.
//!
//! Enum-typed fields are declared as `int32` (the same varint on the wire) and kept raw: the
//! converters in `io::womd` and `io::v1` map them to `scene` enums and reject unknown values
//! with an error that names the record, instead of prost silently keeping or dropping them.

pub mod dataset;
pub mod label;
pub mod map;
pub mod scenario;
pub mod submission;
pub mod womd_sensors;

pub use dataset::*;
pub use label::*;
pub use map::*;
pub use scenario::*;
pub use submission::*;
pub use womd_sensors::*;

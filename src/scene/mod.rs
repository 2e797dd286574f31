//! scenetok's in-memory data model: what a Waymo file means once read, independent of
//! where it came from (v2 parquet, a v1 `Frame`, a WOMD `Scenario` or the synthetic world).
//! `io` converts files to and from these types; models and metrics only see these.

pub mod enums;
pub mod frame;
pub mod motion;
pub mod prediction;
pub mod sensor;
pub mod trajectory_type;

pub use enums::*;
pub use frame::*;
pub use motion::*;
pub use sensor::*;

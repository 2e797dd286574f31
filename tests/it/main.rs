//! The one integration-test crate (one binary links faster than many); each module is one area.

mod cli;
mod common;
mod formats;
mod geom;
mod geom_pvps;
mod v2_parquet;

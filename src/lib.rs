//! scenetok: perception and motion prediction on Waymo-format data.
//!
//! Layers, each talking only to the one below: [`io`] (Waymo v2 parquet, WOMD and v1
//! TFRecords) → [`scene`] (the in-memory data model) and [`geom`] (range images, camera
//! projection, boxes) → models, pipeline, evaluation and visualisation.

// Errors carry their full location (file, column, row, frame); they are the cold path.
#![allow(clippy::result_large_err)]

pub mod backend;
pub mod bench;
pub mod error;
pub mod eval;
pub mod geom;
pub mod io;
pub mod locate;
pub mod models;
pub mod pipeline;
pub mod scene;
pub mod sim;
pub mod sparse;
pub mod viz;

pub use error::{Error, Location, Result};

//! The one integration-test crate (one binary links faster than many); each module is one area.
mod geom;

//! Reports of evaluation runs: `report.html` (self-contained) and `report.md`, for one run or
//! two side by side.

pub mod browser;
pub mod charts;
pub mod data;
pub mod render;

pub use data::ReportData;
pub use render::{ReportError, load_run, write_comparison, write_report};

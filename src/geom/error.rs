//! Errors of the geometry layer: shape and calibration mismatches found before any math.

/// Why a geometry operation refused its input. Messages name the expected and found values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeomError {
    /// Explicit beam inclinations must give one value per range-image row.
    #[error("beam inclination has {found} explicit values but the range image has {expected} rows")]
    InclinationCount { expected: usize, found: usize },
    /// A range image needs at least the range channel.
    #[error("range image has 0 channels; expected at least 1 (range)")]
    NoChannels,
    /// The per-pixel pose must be `[H, W, 6]` with the range image's H and W.
    #[error("pixel pose has shape {found:?}; expected [{}, {}, 6] to match the range image", expected[0], expected[1])]
    PixelPoseShape { expected: [usize; 2], found: [usize; 3] },
    /// An image gathered with a point cloud must have the cloud's source H and W.
    #[error("image has shape {found:?}; expected [{}, {}, C] (the point cloud's source image)", expected[0], expected[1])]
    GatherShape { expected: [usize; 2], found: [usize; 3] },
    /// An image whose `values` do not fill its shape (its fields are public, so this can
    /// happen despite `RangeImage::new`'s check).
    #[error("{what} has shape {shape:?} but {found} values")]
    ValueCount { what: &'static str, shape: [usize; 3], found: usize },
    /// A range image to build must have at least one row and one column.
    #[error("range image size {height}×{width} is empty")]
    EmptyImage { height: usize, width: usize },
    /// Point pixels are stored as 16-bit row and column.
    #[error("range image size {height}×{width} is too large; at most 65536 rows and columns are supported")]
    TooLarge { height: usize, width: usize },
    /// A laser has range images but no calibration to interpret them.
    #[error("laser {laser} has a range image but no calibration")]
    MissingCalibration { laser: String },
}

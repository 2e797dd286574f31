//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// `../shared/waymo-samples`, or `None` (with a message) when this checkout has no
/// `../shared` (a user's fresh clone). Where the samples are promised (CI sets
/// `SCENETOK_REQUIRE_SAMPLES`), their absence fails the test instead of passing it silently.
pub fn samples() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/waymo-samples");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("SCENETOK_REQUIRE_SAMPLES").is_none(),
        "../shared/waymo-samples not found, and SCENETOK_REQUIRE_SAMPLES says the real samples must be tested"
    );
    eprintln!("skipping: ../shared/waymo-samples not found (real Waymo samples are only on the project's machines)");
    None
}

/// The data folder (models, weights) as the library locates it from the test binary.
pub fn data_dir() -> scenetok::locate::DataDir {
    scenetok::locate::DataDir::locate(None).expect("the source tree's data/ folder")
}

/// The shipped LiDAR encoder weights.
pub fn shipped_lidar_weights() -> PathBuf {
    data_dir().weights(scenetok::models::lidar_seg::WEIGHTS_FILE)
}

/// The default image model's config.
pub fn default_image_config() -> PathBuf {
    scenetok::models::image_encoder::default_config_path(&data_dir())
}

/// Whether tools installed by `tools/setup.sh` must be present (set by `tools/test.sh`).
pub fn tools_required() -> bool {
    std::env::var_os("SCENETOK_REQUIRE_TOOLS").is_some()
}

/// The setup script's Python (with pyarrow), or `None` with a message. Panics when the
/// test command promised the tools.
pub fn python_with(module: &str) -> Option<PathBuf> {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = py.exists()
        && std::process::Command::new(&py)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    assert!(!tools_required(), ".venv/bin/python with {module} missing: run tools/setup.sh");
    eprintln!("skipping: .venv/bin/python with {module} not found (tools/setup.sh installs it)");
    None
}

/// A transform as the protobuf Waymo writes (row-major 4×4).
pub fn pb_transform(t: &scenetok::scene::Transform) -> scenetok::io::proto::Transform {
    scenetok::io::proto::Transform { transform: t.to_row_major().to_vec() }
}

/// A laser calibration as the protobuf Waymo writes (v1 `Frame`s, WOMD sensor records).
pub fn pb_laser_calibration(c: &scenetok::scene::LidarCalibration) -> scenetok::io::proto::LaserCalibration {
    scenetok::io::proto::LaserCalibration {
        name: Some(c.laser.value() as i32),
        beam_inclinations: c.beam_inclination.values.clone().unwrap_or_default(),
        beam_inclination_min: Some(c.beam_inclination.min),
        beam_inclination_max: Some(c.beam_inclination.max),
        extrinsic: Some(pb_transform(&c.extrinsic)),
    }
}

//! The inputs fuzzing found bugs with (`fuzz/regressions/TARGET/NAME`), each read back through
//! the library as a user would meet it: an error that says where and what, or the result the
//! fixed code gives. `fuzz_smoke` also runs them through the fuzz bodies.

use std::path::PathBuf;

use scenetok::Location;
use scenetok::io::image;

fn regression(target: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A `v2_component` regression input written as a parquet file named `file_name` in a fresh
/// folder (kept alive by the returned guard), with the component byte the fuzzer chose.
fn v2_regression_file(name: &str, file_name: &str) -> (tempfile::TempDir, PathBuf, u8) {
    let bytes = regression("v2_component", name);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, &bytes[1..]).unwrap();
    (dir, path, bytes[0])
}

/// A JPEG whose entropy-coded data is corrupt (a splice of two files) decodes without an
/// error, the rest of the image black. Decoded into a buffer a previous frame of the same
/// size had filled, the rest showed that frame's pixels.
#[test]
fn jpeg_with_corrupt_scan_does_not_show_the_previous_frame() {
    let bad = regression("jpeg", "stale-pixels-after-corrupt-scan");
    let at = Location::file("camera.jpg");
    let (w, h) = image::jpeg_dimensions(&bad, &at).unwrap();
    let mut buf = ::image::RgbImage::from_pixel(w, h, ::image::Rgb([200, 100, 50]));
    image::decode_jpeg_into(&bad, &at, &mut buf).unwrap();
    assert!(buf == image::decode_jpeg(&bad, &at).unwrap(), "decode_jpeg_into kept the previous frame's pixels");
}

/// A corrupt CMYK JPEG on which zune-jpeg 0.5.15 (the image crate's decoder) panics in its
/// AVX2 IDCT (`unwrap` on `None`): an error naming the file, not a crash.
#[test]
fn jpeg_the_decoder_panics_on_is_an_error() {
    let bad = regression("jpeg", "zune-avx2-idct-panic");
    let at = Location::file("seg.tfrecord").record(2).detail("camera FRONT");
    let mut buf = ::image::RgbImage::new(0, 0);
    for err in [image::decode_jpeg(&bad, &at).map(|_| ()), image::decode_jpeg_into(&bad, &at, &mut buf)] {
        let msg = err.expect_err("a JPEG the decoder cannot read").to_string();
        assert!(msg.contains("seg.tfrecord") && msg.contains("record 2") && msg.contains("camera FRONT"), "{msg}");
        assert!(msg.contains("cannot decode JPEG image"), "{msg}");
    }
    assert!(buf.is_empty());
}

/// A parquet file whose embedded Arrow schema (the `ARROW:schema` footer key) declares an
/// integer of a width Arrow does not support: arrow-ipc 58.4 panics while reading the footer.
/// Opening it is an error naming the file, through both ways in (a component file, the
/// one-file dataset `inspect` opens).
#[test]
fn parquet_footer_the_arrow_reader_panics_on_is_an_error() {
    let (_dir, path, choice) = v2_regression_file("arrow-ipc-embedded-schema-panic", "bad.parquet");
    let component = scenetok::io::v2::Component::ALL[usize::from(choice) % scenetok::io::v2::Component::ALL.len()];
    let err = scenetok::io::v2::ComponentFile::open(&path, component).err().expect("a footer the reader cannot read");
    let msg = err.to_string();
    assert!(msg.contains("bad.parquet"), "{msg}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scenetok")).arg("inspect").arg(&path).output().unwrap();
    assert!(matches!(out.status.code(), Some(1 | 2)), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.parquet") && !stderr.contains("panicked"), "{stderr}");
}

/// A 10 KB parquet footer declaring lists of booleans of hundreds of millions of elements:
/// parquet 58.4 skips each element without consuming a byte, so reading the footer took
/// 0.2 s here and over 10 s under the fuzzer, and a footer with more such lists would take
/// hours. The bounded walk before it refuses the list at once, naming the file.
#[test]
fn parquet_footer_with_endless_lists_is_refused_at_once() {
    let (_dir, path, _) = v2_regression_file("thrift-bool-list-hang", "map.parquet");
    let err = scenetok::io::v2::ComponentFile::open(&path, scenetok::io::v2::Component::MapFeature)
        .err()
        .expect("a footer that cannot be read");
    let msg = err.to_string();
    // Refused on the list's header, before any of its 155 949 965 elements is visited.
    assert!(
        msg.contains("map.parquet") && msg.contains("footer") && msg.contains("list of 155949965 elements"),
        "{msg}"
    );
}

/// The same endless list in a data page's header (an unknown field 100, a list of 2^31 - 1
/// booleans, written over the first bytes of the `transform` column's page): the parquet crate
/// reads page headers with the same Thrift code and spins in it once per element (3.4 s for
/// this one list, without the guard; a 4 KiB header holds about 600 of them). The
/// walk over the row group's page headers refuses it before the reader starts, naming the
/// file, row group, column and offset.
#[test]
fn parquet_page_header_with_endless_lists_is_refused_at_once() {
    use scenetok::io::v2::{Component, ComponentFile, VehiclePoseRecord};
    let (_dir, path, _) = v2_regression_file("page-header-bool-list-hang", "pose.parquet");
    let file = ComponentFile::open(&path, Component::VehiclePose).expect("the footer is intact");
    let err = file.read_all::<VehiclePoseRecord>().expect_err("a page header that cannot be read");
    let msg = err.to_string();
    assert!(
        msg.contains("pose.parquet")
            && msg.contains("row group 0")
            && msg.contains("world_from_vehicle.transform")
            && msg.contains("page header at byte 202")
            && msg.contains("list of 2147483647 elements"),
        "{msg}"
    );
}

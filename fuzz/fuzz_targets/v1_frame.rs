//! A v1 Frame TFRecord file, or one serialized Frame (odd first byte), with its zlib range images; frames converted to points.
//! The body is `scenetok::fuzzing::v1_frame` (its docs give the input layout).
#![no_main]

// A third-party decoder's panic that scenetok turns into an error is not a finding; any
// other panic aborts (libfuzzer-sys's hook).
libfuzzer_sys::fuzz_target!(init: scenetok::error::quiet_guarded_panics(), |data: &[u8]| {
    scenetok::fuzzing::v1_frame(data)
});

//! Range image → points, Cartesian image, gathered pixels and back, with arbitrary shapes, values and calibrations.
//! The body is `scenetok::fuzzing::range_image` (its docs give the input layout).
#![no_main]

// A third-party decoder's panic that scenetok turns into an error is not a finding; any
// other panic aborts (libfuzzer-sys's hook).
libfuzzer_sys::fuzz_target!(init: scenetok::error::quiet_guarded_panics(), |data: &[u8]| {
    scenetok::fuzzing::range_image(data)
});

//! A WOMD Scenario TFRecord file, or one serialized Scenario (odd first byte).
//! The body is `scenetok::fuzzing::womd_scenario` (its docs give the input layout).
#![no_main]

// A third-party decoder's panic that scenetok turns into an error is not a finding; any
// other panic aborts (libfuzzer-sys's hook).
libfuzzer_sys::fuzz_target!(init: scenetok::error::quiet_guarded_panics(), |data: &[u8]| {
    scenetok::fuzzing::womd_scenario(data)
});

//! A v2 component parquet file (the first byte picks the component): opened, every record read, joined into frames, inspected.
//! The body is `scenetok::fuzzing::v2_component` (its docs give the input layout).
#![no_main]

// A third-party decoder's panic that scenetok turns into an error is not a finding; any
// other panic aborts (libfuzzer-sys's hook).
libfuzzer_sys::fuzz_target!(init: scenetok::error::quiet_guarded_panics(), |data: &[u8]| {
    scenetok::fuzzing::v2_component(data)
});

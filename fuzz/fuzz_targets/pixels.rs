#![no_main]
//! See digitnn::fuzz::pixels.
libfuzzer_sys::fuzz_target!(|data: &[u8]| digitnn::fuzz::pixels(data));

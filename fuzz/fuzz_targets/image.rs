#![no_main]
//! See digitnn::fuzz::image.
libfuzzer_sys::fuzz_target!(|data: &[u8]| digitnn::fuzz::image(data));

#![no_main]
//! See digitnn::fuzz::read.
libfuzzer_sys::fuzz_target!(|data: &[u8]| digitnn::fuzz::read(data));

#![no_main]
//! See digitnn::fuzz::idx.
libfuzzer_sys::fuzz_target!(|data: &[u8]| digitnn::fuzz::idx(data));

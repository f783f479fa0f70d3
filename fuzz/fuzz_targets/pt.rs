#![no_main]
//! See digitnn::fuzz::pt.
libfuzzer_sys::fuzz_target!(|data: &[u8]| digitnn::fuzz::pt(data));

#![no_main]
//! See digitnn::fuzz::request.
libfuzzer_sys::fuzz_target!(|data: &[u8]| digitnn::fuzz::request(data));

#![no_main]
//! See digitnn::fuzz::model.
libfuzzer_sys::fuzz_target!(|data: &[u8]| digitnn::fuzz::model(data));

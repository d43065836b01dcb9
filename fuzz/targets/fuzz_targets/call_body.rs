#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::call_body(data));

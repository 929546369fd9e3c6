#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pitcrew_fuzz::nagios_output(data));

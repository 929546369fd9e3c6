#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pitcrew_fuzz::recover_ledger(data));

#![no_main]
//! Fuzz target: `latchkey::fuzzing::logout_token` on arbitrary bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkey::fuzzing::logout_token(data));

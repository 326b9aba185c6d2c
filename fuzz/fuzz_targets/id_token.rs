#![no_main]
//! Fuzz target: `latchkey::fuzzing::id_token` on arbitrary bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkey::fuzzing::id_token(data));

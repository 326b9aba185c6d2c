#![no_main]
//! Fuzz target: `latchkey::fuzzing::token_response` on arbitrary bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkey::fuzzing::token_response(data));

#![no_main]
//! Fuzz target: `latchkey::fuzzing::session_blob` on arbitrary bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkey::fuzzing::session_blob(data));

#![no_main]
//! Fuzz target: `latchkey::fuzzing::callback` on arbitrary bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkey::fuzzing::callback(data));

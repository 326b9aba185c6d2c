#![no_main]
//! Fuzz target: `latchkey::fuzzing::metadata` on arbitrary bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkey::fuzzing::metadata(data));

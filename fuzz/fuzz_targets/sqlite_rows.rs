#![no_main]
//! Fuzz target: `latchkey::fuzzing::sqlite_rows` on arbitrary bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkey::fuzzing::sqlite_rows(data));

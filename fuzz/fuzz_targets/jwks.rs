#![no_main]
//! Fuzz target: `latchkey::fuzzing::jwks_document` on arbitrary bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkey::fuzzing::jwks_document(data));

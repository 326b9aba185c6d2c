//! The `latchkey` command-line tool.
fn main() {}

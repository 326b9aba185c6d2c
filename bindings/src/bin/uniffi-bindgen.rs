//! The uniffi bindings generator, pinned to the uniffi version of `latchkey-ffi`.
fn main() {
    uniffi::uniffi_bindgen_main()
}

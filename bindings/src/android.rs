//! Android: the platform certificate verifier (rustls-platform-verifier) asks Android's
//! `X509TrustManager` through JNI, so it needs the app's Context once per process before
//! the first TLS handshake. `dev.latchkey.PlatformTrust.init(context)` (Kotlin,
//! `kotlin/src/main/android`) loads this library and calls [`init`]; after it,
//! `TrustRoots.Platform` verifies with the device's trust store (user-installed and
//! enterprise roots included). Without it the bundled roots stay the default on Android, and
//! a configuration that asks for `Platform` anyway gets the bundled roots ([`initialised`]).
//!
//! Touches no persisted state.

use std::sync::atomic::{AtomicBool, Ordering};

use jni::errors::ThrowRuntimeExAndDefault;
use jni::objects::{JClass, JObject};
use jni::EnvUnowned;

/// `dev.latchkey.PlatformTrust.nativeInit(Context)`: hands the application Context to the
/// platform verifier. A JNI failure is thrown to the caller as a `RuntimeException`; a
/// second call is harmless (the verifier keeps the first Context).
// `no_mangle` is what the `unsafe_code` lint flags: the JVM finds a native method by its
// exported symbol name, and this signature is the one JNI calls it with. The function
// body is safe code.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "system" fn Java_dev_latchkey_PlatformTrust_nativeInit<'caller>(
    mut unowned_env: EnvUnowned<'caller>,
    _class: JClass<'caller>,
    context: JObject<'caller>,
) {
    init(&mut unowned_env, context)
}

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Whether the platform verifier got its Context in this process: before that, verifying
/// with it would fail every handshake.
pub(crate) fn initialised() -> bool {
    INITIALISED.load(Ordering::Acquire)
}

fn init<'caller>(unowned_env: &mut EnvUnowned<'caller>, context: JObject<'caller>) {
    unowned_env
        .with_env(|env| {
            rustls_platform_verifier::android::init_with_env(env, context)?;
            INITIALISED.store(true, Ordering::Release);
            Ok::<(), jni::errors::Error>(())
        })
        .resolve::<ThrowRuntimeExAndDefault>()
}

// Android only (android.content.Context): compiled into the AAR, not into the JVM tests.
package dev.latchkey

import android.content.Context

/**
 * The Android trust store for Latchkey's TLS: call [init] once per process (for example in
 * `Application.onCreate`, which every process of the app runs) before creating a client with
 * `LatchkeyConfig.trust = TrustRoots.Platform`. The certificate verifier then asks Android's
 * `X509TrustManager`, so user-installed and enterprise roots and the device's revocation
 * checks apply, as they do for the app's other connections.
 *
 * Without [init], `TrustRoots.Platform` gets the bundled roots (`TrustRoots.Bundled`, the
 * default on Android): a platform verifier that was never given the Context cannot verify
 * anything. Call [init] before the client is created; a client keeps the roots it started
 * with.
 *
 * Touches no persisted state. Throws `RuntimeException` if the JNI set-up fails.
 */
object PlatformTrust {
    @Volatile
    private var initialised = false

    /** Hands the application Context to the verifier; later calls do nothing. */
    @JvmStatic
    @Synchronized
    fun init(context: Context) {
        if (initialised) return
        // The same library JNA loads for the generated bindings; loading it twice is a no-op.
        System.loadLibrary("latchkey_ffi")
        nativeInit(context.applicationContext)
        initialised = true
    }

    /** Whether [init] ran in this process. */
    @JvmStatic
    val isInitialised: Boolean
        get() = initialised

    @JvmStatic
    private external fun nativeInit(context: Context)
}

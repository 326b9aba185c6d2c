// Thin idiomatic Kotlin over the generated bindings (src/generated/kotlin, same package).
// Plain JVM Kotlin: the JVM tests compile it together with the generated code.
package dev.latchkey

/** Library-wide facts. */
object Latchkey {
    /** The version of the native Latchkey library. */
    val version: String
        get() = latchkeyVersion()
}

/** A [SessionObserver] backed by a lambda. Called on a Latchkey thread: keep it short. */
fun sessionObserverOf(block: (SessionEvent) -> Unit): SessionObserver =
    object : SessionObserver {
        override fun onEvent(event: SessionEvent) = block(event)
    }

/**
 * The registration in use as JSON, to persist (it may hold the registration access token:
 * keep it with the app's secrets). Null when not registered. Same name as in Swift.
 */
fun LatchkeyClient.registrationJson(): String? = registration()?.use { it.toJson() }

/**
 * Restores a registration saved with [registrationJson]. Returns false for null. Throws
 * [LatchkeyException.Config] when it is not a registration of this issuer. Same as Swift's
 * `restoreRegistration(json:)`.
 */
fun LatchkeyClient.restoreRegistration(json: String?): Boolean = restoreRegistrationFrom(json)

/** Persists [registration] as JSON through [write]; see [restoreRegistrationFrom]. */
fun LatchkeyClient.saveRegistrationTo(write: (String) -> Unit) {
    registration()?.use { write(it.toJson()) }
}

/**
 * Restores a registration saved with [saveRegistrationTo]. Returns false when [json] is null.
 * Throws [LatchkeyException.Config] when it is not a registration of this issuer.
 */
fun LatchkeyClient.restoreRegistrationFrom(json: String?): Boolean {
    if (json == null) return false
    ClientRegistration.fromJson(json).use { restoreRegistration(it) }
    return true
}

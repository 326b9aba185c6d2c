// Thin idiomatic Kotlin over the generated bindings (src/generated/kotlin, same package).
// Plain JVM Kotlin: the JVM tests compile it together with the generated code.
package dev.latchkey

/** Library-wide facts. */
object Latchkey {
    /** The version of the native Latchkey library. */
    val version: String
        get() = latchkeyVersion()

    /** Facts about the native library. */
    val buildInfo: BuildInfo
        get() = dev.latchkey.buildInfo()
}

/** An [Echo] backed by a suspending lambda, so callers need not declare a class. */
fun echoOf(block: suspend (String) -> String): Echo =
    object : Echo {
        override suspend fun echo(message: String): String = block(message)
    }

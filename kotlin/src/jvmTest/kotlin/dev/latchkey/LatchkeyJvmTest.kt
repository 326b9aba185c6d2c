// JVM tests of the Kotlin API (generated bindings + glue) against the host build of the Rust
// library, loaded by JNA. A plain main, no JUnit: scripts/test-kotlin.sh compiles it with
// kotlinc and runs it; the last line is "N passed, M failed", the exit code 1 on failure.
package dev.latchkey

import kotlin.system.exitProcess
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

/** A Kotlin exception that is not a DemoException: Rust receives an unexpected callback error. */
class OtherException : RuntimeException("other failure")

/** A foreign implementation of the Rust trait, as an app would write it. */
class Shouting : Echo {
    override suspend fun echo(message: String): String {
        when (message) {
            "bad" -> throw DemoException.InvalidInput("message", "rejected by Kotlin")
            "other" -> throw OtherException()
        }
        delay(1)
        return message.uppercase()
    }
}

private val tests = linkedMapOf<String, suspend () -> Unit>()

private fun test(name: String, body: suspend () -> Unit) {
    tests[name] = body
}

private fun registerTests() {
    test("version and record") {
        assertEquals("0.1.0", Latchkey.version)
        assertEquals(BuildInfo(version = "0.1.0", debug = true), Latchkey.buildInfo)
    }

    test("async function") {
        assertEquals("hello", delayedEcho("hello", 5uL))
    }

    test("typed error with fields") {
        val error = assertFailsWith<DemoException.InvalidInput> { delayedEcho("", 0uL) }
        assertEquals("message", error.field)
        assertEquals("must not be empty", error.reason)
    }

    test("object async methods") {
        Counter(ULong.MAX_VALUE - 3uL).use { counter ->
            assertEquals(ULong.MAX_VALUE - 1uL, counter.add(2uL))
            assertEquals(ULong.MAX_VALUE - 1uL, counter.value())
            val error = assertFailsWith<DemoException.Overflow> { counter.add(5uL) }
            assertEquals(ULong.MAX_VALUE - 1uL, error.current)
            assertEquals(5uL, error.amount)
        }
    }

    test("concurrent calls on one object") {
        Counter(0uL).use { counter ->
            runBlocking(Dispatchers.Default) {
                (1..50).map { async { counter.add(1uL) } }.awaitAll()
            }
            assertEquals(50uL, counter.value())
        }
    }

    test("foreign trait called from Rust") {
        assertEquals("rust(HI)", callEcho(Shouting(), "hi"))
        Counter(1uL).use { counter ->
            assertEquals(5uL, counter.addEchoLength(Shouting(), "four"))
        }
    }

    test("lambda echo") {
        assertEquals("rust(<x>)", callEcho(echoOf { "<$it>" }, "x"))
    }

    test("foreign implementation throws a typed error") {
        val error = assertFailsWith<DemoException.InvalidInput> { callEcho(Shouting(), "bad") }
        assertEquals("message", error.field)
        assertEquals("rejected by Kotlin", error.reason)
    }

    test("foreign implementation throws another exception") {
        val error = assertFailsWith<DemoException.Callback> { callEcho(Shouting(), "other") }
        assertTrue(error.reason.isNotEmpty(), "reason: ${error.reason}")
    }
}

fun main(args: Array<String>) {
    registerTests()
    val selected = tests.filterKeys { name -> args.isEmpty() || args.any { name.contains(it) } }
    var passed = 0
    var failed = 0
    for ((name, body) in selected) {
        val started = System.nanoTime()
        val outcome = runCatching { runBlocking { withTimeout(30_000) { body() } } }
        val millis = (System.nanoTime() - started) / 1_000_000
        outcome.onSuccess {
            passed++
            println("PASS $name ($millis ms)")
        }.onFailure { error ->
            failed++
            println("FAIL $name ($millis ms): $error")
            error.printStackTrace(System.out)
        }
    }
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0 && passed > 0) 0 else 1)
}

// What a Kotlin caller pays for a fresh token: `accessTokenFast()` (the fast path: one
// synchronous call, kotlin/src/main/kotlin/dev/latchkey/FastPath.kt) and the generated
// `accessToken()` (a suspend function, uniffi's async calls over JNA), with a session signed
// in for real against the test provider.
//
//   TokenBenchKt [BATCHES CALLS]   default 20 batches of 2000 calls, after 10 000 warm-up calls
//
// Needs $LATCHKEY_TEST_ISSUER (the provider; loopback http allowed) and $LATCHKEY_BROWSER
// (the headless browser that plays the user). scripts/bench.sh (section `token`) runs it on
// the JVM against the release build of latchkey-ffi and parses the one JSON line it prints on
// stdout. Figures, not assertions; it fails (exit 1) only when the measurement would be
// wrong: no session, or the token changed (a refresh ran) while timing. The token is never
// printed.
package dev.latchkey.bench

import com.sun.jna.Native
import dev.latchkey.LatchkeyClient
import dev.latchkey.LatchkeyConfig
import dev.latchkey.LifecycleState
import dev.latchkey.LoginOptions
import dev.latchkey.RegistrationOptions
import dev.latchkey.SessionBlob
import dev.latchkey.SessionStore
import dev.latchkey.accessTokenFast
import java.io.File
import java.lang.management.ManagementFactory
import java.nio.file.Files
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.TimeUnit
import kotlin.math.roundToLong
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

private const val REDIRECT_URI = "dev.latchkey.bench:/callback"
private const val WARM_UP_CALLS = 10_000

private fun env(name: String): String = System.getenv(name) ?: run {
    System.err.println("TokenBench: $name is not set")
    exitProcess(2)
}

/** Sessions in memory: the bench needs no persistence across processes. */
private class MemoryStore : SessionStore {
    private val blobs = ConcurrentHashMap<String, SessionBlob>()
    override suspend fun save(account: String, blob: SessionBlob) { blobs[account] = blob }
    override suspend fun load(account: String): SessionBlob? = blobs[account]
    override suspend fun clear(account: String) { blobs.remove(account) }
}

/** Plays the user's browser: returns the redirect the provider sent the app. */
private fun browse(url: String): String {
    val process = ProcessBuilder(env("LATCHKEY_BROWSER"), "--redirect-prefix", REDIRECT_URI, url)
        .redirectError(ProcessBuilder.Redirect.INHERIT).start()
    val output = process.inputStream.bufferedReader().readText().trim()
    check(process.waitFor(30, TimeUnit.SECONDS) && process.exitValue() == 0) { "latchkey-browser failed" }
    return output.lines().last()
}

/** JNA's version, from its jar's manifest (e.g. Debian's libjna-java). */
private val jnaVersion: String =
    Native::class.java.`package`?.implementationVersion?.substringBefore(' ') ?: "unknown"

private fun median(values: List<Double>): Double = values.sorted()[values.size / 2]

/** CPU time of the whole process (every thread: the caller, JNA's cleaner, the collector). */
private val processCpuNs: () -> Long =
    (ManagementFactory.getOperatingSystemMXBean() as? com.sun.management.OperatingSystemMXBean)
        ?.let { os -> { os.processCpuTime } } ?: { -1L }

/** Wall time per call of each batch, and the process's CPU time per call over all batches. */
private class Timing(val batchNs: List<Double>, val cpuNs: Double)

private inline fun timed(batches: Int, calls: Int, call: () -> Unit): Timing {
    val cpuBegin = processCpuNs()
    val batchNs = List(batches) {
        val begin = System.nanoTime()
        repeat(calls) { call() }
        (System.nanoTime() - begin).toDouble() / calls
    }
    return Timing(batchNs, (processCpuNs() - cpuBegin).toDouble() / (batches * calls))
}

private suspend fun run(batches: Int, calls: Int): String {
    val dir = Files.createTempDirectory("latchkey-bench").toFile()
    try {
        val config = LatchkeyConfig(
            issuer = env("LATCHKEY_TEST_ISSUER"),
            coordinationDbPath = File(dir, "coordination.sqlite").path,
            holder = "bench",
            allowInsecureLoopback = true,
        )
        LatchkeyClient.create(config, MemoryStore()).use { client ->
            client.register(RegistrationOptions(redirectUris = listOf(REDIRECT_URI), clientName = "Latchkey Kotlin bench")).close()
            val start = client.startLogin(LoginOptions(scopes = listOf("openid", "profile")))
            val session = client.finishLogin(browse(start.url))

            val first = client.accessToken()
            // Every call must return this token: a different one means a refresh ran while timing.
            var changed = 0
            // Warm-up: the JIT compiles the call path (JNA, the generated code, coroutines).
            repeat(WARM_UP_CALLS) { if (client.accessTokenFast() != first) changed++ }
            val fast = timed(batches, calls) { if (client.accessTokenFast() != first) changed++ }
            repeat(WARM_UP_CALLS) { if (client.accessToken() != first) changed++ }
            val token = timed(batches, calls) { if (client.accessToken() != first) changed++ }
            // A synchronous call through the generated code: the fixed cost of one crossing
            // there, without the suspend machinery.
            var states = 0
            repeat(WARM_UP_CALLS) { if (client.state() == LifecycleState.AUTHENTICATED) states++ }
            val state = timed(batches, calls) { if (client.state() == LifecycleState.AUTHENTICATED) states++ }
            val (fastNs, tokenNs, stateNs) = listOf(fast.batchNs, token.batchNs, state.batchNs)
            val generation = client.session()?.generation
            check(changed == 0 && generation == session.generation && states == WARM_UP_CALLS + batches * calls) {
                "the session changed while timing ($changed other tokens, generation ${session.generation} -> $generation)"
            }
            return "{\"access_token_cpu_ns\":${token.cpuNs.roundToLong()}," +
                "\"access_token_max_ns\":${tokenNs.max().roundToLong()}," +
                "\"access_token_median_ns\":${median(tokenNs).roundToLong()}," +
                "\"access_token_min_ns\":${tokenNs.min().roundToLong()}," +
                "\"batches\":$batches,\"bench\":\"kotlin\",\"calls\":$calls," +
                "\"fast_cpu_ns\":${fast.cpuNs.roundToLong()}," +
                "\"fast_max_ns\":${fastNs.max().roundToLong()}," +
                "\"fast_median_ns\":${median(fastNs).roundToLong()}," +
                "\"fast_min_ns\":${fastNs.min().roundToLong()}," +
                "\"generation\":${session.generation}," +
                "\"jna\":\"$jnaVersion\"," +
                "\"jvm\":\"${System.getProperty("java.vm.name")} ${System.getProperty("java.version")}\"," +
                "\"state_cpu_ns\":${state.cpuNs.roundToLong()}," +
                "\"state_median_ns\":${median(stateNs).roundToLong()}," +
                "\"warm_up_calls\":$WARM_UP_CALLS}"
        }
    } finally {
        dir.deleteRecursively()
    }
}

fun main(args: Array<String>) {
    val numbers = args.map { it.toIntOrNull() ?: 0 }
    if (!(numbers.isEmpty() || (numbers.size == 2 && numbers.all { it > 0 }))) {
        System.err.println("usage: TokenBenchKt [BATCHES CALLS]")
        exitProcess(2)
    }
    val code = try {
        val line = runBlocking { withTimeout(300_000) { run(numbers.firstOrNull() ?: 20, numbers.lastOrNull() ?: 2000) } }
        println(line)
        0
    } catch (error: Exception) {
        System.err.println("TokenBench failed: $error")
        1
    }
    exitProcess(code)
}

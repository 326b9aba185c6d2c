// JVM tests of the Kotlin API (generated bindings + glue) against the host build of the Rust
// library, loaded by JNA, and the real test provider, run as JUnit 5 dynamic tests (Debian
// junit5): scripts/test-kotlin.sh compiles them with kotlinc, starts the provider and runs
// main, which launches the JUnit Platform; the last line is "N passed, M failed", the exit
// code 1 on failure.
package dev.latchkey

import java.io.File
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertIs
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlin.test.assertNotEquals
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.cancel
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout
import okhttp3.OkHttpClient
import okhttp3.Request
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.TestFactory
import org.junit.platform.engine.TestExecutionResult
import org.junit.platform.engine.discovery.DiscoverySelectors
import org.junit.platform.launcher.TestExecutionListener
import org.junit.platform.launcher.TestIdentifier
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder
import org.junit.platform.launcher.core.LauncherFactory
import org.junit.platform.launcher.listeners.SummaryGeneratingListener

private val tests = linkedMapOf<String, suspend CoroutineScope.() -> Unit>()

private fun test(name: String, body: suspend CoroutineScope.() -> Unit) {
    tests[name] = body
}

private fun registerTests() {
    test("version") {
        assertEquals("0.1.0", Latchkey.version)
    }

    test("register, log in, fresh token, forced refresh, logout") {
        val store = MemoryStore()
        val observer = RecordingObserver()
        LatchkeyClient.create(config(tempDir()), store).use { client ->
            val observation = client.addObserver(observer)
            assertEquals(LifecycleState.UNREGISTERED, client.state())
            assertTrue(client.provider().supportsRegistration)
            val session = signIn(client)
            assertTrue(session.subject.isNotEmpty())
            assertEquals(Provider.issuer, session.issuer)
            assertTrue(session.hasRefreshToken)
            assertEquals(LifecycleState.AUTHENTICATED, client.state())
            assertTrue(store.has("default"))
            assertTrue(client.accessToken().isNotEmpty())
            assertTrue(client.userinfo().contains("\"sub\":\"${session.subject}\""))

            val before = Provider.counter("refresh_grants")
            val outcome = client.refresh()
            assertIs<RefreshOutcome.Refreshed>(outcome)
            assertTrue(outcome.generation > session.generation, "generation grows")
            assertEquals(before + 1, Provider.counter("refresh_grants"))
            assertEquals(outcome.generation, client.session()?.generation)
            assertTrue(client.accessToken().isNotEmpty())
            assertTrue(observer.events.any { it.event is LifecycleEvent.Refreshed && it.generation == outcome.generation },
                "observer saw the refresh: ${observer.events.map { it.event }}")

            val logout = client.logout(LogoutOptions(postLogoutRedirectUri = "dev.latchkey.test:/logged-out"))
            assertTrue(logout.refreshTokenRevoked)
            assertNotNull(logout.endSessionUrl)
            assertFalse(store.has("default"))
            assertEquals(LifecycleState.LOGGED_OUT, client.state())
            assertEquals(LifecycleState.LOGGED_OUT, client.recordedEnd(), "recorded for every process")
            assertTrue(observer.events.any { it.event is LifecycleEvent.LoggedOut })
            val error = assertFailsWith<LatchkeyException> { client.accessToken() }
            assertTrue(error is LatchkeyException.LoggedOut || error is LatchkeyException.NoSession, "$error")
            assertTrue(error.requiresSignIn)
            assertFalse(error.isRetryable)
            observation.close()
        }
    }

    test("fast path: a fresh token synchronously, with the rules and errors of accessToken()") {
        LatchkeyClient.create(config(tempDir()), MemoryStore()).use { client ->
            assertFailsWith<LatchkeyException.NoSession> { client.freshAccessTokenOrNull() }
            assertFailsWith<LatchkeyException.NoSession> { client.freshAccessToken(0u) }
            assertFailsWith<LatchkeyException.NoSession> { client.accessTokenFast() }
            signIn(client)
            val token = client.accessToken()
            assertEquals(token, client.freshAccessTokenOrNull())
            assertEquals(token, client.freshAccessToken(0u))
            assertEquals(token, client.accessTokenFast())
            // The provider's tokens live 60 s: not fresh for an hour, and asking never refreshes.
            val before = Provider.counter("refresh_grants")
            assertNull(client.freshAccessTokenOrNull(3600u))
            assertNull(client.freshAccessToken(3600u))
            assertEquals(before, Provider.counter("refresh_grants"))
            // Threads at once: each has its own call status.
            withContext(Dispatchers.Default) {
                List(4) { launch { repeat(2000) { assertEquals(token, client.freshAccessTokenOrNull()) } } }
            }
            // After logout the same error as accessToken(), every time (the reused status is reset).
            client.logout(LogoutOptions(postLogoutRedirectUri = "dev.latchkey.test:/logged-out"))
            val slow = assertFailsWith<LatchkeyException> { client.accessToken() }
            repeat(3) {
                val fast = assertFailsWith<LatchkeyException> { client.freshAccessTokenOrNull() }
                assertEquals(slow.javaClass, fast.javaClass, "$fast")
            }
            assertEquals(slow.javaClass, assertFailsWith<LatchkeyException> { client.accessTokenFast() }.javaClass)
            assertTrue(slow.requiresSignIn, "$slow")
            client.close()
            // Closed: refused like every generated call, before any call into Rust.
            assertFailsWith<IllegalStateException> { client.freshAccessTokenOrNull() }
            assertFailsWith<IllegalStateException> { client.state() }
        }
    }

    test("events flow and state flow follow the session; cancelling unsubscribes") {
        LatchkeyClient.create(config(tempDir()), MemoryStore()).use { client ->
            val seen = java.util.Collections.synchronizedList(mutableListOf<SessionEvent>())
            // Unconfined + undispatched: the observer is registered before launch returns.
            val collector = launch(Dispatchers.Unconfined, start = CoroutineStart.UNDISPATCHED) {
                client.events().collect { seen += it }
            }
            val stateScope = CoroutineScope(Dispatchers.Default)
            val state = client.stateFlow(stateScope)
            assertEquals(LifecycleState.UNREGISTERED, state.value)
            val session = signIn(client)
            withTimeout(5_000) { state.first { it == LifecycleState.AUTHENTICATED } }
            assertIs<RefreshOutcome.Refreshed>(client.refresh())
            val generation = client.session()?.generation
            withTimeout(5_000) {
                while (seen.none { it.event is LifecycleEvent.Refreshed && it.generation == generation }) delay(10)
            }
            assertTrue(seen.any { it.event is LifecycleEvent.SignedIn && it.generation == session.generation },
                "${seen.map { it.event }}")
            collector.cancelAndJoin()
            val count = seen.size
            client.refresh() // emits RefreshStarted + Refreshed synchronously, to no one
            assertEquals(count, seen.size, "no event after the collector was cancelled")

            val recorder = RecordingObserver()
            val handle = client.addObserver(recorder)
            assertTrue(handle.isActive())
            client.refresh()
            assertTrue(recorder.events.isNotEmpty())
            handle.cancel()
            handle.cancel() // idempotent
            assertFalse(handle.isActive())
            val recorded = recorder.events.size
            client.refresh()
            assertEquals(recorded, recorder.events.size, "no event after cancel()")
            handle.close()

            val closed = RecordingObserver()
            client.addObserver(closed).close() // releasing the handle unregisters as well
            client.refresh()
            assertTrue(closed.events.isEmpty(), "closed: ${closed.events.map { it.event }}")

            stateScope.cancel() // unregisters the state observer (invokeOnCompletion)
            client.logout(LogoutOptions())
            assertEquals(LifecycleState.LOGGED_OUT, client.state())
            assertEquals(LifecycleState.AUTHENTICATED, state.value, "the state flow stopped with its scope")
        }
    }

    test("OkHttp: bearer token added; 401 -> tokenRejected -> refresh -> one retry") {
        LatchkeyClient.create(config(tempDir()), MemoryStore()).use { client ->
            val session = signIn(client)
            val userinfo = Provider.discovery("userinfo_endpoint")
            val http = OkHttpClient.Builder().latchkey(client).build()
            val get = Request.Builder().url(userinfo).build()
            withContext(Dispatchers.IO) { http.newCall(get).execute() }.use { response ->
                assertEquals(200, response.code())
                assertNull(response.priorResponse(), "no retry needed")
                assertTrue(response.body()!!.string().contains("\"sub\":\"${session.subject}\""))
            }

            val rejected = client.accessToken()
            Provider.deleteAccessToken(rejected)
            val before = Provider.counter("refresh_grants")
            withContext(Dispatchers.IO) { http.newCall(get).execute() }.use { response ->
                assertEquals(200, response.code(), "retried with a refreshed token")
                assertEquals(401, response.priorResponse()?.code(), "the revoked token was refused first")
                assertTrue(response.body()!!.string().contains(session.subject))
            }
            assertEquals(before + 1, Provider.counter("refresh_grants"), "exactly one refresh")
            assertNotEquals(rejected, client.accessToken())

            // The grant is gone: the refresh fails, the 401 is returned after at most one try.
            Provider.revokeGrants()
            withContext(Dispatchers.IO) { http.newCall(get).execute() }.use { response ->
                assertEquals(401, response.code())
                assertNull(response.priorResponse(), "no retry without a new token")
            }
            assertEquals(LifecycleState.REAUTH_REQUIRED, client.state())
            val error = assertFailsWith<LatchkeyException> { client.accessToken() }
            assertTrue(error.requiresSignIn, "$error")
            // No token at all: the interceptor fails the call, the Latchkey error as its cause.
            val failed = assertFailsWith<java.io.IOException> {
                withContext(Dispatchers.IO) { http.newCall(get).execute() }
            }
            val cause = assertIs<LatchkeyException>(failed.cause)
            assertTrue(cause.requiresSignIn, "$cause")
            assertFalse(failed.message.orEmpty().contains(rejected), "no token in the message")
        }
    }

    test("registration persists as JSON and restores") {
        LatchkeyClient.create(config(tempDir()), MemoryStore()).use { client ->
            val json = client.register(registrationOptions()).use { it.toJson() }
            assertEquals(json, client.registrationJson())
            LatchkeyClient.create(config(tempDir()), MemoryStore()).use { other ->
                assertFalse(other.restoreRegistration(json = null))
                assertTrue(other.restoreRegistration(json))
                assertEquals(LifecycleState.REGISTERED, other.state())
                other.registration()!!.use { assertEquals(listOf(REDIRECT_URI), it.redirectUris()) }
            }
        }
        val error = assertFailsWith<LatchkeyException.Config> { ClientRegistration.fromJson("{}") }
        assertTrue(error.reason.contains("registration"))
    }

    test("a failing save is retried, then succeeds") {
        val store = MemoryStore(failSaves = 2)
        LatchkeyClient.create(config(tempDir()), store).use { client ->
            signIn(client)
            assertEquals(3, store.saveAttempts.get())
            assertTrue(store.has("default"))
        }
    }

    test("a save that keeps failing surfaces a typed store error") {
        val store = MemoryStore(failSaves = Int.MAX_VALUE, retryable = true)
        LatchkeyClient.create(config(tempDir()), store).use { client ->
            val error = assertFailsWith<LatchkeyException.Store> { signIn(client) }
            assertEquals("save", error.operation)
            assertTrue(error.retryable)
            assertTrue(error.detail.contains("keychain locked"), error.detail)
            assertTrue(store.saveAttempts.get() > 1, "retried: ${store.saveAttempts.get()}")
            assertFalse(store.has("default"))
        }
    }

    test("a permanent save failure is not retried") {
        val store = MemoryStore(failSaves = Int.MAX_VALUE, retryable = false)
        LatchkeyClient.create(config(tempDir()), store).use { client ->
            val error = assertFailsWith<LatchkeyException.Store> { signIn(client) }
            assertFalse(error.retryable)
            assertEquals(1, store.saveAttempts.get())
        }
    }

    test("another process restores the session through an async foreign load") {
        val dir = tempDir()
        val store = MemoryStore()
        val subject = LatchkeyClient.create(config(dir), store).use { client ->
            val session = signIn(client)
            client.saveRegistrationTo { File(dir, "registration.json").writeText(it) }
            session.subject
        }
        val loadsBefore = store.loads.get()
        LatchkeyClient.create(config(dir, holder = "extension"), store).use { extension ->
            extension.restoreRegistrationFrom(File(dir, "registration.json").readText())
            val restored = assertNotNull(extension.restoreSession())
            assertEquals(subject, restored.subject)
            assertTrue(store.loads.get() > loadsBefore, "the foreign load ran")
            assertTrue(extension.accessToken().isNotEmpty())
        }
    }

    test("errors are typed exceptions with fields") {
        LatchkeyClient.create(config(tempDir()), MemoryStore()).use { client ->
            assertFailsWith<LatchkeyException.NotRegistered> { client.startLogin(LoginOptions()) }
            client.register(registrationOptions()).close()
            assertNull(client.restoreSession())
            assertFailsWith<LatchkeyException.NoSession> { client.accessToken() }
            val start = client.startLogin(LoginOptions())
            val denied = assertFailsWith<LatchkeyException.Authorization> {
                client.finishLogin(browse(start.url, deny = true))
            }
            assertEquals("access_denied", denied.code)
            val unknown = client.startLogin(LoginOptions())
            assertTrue(client.abortLogin(unknown.state))
            assertFalse(client.abortLogin(unknown.state))
            val stale = assertFailsWith<LatchkeyException.UnknownState> {
                client.finishLogin("$REDIRECT_URI?code=x&state=${unknown.state}&iss=${Provider.issuer}")
            }
            assertTrue(stale.isStaleRedirect && !stale.requiresSignIn && !stale.isRetryable)
            val mixUp = client.startLogin(LoginOptions())
            val mismatch = assertFailsWith<LatchkeyException.IssuerMismatch> {
                client.finishLogin("$REDIRECT_URI?code=x&state=${mixUp.state}&iss=https://attacker.example")
            }
            assertEquals("https://attacker.example", mismatch.actual)
            assertFalse(mismatch.isStaleRedirect)
            val missing = client.startLogin(LoginOptions())
            val noIss = assertFailsWith<LatchkeyException.IssuerMismatch> {
                client.finishLogin("$REDIRECT_URI?code=x&state=${missing.state}")
            }
            assertNull(noIss.actual)
            val repeated = client.startLogin(LoginOptions())
            val twice = assertFailsWith<LatchkeyException.RepeatedParameter> {
                client.finishLogin("$REDIRECT_URI?code=x&code=y&state=${repeated.state}&iss=${Provider.issuer}")
            }
            assertEquals("code", twice.name)
            val forged = assertFailsWith<LatchkeyException.InvalidResponse> {
                client.handleBackchannelLogout("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
            }
            assertTrue(forged.reason.contains("logout token"), forged.reason)
        }
        val insecure = assertFailsWith<LatchkeyException.InsecureUrl> {
            LatchkeyClient.create(config(tempDir()).copy(allowInsecureLoopback = false), MemoryStore())
        }
        assertTrue(insecure.reason.isNotEmpty())
    }

    test("a login started by a killed process is finished by a new process") {
        val dir = tempDir()
        LatchkeyClient.create(config(dir), FileStore(dir)).use { client ->
            client.register(registrationOptions()).close()
            client.saveRegistrationTo { File(dir, "registration.json").writeText(it) }
        }
        val java = File(System.getProperty("java.home"), "bin/java").path
        val worker = ProcessBuilder(
            java, "-Djna.library.path=${System.getProperty("jna.library.path")}",
            "-cp", System.getProperty("java.class.path"),
            "dev.latchkey.StartLoginWorkerKt", dir.path,
        ).redirectErrorStream(true).start()
        val output = worker.inputStream.bufferedReader().readText()
        assertTrue(worker.waitFor(60, TimeUnit.SECONDS), "worker finished")
        assertEquals(0, worker.exitValue(), output)
        val url = output.lines().first { it.startsWith("url ") }.removePrefix("url ")
        assertTrue(File(dir, "default.pending-login.session").exists(), "the pending login was persisted")
        val redirect = browse(url) // the browser comes back after the process died

        // Without persistence a new process cannot finish it: the state is unknown.
        LatchkeyClient.create(config(dir, holder = "plain"), FileStore(dir)).use { plain ->
            plain.restoreRegistrationFrom(File(dir, "registration.json").readText())
            assertFailsWith<LatchkeyException.UnknownState> { plain.finishLogin(redirect) }
        }
        LatchkeyClient.create(config(dir, holder = "new-app").copy(persistPendingLogins = true), FileStore(dir)).use { app ->
            app.restoreRegistrationFrom(File(dir, "registration.json").readText())
            val session = app.finishLogin(redirect)
            assertTrue(session.subject.isNotEmpty())
            assertEquals(LifecycleState.AUTHENTICATED, app.state())
            assertTrue(app.userinfo().contains(session.subject))
            assertFalse(File(dir, "default.pending-login.session").exists(), "consumed: the key is cleared")
            assertFailsWith<LatchkeyException.UnknownState> { app.finishLogin(redirect) }
        }
    }

    test("two processes sharing one SQLite file refresh once") {
        val dir = tempDir()
        Provider.config("{\"access_token_ttl\": 2}")
        try {
            LatchkeyClient.create(config(dir), FileStore(dir)).use { client ->
                signIn(client)
                client.saveRegistrationTo { File(dir, "registration.json").writeText(it) }
            }
        } finally {
            Provider.config("{\"access_token_ttl\": 60}")
        }
        delay(3_000) // let the 2 s access token expire: both processes must refresh first
        val before = Provider.counter("refresh_grants")
        val reuseBefore = Provider.counter("reuse_detections")
        val java = File(System.getProperty("java.home"), "bin/java").path
        val workers = (1..2).map {
            ProcessBuilder(
                java, "-Djna.library.path=${System.getProperty("jna.library.path")}",
                "-cp", System.getProperty("java.class.path"),
                "dev.latchkey.SharedRefreshWorkerKt", dir.path,
            ).redirectErrorStream(true).start()
        }
        val outputs = workers.map { process ->
            val output = process.inputStream.bufferedReader().readText()
            assertTrue(process.waitFor(90, TimeUnit.SECONDS), "worker finished")
            assertEquals(0, process.exitValue(), "worker output: $output")
            output.lines().last { it.startsWith("generation") }
        }
        assertEquals(1, outputs.toSet().size, "both processes use the same generation: $outputs")
        assertEquals(before + 1, Provider.counter("refresh_grants"), "one refresh for two processes")
        assertEquals(reuseBefore, Provider.counter("reuse_detections"))
    }
}

/** The tests above as JUnit 5 dynamic tests, filtered by the names given to [main]. */
class LatchkeyJvmTest {
    @TestFactory
    fun tests(): List<DynamicTest> {
        registerTests()
        val filters = System.getProperty("latchkey.filters").orEmpty().split('\u0000').filter { it.isNotEmpty() }
        return tests.filterKeys { name -> filters.isEmpty() || filters.any { name.contains(it) } }
            .map { (name, body) ->
                DynamicTest.dynamicTest(name) {
                    runBlocking { withTimeout(120_000) { coroutineScope { body() } } }
                }
            }
    }
}

/** Prints one PASS/FAIL line per test, with its time and, on failure, the stack trace. */
private class PrintingListener : TestExecutionListener {
    private val started = java.util.concurrent.ConcurrentHashMap<String, Long>()

    override fun executionStarted(id: TestIdentifier) {
        started[id.uniqueId] = System.nanoTime()
    }

    override fun executionFinished(id: TestIdentifier, result: TestExecutionResult) {
        if (!id.isTest) return
        val millis = (System.nanoTime() - (started[id.uniqueId] ?: System.nanoTime())) / 1_000_000
        if (result.status == TestExecutionResult.Status.SUCCESSFUL) {
            println("PASS ${id.displayName} ($millis ms)")
        } else {
            val error = result.throwable.orElse(null)
            println("FAIL ${id.displayName} ($millis ms): $error")
            error?.printStackTrace(System.out)
        }
    }
}

/**
 * Runs the tests on the JUnit Platform (Jupiter engine); arguments filter by test name.
 * The last line is "N passed, M failed" for CI; the exit code is 1 on any failure.
 */
fun main(args: Array<String>) {
    System.setProperty("latchkey.filters", args.joinToString("\u0000"))
    val request = LauncherDiscoveryRequestBuilder.request()
        .selectors(DiscoverySelectors.selectClass(LatchkeyJvmTest::class.java))
        .build()
    val summary = SummaryGeneratingListener()
    LauncherFactory.create().execute(request, summary, PrintingListener())
    val passed = summary.summary.testsSucceededCount
    val failed = summary.summary.testsFailedCount + summary.summary.containersFailedCount
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0L && passed > 0L) 0 else 1)
}

// Test support for the JVM tests: the real test provider (started by scripts/test-kotlin.sh,
// found through LATCHKEY_TEST_ISSUER), the headless browser (LATCHKEY_BROWSER), and stores.
package dev.latchkey

import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.ByteBuffer
import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.time.Duration
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.delay

const val REDIRECT_URI = "dev.latchkey.test:/callback"

fun env(name: String): String =
    System.getenv(name) ?: error("$name is not set: run the tests through scripts/test-kotlin.sh")

/** The test provider's issuer and admin API. */
object Provider {
    val issuer: String by lazy { env("LATCHKEY_TEST_ISSUER") }
    private val http: HttpClient = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()

    private fun send(method: String, path: String, body: String? = null): String {
        val request = HttpRequest.newBuilder(URI.create("$issuer/__admin/$path"))
            .timeout(Duration.ofSeconds(10))
            .header("content-type", "application/json")
            .method(method, body?.let { HttpRequest.BodyPublishers.ofString(it) } ?: HttpRequest.BodyPublishers.noBody())
            .build()
        val response = http.send(request, HttpResponse.BodyHandlers.ofString())
        check(response.statusCode() in 200..299) { "admin $method $path: ${response.statusCode()}" }
        return response.body()
    }

    /** One counter of `GET /__admin/counters`, e.g. `refresh_grants`. */
    fun counter(name: String): Long {
        val json = send("GET", "counters")
        val match = Regex("\"$name\"\\s*:\\s*(\\d+)").find(json) ?: error("no counter $name in $json")
        return match.groupValues[1].toLong()
    }

    fun config(json: String) { send("POST", "config", json) }
    fun revokeGrants() { send("POST", "revoke-grants", "{}") }

    /** A string field of the provider's discovery document, e.g. `userinfo_endpoint`. */
    fun discovery(field: String): String {
        val request = HttpRequest.newBuilder(URI.create("$issuer/.well-known/openid-configuration"))
            .timeout(Duration.ofSeconds(10)).build()
        val json = http.send(request, HttpResponse.BodyHandlers.ofString()).body()
        return Regex("\"$field\"\\s*:\\s*\"([^\"]+)\"").find(json)?.groupValues?.get(1)
            ?: error("no $field in discovery")
    }

    /** Deletes one access token at the provider; its grant and refresh token stay. */
    fun deleteAccessToken(token: String) {
        val body = send("POST", "delete-access-token", "{\"token\": \"$token\"}")
        check(body.contains("\"deleted\":true")) { "access token not found: $body" }
    }

    fun reset() { send("POST", "reset", "{}") }
}

/** Plays the user's browser with target/debug/latchkey-browser; returns the app's redirect. */
fun browse(url: String, deny: Boolean = false): String {
    val command = mutableListOf(env("LATCHKEY_BROWSER"), "--redirect-prefix", REDIRECT_URI)
    if (deny) command += "--deny"
    command += url
    val process = ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start()
    val output = process.inputStream.bufferedReader().readText().trim()
    check(process.waitFor(30, TimeUnit.SECONDS)) { "latchkey-browser timed out" }
    check(process.exitValue() == 0) { "latchkey-browser failed (${process.exitValue()})" }
    return output.lines().last()
}

fun tempDir(): File = Files.createTempDirectory("latchkey-kt").toFile().apply { deleteOnExit() }

fun config(dir: File, holder: String = "app") = LatchkeyConfig(
    issuer = Provider.issuer,
    coordinationDbPath = File(dir, "coordination.sqlite").path,
    holder = holder,
    allowInsecureLoopback = true,
)

fun registrationOptions() = RegistrationOptions(
    redirectUris = listOf(REDIRECT_URI),
    postLogoutRedirectUris = listOf("dev.latchkey.test:/logged-out"),
    clientName = "Latchkey Kotlin tests",
)

/** Registers, starts a login, plays the browser and finishes the login. */
suspend fun signIn(client: LatchkeyClient): Session {
    client.register(registrationOptions()).close()
    val start = client.startLogin(LoginOptions(scopes = listOf("openid", "profile")))
    return client.finishLogin(browse(start.url))
}

/** An in-memory store whose saves fail [failSaves] times and whose loads suspend. */
class MemoryStore(
    private val failSaves: Int = 0,
    private val retryable: Boolean = true,
) : SessionStore {
    private val blobs = java.util.concurrent.ConcurrentHashMap<String, SessionBlob>()
    val saveAttempts = AtomicInteger()
    val loads = AtomicInteger()

    override suspend fun save(account: String, blob: SessionBlob) {
        if (saveAttempts.incrementAndGet() <= failSaves) {
            throw StoreFailure.Failed("keychain locked", retryable)
        }
        blobs[account] = blob
    }

    override suspend fun load(account: String): SessionBlob? {
        loads.incrementAndGet()
        delay(20) // a real suspension: Rust awaits the Kotlin coroutine
        return blobs[account]
    }

    override suspend fun clear(account: String) {
        blobs.remove(account)
    }

    fun has(account: String) = blobs.containsKey(account)
}

/** A store of one file per account in [dir], shared by processes (files are 0600). */
class FileStore(private val dir: File) : SessionStore {
    private fun file(account: String) = File(dir, "$account.session")

    override suspend fun save(account: String, blob: SessionBlob) {
        val bytes = ByteBuffer.allocate(12 + blob.data.size)
            .putLong(blob.generation.toLong()).putInt(blob.format.toInt()).put(blob.data).array()
        val temporary = Files.createTempFile(dir.toPath(), "save", ".tmp") // 0600 on POSIX
        Files.write(temporary, bytes)
        Files.move(temporary, file(account).toPath(), StandardCopyOption.ATOMIC_MOVE)
    }

    override suspend fun load(account: String): SessionBlob? {
        val source = file(account)
        if (!source.exists()) return null
        val buffer = ByteBuffer.wrap(source.readBytes())
        val generation = buffer.long.toULong()
        val format = buffer.int.toUInt()
        return SessionBlob(generation, format, ByteArray(buffer.remaining()).also { buffer.get(it) })
    }

    override suspend fun clear(account: String) {
        file(account).delete()
    }
}

/** Records every event an observer receives. */
class RecordingObserver : SessionObserver {
    private val list = java.util.Collections.synchronizedList(mutableListOf<SessionEvent>())
    override fun onEvent(event: SessionEvent) { list += event }
    val events: List<SessionEvent> get() = synchronized(list) { list.toList() }
}

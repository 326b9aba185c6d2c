// A runnable example on the JVM: an app and its notification extension (on Android: a
// second process, e.g. android:process=":push") as two processes sharing one session (one
// coordination database, one store), against a real provider.
//
//   ExampleKt demo DIR        the app: registers, signs in ($LATCHKEY_BROWSER plays the user),
//                             starts the extension process, then adopts its refresh
//   ExampleKt extension DIR   the extension: restores the session and refreshes once
//
// The issuer comes from $LATCHKEY_TEST_ISSUER (loopback http allowed: a development provider).
package dev.latchkey.example

import dev.latchkey.LatchkeyClient
import dev.latchkey.LatchkeyConfig
import dev.latchkey.LoginOptions
import dev.latchkey.RegistrationOptions
import dev.latchkey.SessionBlob
import dev.latchkey.SessionStore
import dev.latchkey.events
import dev.latchkey.restoreRegistrationFrom
import dev.latchkey.saveRegistrationTo
import java.io.File
import java.nio.ByteBuffer
import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

private const val REDIRECT_URI = "dev.latchkey.example:/callback"

private fun env(name: String): String = System.getenv(name) ?: run {
    System.err.println("$name is not set")
    exitProcess(2)
}

private fun config(dir: File, holder: String) = LatchkeyConfig(
    issuer = env("LATCHKEY_TEST_ISSUER"),
    coordinationDbPath = File(dir, "coordination.sqlite").path,
    holder = holder,
    allowInsecureLoopback = true,
)

/** One 0600 file per account in [dir] (on Android use KeystoreSessionStore). */
private class FileSessionStore(private val dir: File) : SessionStore {
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

private fun say(role: String, text: String) = println("[$role] $text")

private fun browse(url: String): String {
    val process = ProcessBuilder(env("LATCHKEY_BROWSER"), "--redirect-prefix", REDIRECT_URI, url)
        .redirectError(ProcessBuilder.Redirect.INHERIT).start()
    val output = process.inputStream.bufferedReader().readText().trim()
    check(process.waitFor(30, TimeUnit.SECONDS) && process.exitValue() == 0) { "the browser failed" }
    return output.lines().last()
}

private suspend fun CoroutineScope.app(dir: File) {
    LatchkeyClient.create(config(dir, "app"), FileSessionStore(dir)).use { client ->
        val printer = launch(Dispatchers.Unconfined, start = CoroutineStart.UNDISPATCHED) {
            client.events().collect { say("app", "event ${it.event.javaClass.simpleName} -> ${it.to}") }
        }
        client.register(RegistrationOptions(redirectUris = listOf(REDIRECT_URI), clientName = "Latchkey Kotlin example")).close()
        client.saveRegistrationTo { File(dir, "registration.json").writeText(it) }
        val start = client.startLogin(LoginOptions(scopes = listOf("openid", "profile")))
        val session = client.finishLogin(browse(start.url))
        say("app", "signed in as ${session.subject}, generation ${session.generation}")

        val java = File(System.getProperty("java.home"), "bin/java").path
        val extension = ProcessBuilder(
            java, "-Djna.library.path=${System.getProperty("jna.library.path")}",
            "-cp", System.getProperty("java.class.path"), "dev.latchkey.example.ExampleKt", "extension", dir.path,
        ).inheritIO().start()
        check(extension.waitFor(60, TimeUnit.SECONDS) && extension.exitValue() == 0) { "the extension failed" }
        val generation = client.sync()?.generation
        say("app", "adopted the extension's refresh: generation $generation")
        check(generation == session.generation + 1u) { "expected generation ${session.generation + 1u}" }
        val ok = client.userinfo().contains(session.subject)
        say("app", "userinfo with the shared token: ${if (ok) "ok" else "wrong subject"}")
        check(ok)
        printer.cancelAndJoin()
    }
}

private suspend fun notificationExtension(dir: File) {
    LatchkeyClient.create(config(dir, "notification-extension"), FileSessionStore(dir)).use { client ->
        client.restoreRegistrationFrom(File(dir, "registration.json").readText())
        val session = checkNotNull(client.restoreSession()) { "no session to restore" }
        say("extension", "restored generation ${session.generation}")
        say("extension", "refresh: ${client.refresh()}")
    }
}

fun main(args: Array<String>) {
    if (args.size != 2) {
        System.err.println("usage: ExampleKt demo|extension DIR")
        exitProcess(2)
    }
    val dir = File(args[1])
    val code = try {
        runBlocking {
            withTimeout(90_000) {
                when (args[0]) {
                    "demo" -> app(dir)
                    "extension" -> notificationExtension(dir)
                    else -> error("unknown role ${args[0]}")
                }
            }
        }
        0
    } catch (error: Exception) {
        System.err.println("example failed: $error")
        1
    }
    exitProcess(code)
}

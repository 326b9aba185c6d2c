// The second program of the two-process test: `SharedRefreshWorkerKt DIR` restores the
// registration and the session a first process left in DIR (coordination database + file
// store) and asks for a fresh access token. Prints "generation N" on success.
package dev.latchkey

import java.io.File
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

fun main(args: Array<String>) {
    val dir = File(args.single())
    val code = runBlocking {
        withTimeout(60_000) {
            LatchkeyClient.create(config(dir, holder = "worker"), FileStore(dir)).use { client ->
                client.restoreRegistrationFrom(File(dir, "registration.json").readText())
                checkNotNull(client.restoreSession()) { "no session to restore" }
                check(client.accessToken().isNotEmpty())
                println("generation ${client.session()?.generation}")
                0
            }
        }
    }
    exitProcess(code)
}

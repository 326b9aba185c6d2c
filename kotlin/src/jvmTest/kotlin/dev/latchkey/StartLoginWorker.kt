// The first program of the process-death test: `StartLoginWorkerKt DIR` restores the
// registration in DIR, starts a login with pending logins persisted in the file store,
// prints "url <authorization URL>" and dies at once (Runtime.halt: no clean-up runs), as an
// app does when the system kills it while the browser is open.
package dev.latchkey

import java.io.File
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

fun main(args: Array<String>) {
    val dir = File(args.single())
    runBlocking {
        withTimeout(60_000) {
            val client = LatchkeyClient.create(
                config(dir, holder = "killed-app").copy(persistPendingLogins = true), FileStore(dir),
            )
            client.restoreRegistrationFrom(File(dir, "registration.json").readText())
            val start = client.startLogin(LoginOptions(scopes = listOf("openid", "profile")))
            println("url ${start.url}")
            System.out.flush()
        }
    }
    Runtime.getRuntime().halt(0)
}

// OkHttp integration: an Interceptor that adds the bearer token and an Authenticator that,
// on 401, reports the rejected token to Latchkey (tokenRejected) and retries once.
// Compiled against OkHttp 3.14 (binary compatible with OkHttp 4: the Java accessors remain).
package dev.latchkey

import kotlinx.coroutines.runBlocking
import okhttp3.Authenticator
import okhttp3.Interceptor
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.Response
import okhttp3.Route

private const val AUTHORIZATION = "Authorization"
private const val BEARER = "Bearer "

/**
 * Adds `Authorization: Bearer <token>` from [accessTokenFast] (refreshing first,
 * once across processes, when it is about to expire) to requests without that header.
 * Runs on OkHttp's thread and blocks it while a refresh runs. A [LatchkeyException] (e.g.
 * [LatchkeyException.NoSession]) fails the call with an IOException carrying it as cause.
 */
class LatchkeyInterceptor(private val client: LatchkeyClient) : Interceptor {
    override fun intercept(chain: Interceptor.Chain): Response {
        val request = chain.request()
        if (request.header(AUTHORIZATION) != null) return chain.proceed(request)
        val token = try {
            // A token fresh in memory without a coroutine; runBlocking only when it is due.
            client.freshAccessTokenOrNull() ?: runBlocking { client.accessToken() }
        } catch (error: LatchkeyException) {
            throw java.io.IOException("no access token: ${error.javaClass.simpleName}", error)
        }
        return chain.proceed(request.newBuilder().header(AUTHORIZATION, BEARER + token).build())
    }
}

/**
 * Answers a 401 to a request that carried a Latchkey bearer token: reports the token with
 * [LatchkeyClient.tokenRejected] (adopting another process's newer token, or refreshing once)
 * and retries once with the token it returns. Gives up (OkHttp then returns the 401) after
 * one retry, when the request had no bearer token, or when Latchkey fails (e.g. the user
 * must sign in again: check [LatchkeyClient.state]).
 */
class LatchkeyAuthenticator(private val client: LatchkeyClient) : Authenticator {
    override fun authenticate(route: Route?, response: Response): Request? {
        if (response.priorResponse() != null) return null // retried once already
        val header = response.request().header(AUTHORIZATION) ?: return null
        if (!header.startsWith(BEARER)) return null
        val rejected = header.removePrefix(BEARER)
        val token = try {
            runBlocking { client.tokenRejected(rejected) }
        } catch (_: LatchkeyException) {
            return null
        }
        return response.request().newBuilder().header(AUTHORIZATION, BEARER + token).build()
    }
}

/** Adds the [LatchkeyInterceptor] and the [LatchkeyAuthenticator] of [client]. */
fun OkHttpClient.Builder.latchkey(client: LatchkeyClient): OkHttpClient.Builder =
    addInterceptor(LatchkeyInterceptor(client)).authenticator(LatchkeyAuthenticator(client))

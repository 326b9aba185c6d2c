// The fast path of accessToken() on the JVM: a token that is fresh in memory, served by one
// synchronous call into Rust (`fresh_access_token`, the first step of `access_token` on its
// own) instead of uniffi's async machinery.
//
// Why it calls the generated FFI functions itself: with JNA before 5.15 (Debian's 5.13 here),
// constructing a `Structure` reads the class's fields by reflection and allocates native
// memory that JNA's cleaner thread frees again; `UniffiRustCallStatus` embeds a `RustBuffer`,
// so each one costs several of them. The generated code makes a new call status for every
// call (three per returned string: clone the handle, the call, free the buffer), which is
// most of the cost of a call through the binding. Here the call and the freeing of its
// buffer share one call status per thread, reset before each use; the Rust calls are the
// same ones the generated method makes (clone the handle, the call, free the buffer).
package dev.latchkey

/** One call status per thread, reused by [freshAccessTokenOrNull] (never across threads). */
private val callStatus: ThreadLocal<UniffiRustCallStatus> = ThreadLocal.withInitial { UniffiRustCallStatus() }

/** This thread's call status, reset to success with an empty error buffer. */
private fun resetCallStatus(): UniffiRustCallStatus = callStatus.get().apply {
    code = UNIFFI_CALL_SUCCESS
    error_buf.capacity = 0
    error_buf.len = 0
    error_buf.data = null
}

/** Throws what the generated code throws for a failed call (and frees the error buffer). */
private fun UniffiRustCallStatus.throwIfFailed() {
    val failed = code
    if (failed == UNIFFI_CALL_SUCCESS) return
    // A copy: the error buffer is part of this thread's reused status.
    val buf = RustBuffer.create(error_buf.capacity.toULong(), error_buf.len.toULong(), error_buf.data)
    code = UNIFFI_CALL_SUCCESS
    error_buf.data = null
    if (failed == UNIFFI_CALL_ERROR) throw LatchkeyException.ErrorHandler.lift(buf)
    throw InternalException(if (buf.len > 0) FfiConverterString.lift(buf) else "Rust panic")
}

/**
 * The access token if it is fresh in memory for at least [minTtlSecs] (and the refresh
 * margin), else null: synchronous, no I/O, never refreshes; the same rules and errors as the
 * first step of [LatchkeyClient.accessToken]. The same as the generated
 * [LatchkeyClient.freshAccessToken], at a fraction of its cost on the JVM. Throws
 * [LatchkeyException.NoSession], [LatchkeyException.LoggedOut] or
 * [LatchkeyException.ReauthRequired]. The returned string is secret: never log it.
 */
fun LatchkeyClient.freshAccessTokenOrNull(minTtlSecs: ULong = 0u): String? = callWithHandle { handle ->
    val status = resetCallStatus()
    val buf = UniffiLib.uniffi_latchkey_ffi_fn_method_latchkeyclient_fresh_access_token(
        handle, FfiConverterULong.lower(minTtlSecs), status,
    )
    status.throwIfFailed()
    try {
        FfiConverterOptionalString.read(checkNotNull(buf.asByteBuffer()) { "empty buffer from fresh_access_token" })
    } finally {
        UniffiLib.ffi_latchkey_ffi_rustbuffer_free(buf, resetCallStatus())
        callStatus.get().throwIfFailed()
    }
}

/**
 * [LatchkeyClient.accessToken] (or [LatchkeyClient.accessTokenWithMinTtl] for a nonzero
 * [minTtlSecs]) with its fast path taken synchronously: a token fresh in memory comes from
 * [freshAccessTokenOrNull]; otherwise it awaits the async call, which refreshes (once across
 * all processes) or adopts. Same result and errors as the async call. Same name as in Swift.
 */
suspend fun LatchkeyClient.accessTokenFast(minTtlSecs: ULong = 0u): String =
    freshAccessTokenOrNull(minTtlSecs)
        ?: if (minTtlSecs == 0uL) accessToken() else accessTokenWithMinTtl(minTtlSecs)

// The fast path of accessToken() on the JVM: a token that is fresh in memory, served by one
// synchronous call into Rust (`fresh_access_token`, the first step of `access_token` on its
// own) instead of uniffi's async machinery.
//
// Why it calls the generated FFI functions itself: every JNA `Memory` block registers in a
// global map of JNA (ConcurrentHashMap keyed by address) and is removed again by JNA's cleaner
// thread after a collection, so each one costs map traffic on two threads, reference processing
// in the collector and, with JNA before 5.15 (Debian's 5.13 here), field reflection. A
// generated `UniffiRustCallStatus` takes four of them (its own, the `RustBuffer` it embeds, and
// two more JNA makes to size that field) and the generated code makes a new one for every
// call: a synchronous call that returns a string takes three (clone the handle, the call, free
// the buffer), thirteen blocks in all. Here those three calls share one call status per thread,
// reset before each use, so only the buffer JNA returns is allocated. The Rust calls are the
// ones the generated method makes, in the same order, under the same call counter that keeps
// the object alive (read from the generated class by reflection; where that is not possible,
// the generated `callWithHandle` clones the handle instead, at four blocks more).
package dev.latchkey

import java.lang.reflect.Field
import java.util.concurrent.atomic.AtomicLong

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

/** The fields of the generated [LatchkeyClient] that its `callWithHandle` uses. */
private class ClientFields {
    private fun field(name: String): Field = LatchkeyClient::class.java.getDeclaredField(name).apply { isAccessible = true }
    val handle = field("handle")
    val callCounter = field("callCounter")
    val cleanable = field("cleanable")
}

/** Null when the generated class's fields cannot be read (then [withClonedHandle] falls back). */
private val clientFields: ClientFields? = try {
    ClientFields()
} catch (_: ReflectiveOperationException) {
    null
} catch (_: RuntimeException) { // SecurityException, InaccessibleObjectException
    null
}

/**
 * The generated `callWithHandle` (keep the object alive while [block] runs with a clone of its
 * handle, which the Rust method consumes), with the clone made on this thread's call status.
 */
private inline fun <R> LatchkeyClient.withClonedHandle(block: (handle: Long) -> R): R {
    val fields = clientFields ?: return callWithHandle(block)
    val counter = fields.callCounter.get(this) as AtomicLong
    do {
        val c = counter.get()
        check(c != 0L) { "${javaClass.simpleName} object has already been destroyed" }
        check(c != Long.MAX_VALUE) { "${javaClass.simpleName} call counter would overflow" }
    } while (!counter.compareAndSet(c, c + 1L))
    try {
        val handle = fields.handle.getLong(this)
        if (handle == 0L) throw InternalException("uniffiCloneHandle() called on NoHandle object")
        val status = resetCallStatus()
        val clone = UniffiLib.uniffi_latchkey_ffi_fn_clone_latchkeyclient(handle, status)
        status.throwIfFailed()
        return block(clone)
    } finally {
        if (counter.decrementAndGet() == 0L) (fields.cleanable.get(this) as UniffiCleaner.Cleanable?)?.clean()
    }
}

/**
 * The access token if it is fresh in memory for at least [minTtlSecs] (and the refresh
 * margin), else null: synchronous, no I/O, never refreshes; the same rules and errors as the
 * first step of [LatchkeyClient.accessToken]. The same as the generated
 * [LatchkeyClient.freshAccessToken], at a fraction of its cost on the JVM. Throws
 * [LatchkeyException.NoSession], [LatchkeyException.LoggedOut] or
 * [LatchkeyException.ReauthRequired]. The returned string is secret: never log it.
 */
fun LatchkeyClient.freshAccessTokenOrNull(minTtlSecs: ULong = 0u): String? = withClonedHandle { handle ->
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

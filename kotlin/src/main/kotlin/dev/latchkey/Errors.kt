// Questions an app asks of a LatchkeyException, with the same names as in Swift.
package dev.latchkey

/** True when the user has to sign in again: the session ended or never existed. */
val LatchkeyException.requiresSignIn: Boolean
    get() = this is LatchkeyException.ReauthRequired ||
        this is LatchkeyException.LoggedOut ||
        this is LatchkeyException.NoSession

/** True when the same call may succeed later (network, 5xx/429, coordination, store). */
val LatchkeyException.isRetryable: Boolean
    get() = when (this) {
        is LatchkeyException.Network -> retryable
        is LatchkeyException.HttpStatus -> retryable
        is LatchkeyException.Provider -> retryable
        is LatchkeyException.Store -> retryable
        is LatchkeyException.StoreMismatch -> retryable
        is LatchkeyException.LeaseLost -> retryable
        is LatchkeyException.LockTimeout -> retryable
        is LatchkeyException.RefreshInDoubt -> retryable
        is LatchkeyException.Database -> retryable
        else -> false
    }

/**
 * True for a redirect an app may ignore: a stale or repeated redirect of a login that was
 * finished, aborted or expired. An [LatchkeyException.IssuerMismatch] is NOT one: report it.
 */
val LatchkeyException.isStaleRedirect: Boolean
    get() = this is LatchkeyException.UnknownState

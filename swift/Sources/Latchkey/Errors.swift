// Questions an app asks of a LatchkeyError, with the same names as in Kotlin.

extension LatchkeyError {
    /// True when the user has to sign in again: the session ended or never existed.
    public var requiresSignIn: Bool {
        switch self {
        case .ReauthRequired, .LoggedOut, .NoSession: return true
        default: return false
        }
    }

    /// True when the same call may succeed later (network, 5xx/429, coordination, store).
    public var isRetryable: Bool {
        switch self {
        case .Network(_, let retryable),
             .HttpStatus(_, _, let retryable),
             .Provider(_, _, let retryable),
             .Store(_, _, let retryable),
             .StoreMismatch(_, let retryable),
             .LeaseLost(let retryable),
             .LockTimeout(let retryable),
             .RefreshInDoubt(let retryable),
             .Database(_, let retryable):
            return retryable
        default:
            return false
        }
    }

    /// True for a redirect the app may ignore: a stale or repeated redirect of a login that
    /// was finished, aborted or expired. ``LatchkeyError/IssuerMismatch(reason:actual:)`` is
    /// not one: report it (possible mix-up attack).
    public var isStaleRedirect: Bool {
        if case .UnknownState = self { return true }
        return false
    }
}

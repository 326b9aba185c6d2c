// The public `Latchkey` module: the generated bindings plus a thin idiomatic layer.
// Swift 6 language mode; the generated code lives in `LatchkeyGenerated` (Swift 5 mode).
@_exported import LatchkeyGenerated

/// Namespace for library-wide facts.
public enum Latchkey {
    /// The version of the native Latchkey library.
    public static var version: String { latchkeyVersion() }
}

/// A ``SessionObserver`` backed by a closure. It is called synchronously on a Latchkey
/// thread: keep it short and hop to the main actor yourself for UI work.
public final class ClosureSessionObserver: SessionObserver {
    private let body: @Sendable (SessionEvent) -> Void

    /// An observer that runs `body` for every event.
    public init(_ body: @escaping @Sendable (SessionEvent) -> Void) {
        self.body = body
    }

    /// Called by the Rust library once per event.
    public func onEvent(event: SessionEvent) {
        body(event)
    }
}

extension LatchkeyClient {
    /// Registers a closure observer until the returned handle is cancelled or released:
    /// keep the handle as long as you observe.
    public func observe(_ body: @escaping @Sendable (SessionEvent) -> Void) -> ObserverHandle {
        addObserver(observer: ClosureSessionObserver(body))
    }

    /// The registration in use as JSON, to persist (it may hold the registration access
    /// token: store it in the keychain). Nil when not registered.
    public func registrationJSON() -> String? {
        registration()?.toJson()
    }

    /// Restores a registration saved with ``registrationJSON()``. Returns false for nil.
    /// Throws ``LatchkeyError/Config(reason:)`` when it is not a registration of this issuer.
    @discardableResult
    public func restoreRegistration(json: String?) throws -> Bool {
        guard let json else { return false }
        try restoreRegistration(registration: ClientRegistration.fromJson(json: json))
        return true
    }

    /// ``accessToken()`` (or ``accessTokenWithMinTtl(minTtlSecs:)`` for a nonzero
    /// `minTtlSecs`) with its fast path taken synchronously: a token fresh in memory comes
    /// from ``freshAccessToken(minTtlSecs:)`` (one call, no future); otherwise it awaits the
    /// async call, which refreshes (once across all processes) or adopts. Same result and
    /// errors as the async call. Same name as in Kotlin, where it is the cheap path; in Swift
    /// the async call costs no more (BENCHMARKS.md). The token is secret: never log it.
    public func accessTokenFast(minTtlSecs: UInt64 = 0) async throws -> String {
        if let token = try freshAccessToken(minTtlSecs: minTtlSecs) {
            return token
        }
        if minTtlSecs == 0 {
            return try await accessToken()
        }
        return try await accessTokenWithMinTtl(minTtlSecs: minTtlSecs)
    }

    /// True when the error means the user has to sign in again (see
    /// ``LatchkeyError/requiresSignIn``); false for errors of other types.
    public static func requiresSignIn(_ error: Error) -> Bool {
        (error as? LatchkeyError)?.requiresSignIn ?? false
    }
}

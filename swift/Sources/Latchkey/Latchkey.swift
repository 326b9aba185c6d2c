// The public `Latchkey` module: the generated bindings plus a thin idiomatic layer.
// Swift 6 language mode; the generated code lives in `LatchkeyGenerated` (Swift 5 mode).
@_exported import LatchkeyGenerated

/// Namespace for library-wide facts.
public enum Latchkey {
    /// The version of the native Latchkey library.
    public static var version: String { latchkeyVersion() }

    /// Facts about the native library.
    public static var buildInfo: BuildInfo { LatchkeyGenerated.buildInfo() }
}

/// An ``Echo`` backed by an async closure, so callers need not declare a class.
public final class ClosureEcho: Echo {
    private let body: @Sendable (String) async throws -> String

    /// An echo that runs `body` for every call from Rust.
    public init(_ body: @escaping @Sendable (String) async throws -> String) {
        self.body = body
    }

    /// Called by the Rust library.
    public func echo(message: String) async throws -> String {
        try await body(message)
    }
}

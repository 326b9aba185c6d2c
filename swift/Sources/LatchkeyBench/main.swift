// What a Swift caller pays for a fresh token: `accessTokenFast()` (one synchronous call for a
// token fresh in memory) and `accessToken()` (async, uniffi's future) through the binding,
// with a session signed in for real against the test provider.
//
//   LatchkeyBench [BATCHES CALLS]   default 20 batches of 2000 calls, after 10 000 warm-up calls
//
// Needs $LATCHKEY_TEST_ISSUER (the provider; loopback http allowed) and $LATCHKEY_BROWSER
// (the headless browser that plays the user). scripts/bench.sh (section `token`) builds it
// with `swift build -c release` against the release build of latchkey-ffi and parses the one
// JSON line it prints on stdout. Figures, not assertions; it fails (exit 1) only when the
// measurement would be wrong: no session, or the token changed (a refresh ran) while timing.
// The token is never printed.
import Foundation
import Latchkey

let redirectURI = "dev.latchkey.bench:/callback"
let warmUpCalls = 10_000

func environment(_ name: String) -> String {
    guard let value = ProcessInfo.processInfo.environment[name] else {
        FileHandle.standardError.write(Data("LatchkeyBench: \(name) is not set\n".utf8))
        exit(2)
    }
    return value
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
}

/// Sessions in memory: the bench needs no persistence across processes.
final class MemoryStore: SessionStore, @unchecked Sendable {
    private let lock = NSLock()
    private var blobs: [String: SessionBlob] = [:]

    func save(account: String, blob: SessionBlob) async throws {
        lock.withLock { blobs[account] = blob }
    }

    func load(account: String) async throws -> SessionBlob? {
        lock.withLock { blobs[account] }
    }

    func clear(account: String) async throws {
        _ = lock.withLock { blobs.removeValue(forKey: account) }
    }
}

/// Plays the user's browser: returns the redirect the provider sent the app.
func browse(_ url: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: environment("LATCHKEY_BROWSER"))
    process.arguments = ["--redirect-prefix", redirectURI, url]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchFailure(description: "latchkey-browser exited with \(process.terminationStatus)")
    }
    return String(decoding: output, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
}

func nanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func run(batches: Int, calls: Int) async throws {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("latchkey-bench-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let config = LatchkeyConfig(
        issuer: environment("LATCHKEY_TEST_ISSUER"),
        coordinationDbPath: dir.appendingPathComponent("coordination.sqlite").path,
        holder: "bench",
        allowInsecureLoopback: true
    )
    let client = try await LatchkeyClient.create(config: config, store: MemoryStore())
    _ = try await client.register(options: RegistrationOptions(
        redirectUris: [redirectURI], clientName: "Latchkey Swift bench"))
    let start = try await client.startLogin(options: LoginOptions(scopes: ["openid", "profile"]))
    let session = try await client.finishLogin(redirectUrl: try browse(start.url))

    let first = try await client.accessToken()
    // Every call must return this token: a different one means a refresh ran while timing.
    var changed = 0
    for _ in 0..<warmUpCalls {
        if try await client.accessTokenFast() != first { changed += 1 }
    }
    // The loops are written out (no closure) so that only the call itself is timed.
    var fastNs: [Double] = []
    for _ in 0..<batches {
        let begin = nanoseconds()
        for _ in 0..<calls {
            if try await client.accessTokenFast() != first { changed += 1 }
        }
        fastNs.append(Double(nanoseconds() - begin) / Double(calls))
    }
    for _ in 0..<warmUpCalls {
        if try await client.accessToken() != first { changed += 1 }
    }
    var tokenNs: [Double] = []
    for _ in 0..<batches {
        let begin = nanoseconds()
        for _ in 0..<calls {
            if try await client.accessToken() != first { changed += 1 }
        }
        tokenNs.append(Double(nanoseconds() - begin) / Double(calls))
    }
    // A synchronous call through the same binding that returns no string: the fixed cost of
    // one crossing.
    var states = 0
    var stateNs: [Double] = []
    for _ in 0..<batches {
        let begin = nanoseconds()
        for _ in 0..<calls where client.state() == .authenticated { states += 1 }
        stateNs.append(Double(nanoseconds() - begin) / Double(calls))
    }
    let generation = client.session()?.generation
    guard changed == 0, generation == session.generation, states == batches * calls else {
        throw BenchFailure(description:
            "the session changed while timing (\(changed) other tokens, generation \(session.generation) -> \(generation.map(String.init) ?? "none"))")
    }
    let summary: [String: Any] = [
        "bench": "swift",
        "batches": batches,
        "calls": calls,
        "warm_up_calls": warmUpCalls,
        "access_token_median_ns": Int(median(tokenNs).rounded()),
        "access_token_min_ns": Int(tokenNs.min()!.rounded()),
        "access_token_max_ns": Int(tokenNs.max()!.rounded()),
        "fast_median_ns": Int(median(fastNs).rounded()),
        "fast_min_ns": Int(fastNs.min()!.rounded()),
        "fast_max_ns": Int(fastNs.max()!.rounded()),
        "state_median_ns": Int(median(stateNs).rounded()),
        "generation": session.generation,
    ]
    let json = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
    print(String(decoding: json, as: UTF8.self))
}

let arguments = CommandLine.arguments.dropFirst().map { Int($0) ?? 0 }
guard arguments.isEmpty || (arguments.count == 2 && arguments.allSatisfy { $0 > 0 }) else {
    FileHandle.standardError.write(Data("usage: LatchkeyBench [BATCHES CALLS]\n".utf8))
    exit(2)
}
do {
    try await run(batches: arguments.first ?? 20, calls: arguments.last ?? 2000)
} catch {
    FileHandle.standardError.write(Data("LatchkeyBench failed: \(error)\n".utf8))
    exit(1)
}

// Test support: the real test provider (started by scripts/test-swift.sh outside the chroot,
// found through LATCHKEY_TEST_ISSUER), the headless browser (LATCHKEY_BROWSER), and stores.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Latchkey
import XCTest

let redirectURI = "dev.latchkey.test:/callback"

struct TestEnvironmentMissing: Error, CustomStringConvertible {
    let description: String
}

func env(_ name: String) throws -> String {
    guard let value = ProcessInfo.processInfo.environment[name] else {
        throw TestEnvironmentMissing(description: "\(name) is not set: run scripts/test-swift.sh")
    }
    return value
}

/// The test provider's admin API.
enum Provider {
    static func issuer() throws -> String { try env("LATCHKEY_TEST_ISSUER") }

    static func admin(_ method: String, _ path: String, _ body: String? = nil) async throws -> Data {
        var request = URLRequest(url: URL(string: "\(try issuer())/__admin/\(path)")!)
        request.httpMethod = method
        request.timeoutInterval = 10
        request.setValue("application/json", forHTTPHeaderField: "content-type")
        request.httpBody = body?.data(using: .utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        XCTAssert((200..<300).contains(status), "admin \(method) \(path): \(status)")
        return data
    }

    /// Revokes every grant at the provider: all their tokens die.
    static func revokeGrants() async throws {
        _ = try await admin("POST", "revoke-grants", "{}")
    }

    /// Deletes one access token at the provider; its grant and refresh token stay.
    static func deleteAccessToken(_ token: String) async throws {
        let body = try await admin("POST", "delete-access-token", "{\"token\": \"\(token)\"}")
        XCTAssertTrue(String(decoding: body, as: UTF8.self).contains("\"deleted\":true"))
    }

    /// A string field of the provider's discovery document, e.g. `userinfo_endpoint`.
    static func discovery(_ field: String) async throws -> String {
        let url = URL(string: "\(try issuer())/.well-known/openid-configuration")!
        let (data, _) = try await URLSession.shared.data(for: URLRequest(url: url))
        let json = try JSONSerialization.jsonObject(with: data)
        return try XCTUnwrap((json as? [String: Any])?[field] as? String, field)
    }

    /// One counter of `GET /__admin/counters`, e.g. `refresh_grants`.
    static func counter(_ name: String) async throws -> Int {
        let json = try JSONSerialization.jsonObject(with: try await admin("GET", "counters"))
        return try XCTUnwrap((json as? [String: Any])?[name] as? Int, "counter \(name)")
    }
}

/// Plays the user's browser with latchkey-browser; returns the app's redirect URL.
func browse(_ url: String, deny: Bool = false, redirectPrefix: String = redirectURI) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try env("LATCHKEY_BROWSER"))
    process.arguments = ["--redirect-prefix", redirectPrefix] + (deny ? ["--deny"] : []) + [url]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    XCTAssertEqual(process.terminationStatus, 0, "latchkey-browser")
    let text = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return text.split(separator: "\n").last.map(String.init) ?? ""
}

func tempDir() throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("latchkey-swift-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

func config(_ dir: URL, holder: String = "app", insecure: Bool = true) throws -> LatchkeyConfig {
    LatchkeyConfig(
        issuer: try Provider.issuer(),
        coordinationDbPath: dir.appendingPathComponent("coordination.sqlite").path,
        holder: holder,
        allowInsecureLoopback: insecure
    )
}

func registrationOptions() -> RegistrationOptions {
    RegistrationOptions(
        redirectUris: [redirectURI],
        postLogoutRedirectUris: ["dev.latchkey.test:/logged-out"],
        clientName: "Latchkey Swift tests"
    )
}

/// Registers, starts a login, plays the browser and finishes the login.
func signIn(_ client: LatchkeyClient) async throws -> Session {
    _ = try await client.register(options: registrationOptions())
    let start = try await client.startLogin(options: LoginOptions(scopes: ["openid", "profile"]))
    return try await client.finishLogin(redirectUrl: try browse(start.url))
}

/// An in-memory store whose saves fail `failSaves` times and whose loads suspend.
final class MemoryStore: SessionStore, @unchecked Sendable {
    private let lock = NSLock()
    private var blobs: [String: SessionBlob] = [:]
    private var saves = 0
    private var loadCount = 0
    private let failSaves: Int
    private let retryable: Bool

    init(failSaves: Int = 0, retryable: Bool = true) {
        self.failSaves = failSaves
        self.retryable = retryable
    }

    var saveAttempts: Int { lock.withLock { saves } }
    var loads: Int { lock.withLock { loadCount } }
    func has(_ account: String) -> Bool { lock.withLock { blobs[account] != nil } }

    func save(account: String, blob: SessionBlob) async throws {
        let attempt = lock.withLock { saves += 1; return saves }
        if attempt <= failSaves {
            throw StoreFailure.Failed(detail: "keychain locked", retryable: retryable)
        }
        lock.withLock { blobs[account] = blob }
    }

    func load(account: String) async throws -> SessionBlob? {
        lock.withLock { loadCount += 1 }
        try await Task.sleep(nanoseconds: 20_000_000) // a real suspension: Rust awaits Swift
        return lock.withLock { blobs[account] }
    }

    func clear(account: String) async throws {
        _ = lock.withLock { blobs.removeValue(forKey: account) }
    }
}

/// Records every event an observer receives.
final class RecordingObserver: SessionObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var list: [SessionEvent] = []
    func onEvent(event: SessionEvent) { lock.withLock { list.append(event) } }
    var events: [SessionEvent] { lock.withLock { list } }
}

/// A store of one 0600 file per account in `dir`, shared by processes (the same layout as
/// the example's FileSessionStore: generation, format, data).
final class FileStore: SessionStore, @unchecked Sendable {
    private let dir: URL
    init(_ dir: URL) { self.dir = dir }
    private func path(_ account: String) -> String { dir.appendingPathComponent("\(account).session").path }

    func save(account: String, blob: SessionBlob) async throws {
        var bytes = Data()
        withUnsafeBytes(of: blob.generation.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: blob.format.bigEndian) { bytes.append(contentsOf: $0) }
        bytes.append(blob.data)
        let temporary = path(account) + ".tmp"
        XCTAssertTrue(FileManager.default.createFile(
            atPath: temporary, contents: bytes, attributes: [.posixPermissions: 0o600]))
        _ = try? FileManager.default.removeItem(atPath: path(account))
        try FileManager.default.moveItem(atPath: temporary, toPath: path(account))
    }

    func load(account: String) async throws -> SessionBlob? {
        guard let bytes = FileManager.default.contents(atPath: path(account)), bytes.count >= 12 else { return nil }
        let generation = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let format = bytes.dropFirst(8).prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return SessionBlob(generation: generation, format: format, data: Data(bytes.dropFirst(12)))
    }

    func clear(account: String) async throws {
        try? FileManager.default.removeItem(atPath: path(account))
    }
}

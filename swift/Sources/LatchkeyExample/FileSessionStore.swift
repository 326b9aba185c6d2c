// A SessionStore of one 0600 file per account in a directory, shared by the example's
// processes (on iOS use KeychainSessionStore with an access group instead).
import Foundation
import Latchkey
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct StoreIOError: Error, CustomStringConvertible {
    let description: String
}

final class FileSessionStore: SessionStore, @unchecked Sendable {
    private let directory: URL

    init(directory: URL) {
        self.directory = directory
    }

    private func path(_ account: String) -> String {
        directory.appendingPathComponent("\(account).session").path
    }

    func save(account: String, blob: SessionBlob) async throws {
        var bytes = Data()
        withUnsafeBytes(of: blob.generation.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: blob.format.bigEndian) { bytes.append(contentsOf: $0) }
        bytes.append(blob.data)
        let temporary = path(account) + ".\(UUID().uuidString).tmp"
        guard FileManager.default.createFile(
            atPath: temporary, contents: bytes, attributes: [.posixPermissions: 0o600]) else {
            throw StoreFailure.Failed(detail: "cannot write \(temporary)", retryable: false)
        }
        guard rename(temporary, path(account)) == 0 else {
            throw StoreFailure.Failed(detail: "cannot replace the session file", retryable: false)
        }
    }

    func load(account: String) async throws -> SessionBlob? {
        guard let bytes = FileManager.default.contents(atPath: path(account)) else { return nil }
        guard bytes.count >= 12 else {
            throw StoreFailure.Failed(detail: "truncated session file", retryable: false)
        }
        let generation = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let format = bytes.dropFirst(8).prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return SessionBlob(generation: generation, format: format, data: Data(bytes.dropFirst(12)))
    }

    func clear(account: String) async throws {
        try? FileManager.default.removeItem(atPath: path(account))
    }
}

// Apple platforms only: the Keychain does not exist on Linux (where the tests run).
#if canImport(Security) && !os(Linux)
import Foundation
import Security

/// A ``SessionStore`` in the Keychain, shared with the app's extensions through a keychain
/// access group.
///
/// * `accessGroup`: `TEAMID.dev.example.shared` — list it under *Keychain Sharing* in the
///   entitlements of the app **and** of every extension that uses Latchkey.
/// * Items are `kSecClassGenericPassword` with `kSecAttrAccessibleAfterFirstUnlock`, so
///   background refreshes (push extensions, background tasks) work while the device is
///   locked after the first unlock. `errSecInteractionNotAllowed` (before the first unlock)
///   is reported as a *retryable* failure, every other status as permanent.
/// * The blob's generation and format are kept in `kSecAttrGeneric`, the session in
///   `kSecValueData`; nothing is written anywhere else.
///
/// Latchkey calls the store only while it holds the cross-process lease of the coordination
/// database, so the store needs no locking of its own.
public final class KeychainSessionStore: SessionStore {
    private let service: String
    private let accessGroup: String?

    /// A store of items of `service` in `accessGroup` (nil: the app's default group, not
    /// shared with extensions).
    public init(service: String = "dev.latchkey.session", accessGroup: String?) {
        self.service = service
        self.accessGroup = accessGroup
    }

    private func query(_ account: String) -> [String: Any] {
        var query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
            kSecUseDataProtectionKeychain as String: true,
        ]
        if let accessGroup { query[kSecAttrAccessGroup as String] = accessGroup }
        return query
    }

    private func failure(_ operation: String, _ status: OSStatus) -> StoreFailure {
        .Failed(
            detail: "keychain \(operation) failed: OSStatus \(status)",
            retryable: status == errSecInteractionNotAllowed
        )
    }

    /// Replaces the stored session of `account`.
    public func save(account: String, blob: SessionBlob) async throws {
        var header = Data()
        withUnsafeBytes(of: blob.generation.bigEndian) { header.append(contentsOf: $0) }
        withUnsafeBytes(of: blob.format.bigEndian) { header.append(contentsOf: $0) }
        let attributes: [String: Any] = [
            kSecValueData as String: blob.data,
            kSecAttrGeneric as String: header,
            kSecAttrAccessible as String: kSecAttrAccessibleAfterFirstUnlock,
        ]
        var status = SecItemUpdate(query(account) as CFDictionary, attributes as CFDictionary)
        if status == errSecItemNotFound {
            status = SecItemAdd(query(account).merging(attributes) { $1 } as CFDictionary, nil)
        }
        guard status == errSecSuccess else { throw failure("save", status) }
    }

    /// The stored session of `account`, or nil.
    public func load(account: String) async throws -> SessionBlob? {
        var request = query(account)
        request[kSecReturnData as String] = true
        request[kSecReturnAttributes as String] = true
        request[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        let status = SecItemCopyMatching(request as CFDictionary, &item)
        if status == errSecItemNotFound { return nil }
        guard status == errSecSuccess,
              let found = item as? [String: Any],
              let data = found[kSecValueData as String] as? Data,
              let header = found[kSecAttrGeneric as String] as? Data,
              header.count == 12
        else { throw failure("load", status == errSecSuccess ? errSecDecode : status) }
        let generation = header.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let format = header.suffix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return SessionBlob(generation: generation, format: format, data: data)
    }

    /// Removes the stored session of `account`.
    public func clear(account: String) async throws {
        let status = SecItemDelete(query(account) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw failure("clear", status)
        }
    }
}

extension LatchkeyConfig {
    /// A configuration whose coordination database lives in the App Group container
    /// `appGroup` (`group.dev.example`), so the app and its extensions share it.
    /// Returns nil when the app lacks the App Group entitlement.
    public static func appGroup(
        issuer: String, appGroup: String, holder: String, account: String = "default"
    ) -> LatchkeyConfig? {
        guard let container = FileManager.default
            .containerURL(forSecurityApplicationGroupIdentifier: appGroup) else { return nil }
        let db = container.appendingPathComponent("Library/Latchkey/coordination.sqlite")
        try? FileManager.default.createDirectory(
            at: db.deletingLastPathComponent(), withIntermediateDirectories: true)
        return LatchkeyConfig(
            issuer: issuer, coordinationDbPath: db.path, account: account, holder: holder)
    }
}
#endif

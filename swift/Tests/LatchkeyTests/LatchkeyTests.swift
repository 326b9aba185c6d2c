import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Latchkey
import XCTest

final class LatchkeyTests: XCTestCase {
    func testVersion() {
        XCTAssertEqual(Latchkey.version, "0.1.0")
    }

    func testRegisterLoginFreshTokenForcedRefreshLogout() async throws {
        let store = MemoryStore()
        let observer = RecordingObserver()
        let client = try await LatchkeyClient.create(config: try config(try tempDir()), store: store)
        let observation = client.addObserver(observer: observer)
        defer { observation.cancel() }
        XCTAssertEqual(client.state(), .unregistered)
        let provider = try await client.provider()
        XCTAssertTrue(provider.supportsRegistration)

        let session = try await signIn(client)
        XCTAssertFalse(session.subject.isEmpty)
        XCTAssertEqual(session.issuer, try Provider.issuer())
        XCTAssertTrue(session.hasRefreshToken)
        XCTAssertEqual(client.state(), .authenticated)
        XCTAssertTrue(store.has("default"))
        let token = try await client.accessToken()
        XCTAssertFalse(token.isEmpty)
        let claims = try await client.userinfo()
        XCTAssertTrue(claims.contains("\"sub\":\"\(session.subject)\""))

        let before = try await Provider.counter("refresh_grants")
        let outcome = try await client.refresh()
        guard case .refreshed(let generation) = outcome else {
            return XCTFail("expected a refresh, got \(outcome)")
        }
        XCTAssertGreaterThan(generation, session.generation)
        let after = try await Provider.counter("refresh_grants")
        XCTAssertEqual(after, before + 1)
        XCTAssertEqual(client.session()?.generation, generation)
        XCTAssertTrue(observer.events.contains { $0.event == .refreshed && $0.generation == generation },
                      "observer saw the refresh: \(observer.events.map(\.event))")

        let logout = try await client.logout(
            options: LogoutOptions(postLogoutRedirectUri: "dev.latchkey.test:/logged-out"))
        XCTAssertTrue(logout.refreshTokenRevoked)
        XCTAssertNotNil(logout.endSessionUrl)
        XCTAssertFalse(store.has("default"))
        XCTAssertEqual(client.state(), .loggedOut)
        let recorded = try await client.recordedEnd()
        XCTAssertEqual(recorded, .loggedOut, "recorded for every process")
        XCTAssertTrue(observer.events.contains { $0.event == .loggedOut })
        do {
            _ = try await client.accessToken()
            XCTFail("expected an error after logout")
        } catch let error as LatchkeyError {
            XCTAssertTrue(LatchkeyClient.requiresSignIn(error), "\(error)")
            XCTAssertTrue(error.requiresSignIn)
            XCTAssertFalse(error.isRetryable)
        }
    }

    func testFastPathServesTheFreshTokenWithTheRulesAndErrorsOfAccessToken() async throws {
        let client = try await LatchkeyClient.create(config: try config(try tempDir()), store: MemoryStore())
        XCTAssertThrowsError(try client.freshAccessToken(minTtlSecs: 0)) { error in
            XCTAssertEqual("\(error)", "\(LatchkeyError.NoSession)")
        }
        _ = try await signIn(client)
        let token = try await client.accessToken()
        XCTAssertEqual(try client.freshAccessToken(minTtlSecs: 0), token)
        let fast = try await client.accessTokenFast()
        XCTAssertEqual(fast, token)
        // The provider's tokens live 60 s: not fresh for an hour, and asking never refreshes.
        let before = try await Provider.counter("refresh_grants")
        XCTAssertNil(try client.freshAccessToken(minTtlSecs: 3600))
        let after = try await Provider.counter("refresh_grants")
        XCTAssertEqual(after, before)

        // After logout: the error accessToken() gives.
        _ = try await client.logout(
            options: LogoutOptions(postLogoutRedirectUri: "dev.latchkey.test:/logged-out"))
        var slow: Error?
        do { _ = try await client.accessToken() } catch { slow = error }
        XCTAssertThrowsError(try client.freshAccessToken(minTtlSecs: 0)) { error in
            XCTAssertEqual("\(error)", "\(slow.map { "\($0)" } ?? "no error")")
            XCTAssertTrue(LatchkeyClient.requiresSignIn(error), "\(error)")
        }
        do {
            _ = try await client.accessTokenFast()
            XCTFail("expected an error after logout")
        } catch {
            XCTAssertEqual("\(error)", "\(slow.map { "\($0)" } ?? "no error")")
        }
    }

    func testEventsStreamAndStatesFollowTheSessionAndStopping() async throws {
        let client = try await LatchkeyClient.create(config: try config(try tempDir()), store: MemoryStore())
        // The observers are registered when events()/states() return, before any iteration.
        let events = client.events()
        let states = client.states()
        let collected = Task { () -> [SessionEvent] in
            var seen: [SessionEvent] = []
            for await event in events {
                seen.append(event)
                if event.event == .refreshed { break } // ends the stream: unregisters
            }
            return seen
        }
        let stateChanges = Task { () -> [LifecycleState] in
            var seen: [LifecycleState] = []
            for await state in states {
                seen.append(state)
                if state == .authenticated { break }
            }
            return seen
        }
        let model = SessionStateObservation(client)
        XCTAssertEqual(model.current, .unregistered)

        let session = try await signIn(client)
        await model.wait(for: .authenticated)
        XCTAssertEqual(model.current, .authenticated)
        let seenStates = await stateChanges.value
        XCTAssertEqual(seenStates.first, .unregistered, "the current state comes first")
        XCTAssertEqual(seenStates.last, .authenticated)
        _ = try await client.refresh()
        let seen = await collected.value
        XCTAssertTrue(seen.contains { $0.event == .signedIn && $0.generation == session.generation },
                      "\(seen.map(\.event))")
        XCTAssertEqual(seen.last?.event, .refreshed)

        // A handle cancelled by hand: no event after cancel().
        let recorder = RecordingObserver()
        let handle = client.addObserver(observer: recorder)
        XCTAssertTrue(handle.isActive())
        _ = try await client.refresh()
        let recorded = recorder.events.count
        XCTAssertGreaterThan(recorded, 0)
        handle.cancel()
        handle.cancel() // idempotent
        XCTAssertFalse(handle.isActive())
        _ = try await client.refresh()
        XCTAssertEqual(recorder.events.count, recorded, "no event after cancel()")

        // Releasing the handle (its last reference) unregisters too.
        let released = RecordingObserver()
        _ = client.addObserver(observer: released)
        _ = try await client.refresh()
        XCTAssertTrue(released.events.isEmpty, "released at once: \(released.events.map(\.event))")

        // A stream whose consumer is cancelled unregisters too.
        let counter = RecordingObserver()
        let counted = client.events()
        let consumer = Task { for await event in counted { counter.onEvent(event: event) } }
        _ = try await client.refresh()
        consumer.cancel()
        _ = await consumer.value
        let counterBefore = counter.events.count
        _ = try await client.refresh()
        try await Task.sleep(nanoseconds: 50_000_000)
        XCTAssertEqual(counter.events.count, counterBefore, "no event after the task was cancelled")

        model.cancel()
        _ = try await client.logout(options: LogoutOptions())
        XCTAssertEqual(client.state(), .loggedOut)
        XCTAssertEqual(model.current, .authenticated, "the observation stopped")
    }

    func testLoginStartedByAKilledProcessIsFinishedByANewProcess() async throws {
        let dir = try tempDir()
        let first = try await LatchkeyClient.create(config: try config(dir), store: FileStore(dir))
        _ = try await first.register(options: RegistrationOptions(
            redirectUris: ["dev.latchkey.example:/callback"], clientName: "Latchkey Swift tests"))
        let json = try XCTUnwrap(first.registrationJSON())
        try json.write(to: dir.appendingPathComponent("registration.json"), atomically: true, encoding: .utf8)

        // The example executable starts the login (persisted) and exits at once.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            .deletingLastPathComponent().appendingPathComponent("LatchkeyExample")
        process.arguments = ["start-login", dir.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, output)
        let line = try XCTUnwrap(output.split(separator: "\n").first { $0.hasPrefix("url ") })
        let pendingFile = dir.appendingPathComponent("default.pending-login.session").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: pendingFile), "persisted")
        let redirect = try browse(String(line.dropFirst(4)), redirectPrefix: "dev.latchkey.example:/callback")

        // A client without persistence does not know the state.
        do {
            _ = try await first.finishLogin(redirectUrl: redirect)
            XCTFail("expected UnknownState")
        } catch LatchkeyError.UnknownState {}
        var persisted = try config(dir, holder: "new-app")
        persisted.persistPendingLogins = true
        let app = try await LatchkeyClient.create(config: persisted, store: FileStore(dir))
        try app.restoreRegistration(json: json)
        let session = try await app.finishLogin(redirectUrl: redirect)
        XCTAssertFalse(session.subject.isEmpty)
        XCTAssertEqual(app.state(), .authenticated)
        XCTAssertFalse(FileManager.default.fileExists(atPath: pendingFile), "consumed")
        do {
            _ = try await app.finishLogin(redirectUrl: redirect)
            XCTFail("expected UnknownState for the second use")
        } catch LatchkeyError.UnknownState {}
    }

    func testAuthorizedDataRetriesOnceAfter401() async throws {
        let client = try await LatchkeyClient.create(config: try config(try tempDir()), store: MemoryStore())
        let session = try await signIn(client)
        let request = URLRequest(url: URL(string: try await Provider.discovery("userinfo_endpoint"))!)

        let first = try await client.authorizedData(for: request)
        XCTAssertEqual(first.response.statusCode, 200)
        XCTAssertFalse(first.retried)
        XCTAssertTrue(String(decoding: first.data, as: UTF8.self).contains(session.subject))

        let rejected = try await client.accessToken()
        try await Provider.deleteAccessToken(rejected)
        let before = try await Provider.counter("refresh_grants")
        let second = try await client.authorizedData(for: request)
        XCTAssertEqual(second.response.statusCode, 200, "retried with a refreshed token")
        XCTAssertTrue(second.retried, "the deleted token was refused first")
        XCTAssertTrue(String(decoding: second.data, as: UTF8.self).contains(session.subject))
        let after = try await Provider.counter("refresh_grants")
        XCTAssertEqual(after, before + 1, "exactly one refresh")
        let current = try await client.accessToken()
        XCTAssertNotEqual(current, rejected)

        // The grant is gone: the refresh is refused and the error says "sign in again".
        try await Provider.revokeGrants()
        do {
            _ = try await client.authorizedData(for: request)
            XCTFail("expected ReauthRequired")
        } catch let error as LatchkeyError {
            XCTAssertTrue(error.requiresSignIn, "\(error)")
        }
        XCTAssertEqual(client.state(), .reauthRequired)
    }

    func testRegistrationPersistsAsJSON() async throws {
        let client = try await LatchkeyClient.create(config: try config(try tempDir()), store: MemoryStore())
        _ = try await client.register(options: registrationOptions())
        let json = try XCTUnwrap(client.registrationJSON())
        let other = try await LatchkeyClient.create(config: try config(try tempDir()), store: MemoryStore())
        XCTAssertTrue(try other.restoreRegistration(json: json))
        XCTAssertEqual(other.state(), .registered)
        XCTAssertEqual(other.registration()?.redirectUris(), [redirectURI])
        XCTAssertThrowsError(try ClientRegistration.fromJson(json: "{}")) { error in
            guard case LatchkeyError.Config(let reason) = error else {
                return XCTFail("expected Config, got \(error)")
            }
            XCTAssertTrue(reason.contains("registration"))
        }
    }

    func testFailingSaveIsRetriedThenSucceeds() async throws {
        let store = MemoryStore(failSaves: 2)
        let client = try await LatchkeyClient.create(config: try config(try tempDir()), store: store)
        _ = try await signIn(client)
        XCTAssertEqual(store.saveAttempts, 3)
        XCTAssertTrue(store.has("default"))
    }

    func testSaveThatKeepsFailingSurfacesTypedStoreError() async throws {
        let store = MemoryStore(failSaves: .max, retryable: true)
        let client = try await LatchkeyClient.create(config: try config(try tempDir()), store: store)
        do {
            _ = try await signIn(client)
            XCTFail("expected a store error")
        } catch LatchkeyError.Store(let operation, let detail, let retryable) {
            XCTAssertEqual(operation, "save")
            XCTAssertTrue(retryable)
            XCTAssertTrue(detail.contains("keychain locked"), detail)
        }
        XCTAssertGreaterThan(store.saveAttempts, 1)
        XCTAssertFalse(store.has("default"))
    }

    func testPermanentSaveFailureIsNotRetried() async throws {
        let store = MemoryStore(failSaves: .max, retryable: false)
        let client = try await LatchkeyClient.create(config: try config(try tempDir()), store: store)
        do {
            _ = try await signIn(client)
            XCTFail("expected a store error")
        } catch LatchkeyError.Store(_, _, let retryable) {
            XCTAssertFalse(retryable)
        }
        XCTAssertEqual(store.saveAttempts, 1)
    }

    func testExtensionRestoresSessionThroughAsyncForeignLoad() async throws {
        let dir = try tempDir()
        let store = MemoryStore()
        let app = try await LatchkeyClient.create(config: try config(dir), store: store)
        let session = try await signIn(app)
        let json = try XCTUnwrap(app.registrationJSON())
        let loadsBefore = store.loads

        let ext = try await LatchkeyClient.create(config: try config(dir, holder: "extension"), store: store)
        try ext.restoreRegistration(json: json)
        let restored = try await ext.restoreSession()
        XCTAssertEqual(restored?.subject, session.subject)
        XCTAssertGreaterThan(store.loads, loadsBefore)
        let token = try await ext.accessToken()
        XCTAssertFalse(token.isEmpty)
    }

    func testErrorsAreTypedWithFields() async throws {
        let client = try await LatchkeyClient.create(config: try config(try tempDir()), store: MemoryStore())
        do {
            _ = try await client.startLogin(options: LoginOptions())
            XCTFail("expected NotRegistered")
        } catch LatchkeyError.NotRegistered {}
        _ = try await client.register(options: registrationOptions())
        let none = try await client.restoreSession()
        XCTAssertNil(none)
        do {
            _ = try await client.accessToken()
            XCTFail("expected NoSession")
        } catch LatchkeyError.NoSession {}

        let start = try await client.startLogin(options: LoginOptions())
        let denied = try browse(start.url, deny: true)
        do {
            _ = try await client.finishLogin(redirectUrl: denied)
            XCTFail("expected an authorization error")
        } catch LatchkeyError.Authorization(let code, _) {
            XCTAssertEqual(code, "access_denied")
        }

        let pending = try await client.startLogin(options: LoginOptions())
        XCTAssertTrue(client.abortLogin(state: pending.state))
        XCTAssertFalse(client.abortLogin(state: pending.state))
        do {
            _ = try await client.finishLogin(
                redirectUrl: "\(redirectURI)?code=x&state=\(pending.state)&iss=\(try Provider.issuer())")
            XCTFail("expected UnknownState")
        } catch let error as LatchkeyError {
            guard case .UnknownState = error else { return XCTFail("\(error)") }
            XCTAssertTrue(error.isStaleRedirect)
            XCTAssertFalse(error.requiresSignIn || error.isRetryable)
        }
        let mixUp = try await client.startLogin(options: LoginOptions())
        do {
            _ = try await client.finishLogin(
                redirectUrl: "\(redirectURI)?code=x&state=\(mixUp.state)&iss=https://attacker.example")
            XCTFail("expected IssuerMismatch")
        } catch LatchkeyError.IssuerMismatch(let reason, let actual) {
            XCTAssertEqual(actual, "https://attacker.example")
            XCTAssertFalse(reason.isEmpty)
        }
        let missing = try await client.startLogin(options: LoginOptions())
        do {
            _ = try await client.finishLogin(redirectUrl: "\(redirectURI)?code=x&state=\(missing.state)")
            XCTFail("expected IssuerMismatch without iss")
        } catch LatchkeyError.IssuerMismatch(_, let actual) {
            XCTAssertNil(actual)
        }
        let repeated = try await client.startLogin(options: LoginOptions())
        do {
            _ = try await client.finishLogin(
                redirectUrl: "\(redirectURI)?code=x&code=y&state=\(repeated.state)&iss=\(try Provider.issuer())")
            XCTFail("expected RepeatedParameter")
        } catch LatchkeyError.RepeatedParameter(let name) {
            XCTAssertEqual(name, "code")
        }
        do {
            _ = try await client.handleBackchannelLogout(logoutToken: "eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
            XCTFail("expected a rejected logout token")
        } catch LatchkeyError.InvalidResponse(let reason) {
            XCTAssertTrue(reason.contains("logout token"), reason)
        }

        do {
            _ = try await LatchkeyClient.create(
                config: try config(try tempDir(), insecure: false), store: MemoryStore())
            XCTFail("expected InsecureUrl")
        } catch LatchkeyError.InsecureUrl(let reason) {
            XCTAssertFalse(reason.isEmpty)
        }
    }
}

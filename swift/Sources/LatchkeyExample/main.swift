// A runnable example: an app and its notification extension as two processes sharing one
// session (one coordination database, one store), against a real provider.
//
//   LatchkeyExample demo DIR          the app: registers, signs in (the headless browser of
//                                     $LATCHKEY_BROWSER plays the user), starts the
//                                     extension process, then adopts the extension's refresh
//   LatchkeyExample extension DIR     the notification extension: restores the session and
//                                     refreshes once (as on a push that needs a fresh token)
//   LatchkeyExample start-login DIR   starts a login with pending logins persisted, prints
//                                     "url ..." and exits at once (used by the process-death
//                                     test: another process finishes the login)
//
// The issuer comes from $LATCHKEY_TEST_ISSUER (loopback http allowed: a development provider).
import Foundation
import Latchkey

let redirectURI = "dev.latchkey.example:/callback"

func environment(_ name: String) -> String {
    guard let value = ProcessInfo.processInfo.environment[name] else {
        FileHandle.standardError.write(Data("\(name) is not set\n".utf8))
        exit(2)
    }
    return value
}

func config(_ dir: URL, holder: String, persist: Bool = false) -> LatchkeyConfig {
    LatchkeyConfig(
        issuer: environment("LATCHKEY_TEST_ISSUER"),
        coordinationDbPath: dir.appendingPathComponent("coordination.sqlite").path,
        holder: holder,
        allowInsecureLoopback: true,
        persistPendingLogins: persist
    )
}

func registrationFile(_ dir: URL) -> URL { dir.appendingPathComponent("registration.json") }

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
    let lines = String(decoding: output, as: UTF8.self).split(separator: "\n")
    return lines.last.map(String.init) ?? ""
}

func say(_ role: String, _ text: String) {
    print("[\(role)] \(text)")
    fflush(nil) // all streams
}

func app(_ dir: URL) async throws {
    let client = try await LatchkeyClient.create(
        config: config(dir, holder: "app"), store: FileSessionStore(directory: dir))
    let events = client.events()
    let printer = Task { for await event in events { say("app", "event \(event.event) -> \(event.to)") } }
    _ = try await client.register(options: RegistrationOptions(
        redirectUris: [redirectURI], clientName: "Latchkey Swift example"))
    try client.registrationJSON()?.write(to: registrationFile(dir), atomically: true, encoding: .utf8)
    let start = try await client.startLogin(options: LoginOptions(scopes: ["openid", "profile"]))
    let session = try await client.finishLogin(redirectUrl: try browse(start.url))
    say("app", "signed in as \(session.subject), generation \(session.generation)")

    let extensionProcess = Process()
    extensionProcess.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    extensionProcess.arguments = ["extension", dir.path]
    try extensionProcess.run()
    extensionProcess.waitUntilExit()
    guard extensionProcess.terminationStatus == 0 else {
        throw StoreIOError(description: "the extension failed")
    }
    let synced = try await client.sync()
    let generation = synced?.generation ?? 0
    say("app", "adopted the extension's refresh: generation \(generation)")
    guard generation == session.generation + 1 else {
        throw StoreIOError(description: "expected generation \(session.generation + 1)")
    }
    let claims = try await client.userinfo()
    say("app", "userinfo with the shared token: \(claims.contains(session.subject) ? "ok" : "wrong subject")")
    printer.cancel()
}

func notificationExtension(_ dir: URL) async throws {
    let client = try await LatchkeyClient.create(
        config: config(dir, holder: "notification-extension"), store: FileSessionStore(directory: dir))
    try client.restoreRegistration(json: try String(contentsOf: registrationFile(dir), encoding: .utf8))
    guard let session = try await client.restoreSession() else {
        throw StoreIOError(description: "no session to restore")
    }
    say("extension", "restored generation \(session.generation)")
    let outcome = try await client.refresh()
    say("extension", "refresh: \(outcome)")
}

func startLogin(_ dir: URL) async throws {
    let client = try await LatchkeyClient.create(
        config: config(dir, holder: "killed-app", persist: true), store: FileSessionStore(directory: dir))
    try client.restoreRegistration(json: try String(contentsOf: registrationFile(dir), encoding: .utf8))
    let start = try await client.startLogin(options: LoginOptions(scopes: ["openid", "profile"]))
    print("url \(start.url)")
    fflush(nil) // all streams
    exit(0) // no clean-up: the process dies with the browser open
}

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: LatchkeyExample demo|extension|start-login DIR\n".utf8))
    exit(2)
}
let directory = URL(fileURLWithPath: arguments[2])
do {
    switch arguments[1] {
    case "demo": try await app(directory)
    case "extension": try await notificationExtension(directory)
    case "start-login": try await startLogin(directory)
    default:
        FileHandle.standardError.write(Data("unknown role \(arguments[1])\n".utf8))
        exit(2)
    }
} catch {
    FileHandle.standardError.write(Data("LatchkeyExample failed: \(error)\n".utf8))
    exit(1)
}

import Latchkey
import XCTest

/// A Swift error that is not a `DemoError`: Rust receives it as an unexpected callback error.
struct OtherError: Error, CustomStringConvertible {
    let description = "other failure"
}

/// A foreign implementation of the Rust trait, as an app would write it.
final class Shouting: Echo {
    func echo(message: String) async throws -> String {
        if message == "bad" {
            throw DemoError.InvalidInput(field: "message", reason: "rejected by Swift")
        }
        if message == "other" {
            throw OtherError()
        }
        try await Task.sleep(nanoseconds: 1_000_000)
        return message.uppercased()
    }
}

final class LatchkeyTests: XCTestCase {
    func testVersionAndRecord() {
        XCTAssertEqual(Latchkey.version, "0.1.0")
        XCTAssertEqual(Latchkey.buildInfo, BuildInfo(version: "0.1.0", debug: true))
    }

    func testAsyncFunction() async throws {
        let reply = try await delayedEcho(message: "hello", delayMs: 5)
        XCTAssertEqual(reply, "hello")
    }

    func testTypedErrorWithFields() async {
        do {
            _ = try await delayedEcho(message: "", delayMs: 0)
            XCTFail("expected an error")
        } catch DemoError.InvalidInput(let field, let reason) {
            XCTAssertEqual(field, "message")
            XCTAssertEqual(reason, "must not be empty")
        } catch {
            XCTFail("unexpected error \(error)")
        }
    }

    func testObjectAsyncMethods() async throws {
        let counter = Counter(start: UInt64.max - 3)
        let value = try await counter.add(amount: 2)
        XCTAssertEqual(value, UInt64.max - 1)
        XCTAssertEqual(counter.value(), UInt64.max - 1)
        do {
            _ = try await counter.add(amount: 5)
            XCTFail("expected an overflow")
        } catch let error as DemoError {
            XCTAssertEqual(error, .Overflow(current: UInt64.max - 1, amount: 5))
        }
    }

    func testConcurrentCallsOnOneObject() async throws {
        let counter = Counter(start: 0)
        try await withThrowingTaskGroup(of: UInt64.self) { group in
            for _ in 0..<50 {
                group.addTask { try await counter.add(amount: 1) }
            }
            try await group.waitForAll()
        }
        XCTAssertEqual(counter.value(), 50)
    }

    func testForeignTraitCalledFromRust() async throws {
        let reply = try await callEcho(echo: Shouting(), message: "hi")
        XCTAssertEqual(reply, "rust(HI)")
        let counter = Counter(start: 1)
        let total = try await counter.addEchoLength(echo: Shouting(), message: "four")
        XCTAssertEqual(total, 5)
    }

    func testClosureEcho() async throws {
        let reply = try await callEcho(echo: ClosureEcho { "<\($0)>" }, message: "x")
        XCTAssertEqual(reply, "rust(<x>)")
    }

    func testForeignImplementationThrowsTypedError() async {
        do {
            _ = try await callEcho(echo: Shouting(), message: "bad")
            XCTFail("expected an error")
        } catch DemoError.InvalidInput(let field, let reason) {
            XCTAssertEqual(field, "message")
            XCTAssertEqual(reason, "rejected by Swift")
        } catch {
            XCTFail("unexpected error \(error)")
        }
    }

    func testForeignImplementationThrowsOtherError() async {
        do {
            _ = try await callEcho(echo: Shouting(), message: "other")
            XCTFail("expected an error")
        } catch DemoError.Callback(let reason) {
            XCTAssertFalse(reason.isEmpty)
        } catch {
            XCTFail("unexpected error \(error)")
        }
    }
}

// Observation with Swift concurrency: an AsyncStream of every SessionEvent and of the
// lifecycle state, both unregistering their observer when the stream ends.
import Foundation

extension LatchkeyClient {
    /// Every ``SessionEvent`` of this client from now on, in order. The observer is
    /// registered at once and unregistered when the consuming task is cancelled or stops
    /// iterating (the stream terminates). Events are buffered without limit.
    public func events() -> AsyncStream<SessionEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: SessionEvent.self)
        let handle = addObserver(observer: ClosureSessionObserver { continuation.yield($0) })
        continuation.onTermination = { _ in handle.cancel() }
        return stream
    }

    /// The lifecycle state as an observable value: the current state first, then every
    /// change, until the consumer stops (which unregisters the observer).
    public func states() -> AsyncStream<LifecycleState> {
        let (stream, continuation) = AsyncStream.makeStream(of: LifecycleState.self)
        let handle = addObserver(observer: ClosureSessionObserver { continuation.yield($0.to) })
        // Yielded after registering: a transition in between follows it in the stream.
        continuation.yield(state())
        continuation.onTermination = { _ in handle.cancel() }
        return stream
    }
}

/// The latest lifecycle state of a client, kept current by an observer while this object
/// lives (or until ``cancel()``); read ``current`` from any thread, or `await` a state with
/// ``wait(for:)``. On Apple platforms wrap it in an `@Observable` model for SwiftUI.
public final class SessionStateObservation: @unchecked Sendable {
    private let lock = NSLock()
    private var value: LifecycleState
    private var handle: ObserverHandle?
    private var waiters: [(LifecycleState, CheckedContinuation<Void, Never>)] = []

    /// Starts observing `client`.
    public init(_ client: LatchkeyClient) {
        value = client.state()
        handle = nil
        let observer = ClosureSessionObserver { [weak self] event in self?.set(event.to) }
        let handle = client.addObserver(observer: observer)
        lock.withLock { self.handle = handle }
        set(client.state())
    }

    /// The latest state seen.
    public var current: LifecycleState { lock.withLock { value } }

    /// Suspends until the state is `state` (returns at once when it already is).
    public func wait(for state: LifecycleState) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = lock.withLock { () -> Bool in
                if value == state { return true }
                waiters.append((state, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Stops observing: ``current`` keeps its last value. Idempotent.
    public func cancel() {
        lock.withLock { handle }?.cancel()
    }

    private func set(_ state: LifecycleState) {
        let ready = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            value = state
            let matching = waiters.filter { $0.0 == state }.map(\.1)
            waiters.removeAll { $0.0 == state }
            return matching
        }
        ready.forEach { $0.resume() }
    }

    deinit {
        handle?.cancel()
    }
}

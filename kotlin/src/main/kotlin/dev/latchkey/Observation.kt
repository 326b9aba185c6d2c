// Observation as coroutines: a Flow of every SessionEvent and a StateFlow of the lifecycle
// state, both unregistering their observer (ObserverHandle.cancel) when they stop.
package dev.latchkey

import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow

/**
 * Every [SessionEvent] of this client from the moment of collection, in order. Collecting
 * registers an observer; cancelling the collector unregisters it (nothing piles up). Events
 * are buffered without limit, so a slow collector never blocks Latchkey's threads.
 */
fun LatchkeyClient.events(): Flow<SessionEvent> = callbackFlow {
    val handle = addObserver(sessionObserverOf { trySend(it) })
    awaitClose {
        handle.cancel()
        handle.close()
    }
}.buffer(Channel.UNLIMITED)

/**
 * The lifecycle state of this client as a [StateFlow], kept current by an observer until
 * the [Job] of [scope] completes or is cancelled (then the observer is unregistered and the
 * value stays as it was; a scope that already ended unregisters it at once). Throws
 * [IllegalArgumentException] for a scope without a Job (e.g. GlobalScope).
 */
fun LatchkeyClient.stateFlow(scope: CoroutineScope): StateFlow<LifecycleState> {
    val job = requireNotNull(scope.coroutineContext[Job]) { "the scope needs a Job to end the observation" }
    val flow = MutableStateFlow(LifecycleState.UNKNOWN)
    val handle = addObserver(sessionObserverOf { flow.value = it.to })
    // Read after registering: a transition in between is already in the flow and wins.
    flow.compareAndSet(LifecycleState.UNKNOWN, state())
    job.invokeOnCompletion {
        handle.cancel()
        handle.close()
    }
    return flow.asStateFlow()
}

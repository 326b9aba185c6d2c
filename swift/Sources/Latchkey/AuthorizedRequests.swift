// Authorized requests with URLSession: the bearer token added, and on 401 the rejected token
// reported to Latchkey (tokenRejected: adopt another process's newer token or refresh once)
// and the request retried once.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A request sent by ``LatchkeyClient/authorizedData(for:session:)`` did not get an HTTP
/// response.
public struct NotHTTPResponse: Error {}

extension URLRequest {
    /// Sets `Authorization: Bearer <token>`. The token is secret: never log the request's
    /// headers.
    public mutating func setBearerToken(_ token: String) {
        setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
    }
}

extension LatchkeyClient {
    /// Sends `request` with a fresh access token (``accessToken()``, refreshing first, once
    /// across processes, when it is about to expire). When the server answers 401, reports
    /// the token with ``tokenRejected(accessToken:)`` and retries once with the token it
    /// returns; a second 401 is returned as is. `retried` tells whether the retry ran.
    ///
    /// Throws a ``LatchkeyError`` when no token can be had (e.g. `.NoSession`, or
    /// `.ReauthRequired` when the retry's refresh was refused: check `requiresSignIn`), or
    /// the URLSession's error.
    public func authorizedData(
        for request: URLRequest, session: URLSession = .shared
    ) async throws -> (data: Data, response: HTTPURLResponse, retried: Bool) {
        let token = try await accessToken()
        let (data, response) = try await send(request, token: token, session: session)
        guard response.statusCode == 401 else { return (data, response, false) }
        let replacement = try await tokenRejected(accessToken: token)
        let (retryData, retryResponse) = try await send(request, token: replacement, session: session)
        return (retryData, retryResponse, true)
    }

    private func send(
        _ request: URLRequest, token: String, session: URLSession
    ) async throws -> (Data, HTTPURLResponse) {
        var authorized = request
        authorized.setBearerToken(token)
        let (data, response) = try await session.data(for: authorized)
        guard let http = response as? HTTPURLResponse else { throw NotHTTPResponse() }
        return (data, http)
    }
}

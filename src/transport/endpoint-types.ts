// The public shapes of an Endpoint: the options of bind(), listen() and connect(), and
// its events. endpoint.ts re-exports them; endpoint-options.ts checks the bind options.
import type { Connection } from './connection.js'
import type { CribcallError } from './errors.js'
import type { Identity } from './identity.js'

export interface EndpointOptions {
  /** Local address to bind, e.g. '0.0.0.0', '::' or '127.0.0.1'. Host names are resolved first. */
  host: string
  /** UDP port; 0 picks a free one (see `endpoint.address`). */
  port: number
  /** Certificate and private key this endpoint presents in every handshake (both roles). */
  identity: Pick<Identity, 'certPem' | 'keyPem'>
  /** Largest frame payload accepted and sent, bytes. Default 65536, at most 1048576. */
  maxFramePayload?: number
  /** A connection whose handshake has not completed after this long fails. Default 10000. */
  handshakeTimeoutMs?: number
  /** QUIC idle timeout: a connection that hears nothing from its peer this long closes. Default 30000. */
  idleTimeoutMs?: number
  /**
   * Keep-alive: a QUIC PING after this many ms without sending, so a quiet connection
   * never reaches the idle timeout and NAT mappings stay fresh; once the peer has been
   * silent this long, every half of it (a restarted peer then answers with a stateless
   * reset within that time). Default 5000; 0 disables. Keep it well under idleTimeoutMs.
   */
  keepAliveMs?: number
  /** Default 10240 (about 42 KiB of memory per established connection; README, Transport). */
  maxConnections?: number
  /** Bytes that may be queued natively per connection before send() throws SendBufferFullError. Default 16 MiB. */
  maxSendBuffer?: number
  /**
   * Server: handshakes in progress at once, apart from established connections. When
   * full, the oldest handshake in progress of the source holding the most (IP first,
   * then IP and port) gives way to the new one, so a flood of Initials cannot lock out a client that completes
   * its handshake. Default 128.
   */
  maxHalfOpen?: number
  /**
   * Server: address validation with Retry (RFC 9000 §8.1.2) once this many handshakes
   * are in progress; 0 = every handshake; default 16. Retry costs a client one extra
   * round trip; below the threshold clients skip it, and the server then sends at most
   * 3× what an unvalidated client sent.
   */
  retryThreshold?: number
  /** Server: false never sends Retry (default true). */
  retry?: boolean
  /** Server: a pairing-only connection (unknown certificate) must finish pairing within this many ms. Default 180000. */
  pairingDeadlineMs?: number
  /** Server: pairing-only connections at once; more are refused (close code 5, busy) before they are reported. Default 8. */
  maxPairingConnections?: number
  /** Server: a frame must be complete this many ms after its first byte arrived (else PROTOCOL_ERROR). Default 10000. */
  frameTimeoutMs?: number
  /** Aborting it closes the endpoint (or rejects bind() if already aborted). */
  signal?: AbortSignal
}

export interface ListenOptions {
  /**
   * Admit clients whose certificate fingerprint is not among the known peers (pairing
   * possible); their connections have peerKnown === false. Default false: unknown
   * clients fail the handshake.
   */
  acceptUnknown?: boolean
}

export interface ConnectOptions {
  host: string
  port: number
  /** The pinned SHA-256 fingerprint of the server certificate (64 hex characters). */
  serverFingerprint: string
  /** Aborting it abandons the attempt: connect() rejects with AbortError. */
  signal?: AbortSignal
  /** Rejects with HandshakeTimeoutError when not established within this many ms (in addition to handshakeTimeoutMs). */
  timeoutMs?: number
}

export type EndpointEvents = {
  /** A client completed the handshake and passed the admission policy (server role). */
  connection: [connection: Connection]
  /** Errors not tied to a pending operation, and errors nobody handled on a connection. */
  error: [error: CribcallError]
}

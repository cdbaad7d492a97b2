/**
 * Error classes of cribcall-quic. Every error the library throws, rejects with or
 * emits is a {@link CribcallError} with a stable `code`; `instanceof` on the
 * subclasses and `err.code` are both supported ways to tell them apart.
 *
 * {@link fromNative} is the single place where errors coming from the native addon
 * (thrown `Error`s with a `code` property, and `connectFailed` / `error` events with an
 * `errorCode`) are turned into these classes.
 */

import type { CribcallErrorCode } from '../base/error-codes.js'

export { AppErrorCode } from '../base/codes.js'
export { ERROR_CODES, type CribcallErrorCode } from '../base/error-codes.js'

export class CribcallError extends Error {
  /** Stable; one of {@link ERROR_CODES}. */
  readonly code: CribcallErrorCode

  constructor(code: CribcallErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** The server presented a certificate whose SHA-256 fingerprint is not the pinned one. */
export class PinMismatchError extends CribcallError {
  /** The fingerprint the client pinned. */
  readonly expected: string
  /** The fingerprint of the certificate the server actually presented. */
  readonly actual: string

  constructor(expected: string, actual: string, message?: string, options?: ErrorOptions) {
    super(
      'ERR_PIN_MISMATCH',
      message ?? `server certificate fingerprint ${actual || '(none)'} does not match the pinned ${expected || '(none)'}`,
      options,
    )
    this.expected = expected
    this.actual = actual
  }
}

/** The server refused our client certificate during the handshake (admission policy). */
export class PeerRejectedError extends CribcallError {
  constructor(message = 'the peer rejected the connection during the handshake', options?: ErrorOptions) {
    super('ERR_PEER_REJECTED', message, options)
  }
}

/** The handshake did not complete in time. */
export class HandshakeTimeoutError extends CribcallError {
  constructor(message = 'the handshake timed out', options?: ErrorOptions) {
    super('ERR_HANDSHAKE_TIMEOUT', message, options)
  }
}

/** The handshake failed for another reason (TLS alert, protocol violation, ...). */
export class HandshakeFailedError extends CribcallError {
  constructor(message = 'the handshake failed', options?: ErrorOptions) {
    super('ERR_HANDSHAKE_FAILED', message, options)
  }
}

/** The connection is closed (or was never established). */
export class ConnectionClosedError extends CribcallError {
  constructor(message = 'the connection is closed', options?: ErrorOptions) {
    super('ERR_CONNECTION_CLOSED', message, options)
  }
}

/** The endpoint is closed. */
export class EndpointClosedError extends CribcallError {
  constructor(message = 'the endpoint is closed', options?: ErrorOptions) {
    super('ERR_ENDPOINT_CLOSED', message, options)
  }
}

/** An argument was invalid (wrong type, out of range, empty frame, malformed fingerprint, ...). */
export class InvalidArgumentError extends CribcallError {
  constructor(message = 'invalid argument', options?: ErrorOptions) {
    super('ERR_INVALID_ARG', message, options)
  }
}

/** The operation was aborted through an AbortSignal; `cause` is the signal's reason. */
export class AbortError extends CribcallError {
  constructor(reason?: unknown, message = 'The operation was aborted') {
    super('ABORT_ERR', message, { cause: reason })
    this.name = 'AbortError'
  }
}

/** A frame payload is larger than the endpoint's maxFramePayload. */
export class FrameTooLargeError extends CribcallError {
  constructor(message = 'frame payload exceeds the maximum frame size', options?: ErrorOptions) {
    super('ERR_FRAME_TOO_LARGE', message, options)
  }
}

/** The connection's native send buffer (maxSendBuffer) is full. */
export class SendBufferFullError extends CribcallError {
  constructor(message = 'the connection send buffer is full', options?: ErrorOptions) {
    super('ERR_SEND_BUFFER_FULL', message, options)
  }
}

/** An unexpected failure inside the library or the native addon. */
export class InternalError extends CribcallError {
  constructor(message = 'internal error', options?: ErrorOptions) {
    super('ERR_INTERNAL', message, options)
  }
}

/** Binding the UDP socket failed (address in use, address not available, ...). */
export class BindError extends CribcallError {
  constructor(message = 'could not bind the UDP socket', options?: ErrorOptions) {
    super('ERR_BIND', message, options)
  }
}

/** The TLS configuration was rejected (unusable certificate or private key). */
export class TlsError extends CribcallError {
  constructor(message = 'invalid TLS certificate or key', options?: ErrorOptions) {
    super('ERR_TLS', message, options)
  }
}

/** The endpoint's UDP socket failed while running. */
export class SocketError extends CribcallError {
  constructor(message = 'UDP socket error', options?: ErrorOptions) {
    super('ERR_SOCKET', message, options)
  }
}

/** The endpoint already holds maxConnections connections. */
export class TooManyConnectionsError extends CribcallError {
  constructor(message = 'too many connections', options?: ErrorOptions) {
    super('ERR_TOO_MANY_CONNECTIONS', message, options)
  }
}

/**
 * The peer answered with a QUIC stateless reset (RFC 9000 §10.3): it no longer has
 * this connection, typically because it restarted. Worth reconnecting at once.
 */
export class ConnectionResetError extends CribcallError {
  constructor(message = 'the peer reset the connection (stateless reset)', options?: ErrorOptions) {
    super('ERR_CONNECTION_RESET', message, options)
  }
}

/**
 * The server refused the connection at once because it is full (QUIC
 * CONNECTION_REFUSED: maxConnections reached). Transient: worth retrying later.
 */
export class ConnectionRefusedError extends CribcallError {
  constructor(message = 'the server refused the connection (busy)', options?: ErrorOptions) {
    super('ERR_CONNECTION_REFUSED', message, options)
  }
}

/** The connection was closed because the peer was silent for longer than idleTimeoutMs. */
export class IdleTimeoutError extends CribcallError {
  constructor(message = 'the connection timed out (idle)', options?: ErrorOptions) {
    super('ERR_IDLE_TIMEOUT', message, options)
  }
}

/**
 * A user-supplied event listener or callback threw or returned a rejected promise.
 * `cause` is what it threw; `event` is the name of the event it was listening to, or
 * of the callback (`approve`, `onPin`).
 */
export class HandlerError extends CribcallError {
  readonly event: string

  constructor(event: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause)
    super('ERR_HANDLER', `a '${event}' listener failed: ${detail}`, { cause })
    this.event = event
  }
}

/** napi-rs status codes that mean "the JS value passed had the wrong type". */
const NAPI_ARGUMENT_STATUSES = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NameExpected',
  'FunctionExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'BigintExpected',
  'DateExpected',
  'ArrayBufferExpected',
  'DetachableArraybufferExpected',
])

function stringProp(value: object, key: string): string | undefined {
  const v = (value as Record<string, unknown>)[key]
  return typeof v === 'string' ? v : undefined
}

/**
 * Maps anything the native addon produced into a {@link CribcallError}:
 * - an `Error` thrown by the addon (its `code` property: ERR_INVALID_ARG, ERR_BIND,
 *   ERR_TLS, ERR_FRAME_TOO_LARGE, ERR_FRAME_EMPTY, ERR_NOT_CONNECTED,
 *   ERR_SEND_BUFFER_FULL, ERR_ENDPOINT_CLOSED, ERR_TOO_MANY_CONNECTIONS, ERR_INTERNAL,
 *   or a napi-rs status),
 * - a native `connectFailed` or `error` event (its `errorCode`, plus `expected` /
 *   `actual` for ERR_PIN_MISMATCH).
 * A value that already is a CribcallError is returned unchanged.
 */
export function fromNative(err: unknown): CribcallError {
  if (err instanceof CribcallError) return err
  if (err === null || (typeof err !== 'object' && typeof err !== 'function')) {
    return new InternalError(`native addon failed: ${String(err)}`, { cause: err })
  }
  const kind = stringProp(err, 'kind')
  const isEvent = kind !== undefined && !(err instanceof Error)
  const code = (isEvent ? stringProp(err, 'errorCode') : stringProp(err, 'code')) ?? ''
  const nativeMessage = stringProp(err, 'message')
  // Keep the original thrown Error as cause; events are plain data, nothing to chain.
  const options: ErrorOptions | undefined = isEvent ? undefined : { cause: err }
  const msg = (fallback: string): string => (nativeMessage && nativeMessage.length > 0 ? nativeMessage : fallback)

  switch (code) {
    case 'ERR_PIN_MISMATCH': {
      const expected = stringProp(err, 'expected') ?? ''
      const actual = stringProp(err, 'actual') ?? ''
      return new PinMismatchError(expected, actual, undefined, options)
    }
    case 'ERR_PEER_REJECTED':
      return new PeerRejectedError(msg('the peer rejected the connection during the handshake'), options)
    case 'ERR_HANDSHAKE_TIMEOUT':
      return new HandshakeTimeoutError(msg('the handshake timed out'), options)
    case 'ERR_IDLE_TIMEOUT':
      // A connect attempt that idles out never completed its handshake.
      return kind === 'connectFailed'
        ? new HandshakeTimeoutError(msg('the handshake timed out'), options)
        : new IdleTimeoutError(msg('the connection timed out (idle)'), options)
    case 'ERR_CONNECTION_REFUSED':
      return new ConnectionRefusedError(msg('the server refused the connection (busy)'), options)
    case 'ERR_CONNECTION_RESET':
      return new ConnectionResetError(msg('the peer reset the connection (stateless reset)'), options)
    case 'ERR_HANDSHAKE_FAILED':
      return new HandshakeFailedError(msg('the handshake failed'), options)
    case 'ERR_ENDPOINT_CLOSED':
      return new EndpointClosedError(msg('the endpoint is closed'), options)
    case 'ERR_NOT_CONNECTED':
    case 'ERR_CONNECTION_CLOSED':
      return new ConnectionClosedError(msg('the connection is closed'), options)
    case 'ERR_INVALID_ARG':
      return new InvalidArgumentError(msg('invalid argument'), options)
    case 'ERR_FRAME_EMPTY':
      return new InvalidArgumentError(msg('frame payload must not be empty'), options)
    case 'ERR_FRAME_TOO_LARGE':
      return new FrameTooLargeError(msg('frame payload exceeds the maximum frame size'), options)
    case 'ERR_SEND_BUFFER_FULL':
      return new SendBufferFullError(msg('the connection send buffer is full'), options)
    case 'ERR_BIND':
      return new BindError(msg('could not bind the UDP socket'), options)
    case 'ERR_TLS':
      return new TlsError(msg('invalid TLS certificate or key'), options)
    case 'ERR_SOCKET':
      return new SocketError(msg('UDP socket error'), options)
    case 'ERR_TOO_MANY_CONNECTIONS':
      return new TooManyConnectionsError(msg('too many connections'), options)
    case 'ERR_INTERNAL':
      return new InternalError(msg('internal error'), options)
    default:
      if (NAPI_ARGUMENT_STATUSES.has(code)) return new InvalidArgumentError(msg('invalid argument'), options)
      if (kind === 'connectFailed') {
        return new HandshakeFailedError(msg(`the handshake failed${code ? ` (${code})` : ''}`), options)
      }
      return new InternalError(
        code ? `${code}: ${msg('native addon failed')}` : msg('native addon failed'),
        options,
      )
  }
}

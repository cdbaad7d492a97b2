// Endpoint: one UDP socket driven by a native IO thread, as server and client. Its
// options and events are in endpoint-types.ts (bind's checks in endpoint-options.ts),
// its counters in endpoint-stats.ts, its connect() attempts in pending-connects.ts,
// what its native events mean for a Connection in connection-events.ts.
import {
  Connection,
  kDeliverClose,
  kDeliverDrain,
  kDeliverFrame,
  type Address,
  type ConnectionOwner,
  type Role,
} from './connection.js'
import { closeInfoOf, connectionInit, endpointClosedInfo } from './connection-events.js'
import { checkHost, checkOptionalInt, checkPort, checkSignal, normalizeFingerprint, resolveHost, toNativeOptions } from './endpoint-options.js'
import { statsOf, type EndpointStats } from './endpoint-stats.js'
import type { ConnectOptions, EndpointEvents, EndpointOptions, ListenOptions } from './endpoint-types.js'
import { TypedEmitter } from './emitter.js'
import {
  AbortError,
  AppErrorCode,
  ConnectionClosedError,
  CribcallError,
  EndpointClosedError,
  HandlerError,
  InternalError,
  InvalidArgumentError,
  fromNative,
} from './errors.js'
import { NativeEndpointHandle, type NativeEndpointOptions } from './native.js'
import { type EventBatchVisitor, type NativeEvent, type NativeEventBatch, walkEventBatch } from './native-events.js'
import { PendingConnects } from './pending-connects.js'

export type { EndpointStats } from './endpoint-stats.js'
export type { ConnectOptions, EndpointEvents, EndpointOptions, ListenOptions } from './endpoint-types.js'

/** How long close() waits for the native 'closed' event after the native close resolved. */
const CLOSED_EVENT_GRACE_MS = 2000

function warn(error: CribcallError): void {
  try {
    process.emitWarning(error)
  } catch {
    // emitWarning can only throw for --throw-deprecation style flags; never crash for it.
  }
}

/**
 * A QUIC endpoint: one UDP socket driven by a native IO thread, usable as a server
 * (listen()) and as a client (connect()) at the same time.
 */
export class Endpoint extends TypedEmitter<EndpointEvents> {
  readonly #native: NativeEndpointHandle
  readonly #address: Address
  readonly #connections = new Map<number, Connection>()
  readonly #pending = new PendingConnects()
  readonly #owner: ConnectionOwner
  /** close() was called or the native side reported 'closed'. */
  #closing = false
  /** Connections and pending connects have been finalized. */
  #finalized = false
  #closedEventSeen = false
  #flushScheduled = false
  readonly #flush = (): void => {
    this.#flushScheduled = false
    if (this.#finalized) return
    try {
      this.#native.flush()
    } catch (error) {
      this.#reportError(error instanceof CribcallError ? error : new InternalError('flush failed', { cause: error }))
    }
  }
  #notifyClosedEvent: (() => void) | undefined
  #closePromise: Promise<void> | undefined
  #resolveClosed!: () => void
  /**
   * Settles (never rejects) once the endpoint has stopped — by close(), destroy(), its
   * AbortSignal or a native failure: its connections have emitted 'close' by then.
   */
  readonly closed: Promise<void> = new Promise<void>((resolve) => {
    this.#resolveClosed = resolve
  })
  #detachSignal: (() => void) | undefined

  /**
   * Binds a UDP socket and starts the endpoint. (`override` because a class's static
   * side inherits Function.prototype.bind, which this deliberately shadows.)
   */
  static override async bind(options: EndpointOptions): Promise<Endpoint> {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('Endpoint.bind options must be an object')
    }
    const { nativeOptions, signal } = await toNativeOptions(options)
    return new Endpoint(nativeOptions, signal)
  }

  private constructor(nativeOptions: NativeEndpointOptions, signal: AbortSignal | undefined) {
    super()
    this.#native = new NativeEndpointHandle(nativeOptions, (batch) => this.#onEvents(batch))
    const local = this.#native.localAddress()
    this.#address = Object.freeze({ host: local.host, port: local.port })
    this.#owner = {
      endpoint: this,
      sendFrame: (connId, payload) => {
        if (this.#closing) throw new ConnectionClosedError('the endpoint is closing')
        // Frames sent in one tick go out together, at the end of it (one flush,
        // shared packets), from this thread when the IO thread is idle.
        const queued = this.#native.sendDeferred(connId, payload)
        if (!this.#flushScheduled) {
          this.#flushScheduled = true
          queueMicrotask(this.#flush)
        }
        return queued
      },
      queuedBytes: (connId) => (this.#finalized ? 0 : this.#native.queued(connId)),
      closeConnection: (connId, code, reason) => {
        if (this.#finalized) throw new EndpointClosedError()
        this.#native.closeConnection(connId, code, reason)
      },
      reportError: (error) => this.#reportError(error),
    }
    if (signal !== undefined) {
      const onAbort = (): void => {
        this.close().catch((error: unknown) => this.#reportError(fromNative(error)))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.#detachSignal = () => signal.removeEventListener('abort', onAbort)
    }
  }

  /** The bound local address (the actual port when bound with port 0). */
  get address(): Address {
    return this.#address
  }

  /** True once close() was called (or the native endpoint stopped by itself). */
  get isClosed(): boolean {
    return this.#closing
  }

  /** Starts accepting connections (server role). */
  listen(options: ListenOptions = {}): void {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('listen options must be an object')
    }
    const acceptUnknown = options.acceptUnknown ?? false
    if (typeof acceptUnknown !== 'boolean') throw new InvalidArgumentError('acceptUnknown must be a boolean')
    this.#assertOpen()
    this.#native.listen(acceptUnknown)
  }

  /** Changes the admission policy for unknown client certificates (new handshakes only). */
  setAcceptUnknown(acceptUnknown: boolean): void {
    if (typeof acceptUnknown !== 'boolean') throw new InvalidArgumentError('acceptUnknown must be a boolean')
    this.#assertOpen()
    this.#native.setAcceptUnknown(acceptUnknown)
  }

  /** Stops accepting new connections; established ones stay open. */
  stopListening(): void {
    this.#assertOpen()
    this.#native.stopListening()
  }

  /** Replaces the set of known client fingerprints (64 hex characters each). */
  setKnownPeers(fingerprints: Iterable<string>): void {
    if (
      fingerprints === null ||
      typeof fingerprints !== 'object' ||
      typeof (fingerprints as Partial<Iterable<string>>)[Symbol.iterator] !== 'function'
    ) {
      throw new InvalidArgumentError('fingerprints must be an iterable of strings')
    }
    const list = [...new Set(Array.from(fingerprints, (fp) => normalizeFingerprint(fp, 'fingerprint')))]
    this.#assertOpen()
    this.#native.setKnownPeers(list)
  }

  /**
   * Connects to a server whose certificate must have `serverFingerprint`. Resolves once
   * the server confirmed the handshake. Rejects with PinMismatchError,
   * PeerRejectedError, HandshakeTimeoutError, HandshakeFailedError, AbortError,
   * EndpointClosedError or InvalidArgumentError.
   */
  async connect(options: ConnectOptions): Promise<Connection> {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('connect options must be an object')
    }
    const { host, port, signal, timeoutMs } = options
    checkHost(host, 'host')
    checkPort(port, 1, 'port')
    const pin = normalizeFingerprint(options.serverFingerprint, 'serverFingerprint')
    checkOptionalInt(timeoutMs, 'timeoutMs', 1)
    checkSignal(signal)
    this.#assertOpen()
    if (signal?.aborted) throw new AbortError(signal.reason)

    const address = await resolveHost(host)
    this.#assertOpen()
    if (signal?.aborted) throw new AbortError(signal.reason)

    const connId = this.#native.connect(address, port, pin)
    return this.#pending.wait(connId, { host, port, signal, timeoutMs }, () =>
      this.#native.closeConnection(connId, AppErrorCode.OK, 'connect abandoned'),
    )
  }

  /**
   * Sends one frame to several connections of this endpoint (serialized once natively).
   * Closed connections and connections of other endpoints are skipped. Returns the
   * number of connections the frame was queued for.
   */
  broadcast(connections: Iterable<Connection>, payload: Uint8Array): number {
    if (!(payload instanceof Uint8Array)) throw new InvalidArgumentError('payload must be a Uint8Array or Buffer')
    const ids: number[] = []
    for (const conn of connections) {
      if (conn instanceof Connection && !conn.isClosed && this.#connections.get(conn.connId) === conn) {
        ids.push(conn.connId)
      }
    }
    if (this.#closing) throw new EndpointClosedError()
    const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
    // A typed array crosses in one piece (the addon reads it in place).
    return this.#native.broadcast(Uint32Array.from(ids), buf)
  }

  stats(): EndpointStats {
    if (this.#finalized) throw new EndpointClosedError()
    return statsOf(this.#native.stats())
  }

  /**
   * Closes every connection (code 0, 'endpoint closed'), stops the native IO thread and
   * releases the socket. Resolves once the native endpoint has fully stopped; open
   * connections have emitted 'close' and pending connect() calls have rejected with
   * EndpointClosedError by then. Idempotent.
   */
  close(): Promise<void> {
    this.#closePromise ??= this.#close()
    return this.#closePromise
  }

  /**
   * Closes at once without waiting (as node:quic's `destroy()`): what close() does, the
   * outcome observed through `closed`; a failure to stop is reported on 'error'.
   */
  destroy(): void {
    this.close().catch((error: unknown) => {
      this.#reportError(error instanceof CribcallError ? error : new InternalError('close failed', { cause: error }))
    })
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  async #close(): Promise<void> {
    this.#closing = true
    this.#detachSignal?.()
    this.#detachSignal = undefined
    this.#pending.rejectAll(() => new EndpointClosedError('the endpoint was closed before the connection was established'))
    let failure: CribcallError | undefined
    try {
      await this.#native.close()
    } catch (error) {
      failure = fromNative(error)
    }
    if (!this.#closedEventSeen && failure === undefined) await this.#closedEvent()
    this.#finalize()
    if (failure !== undefined) throw failure
  }

  /** Resolves when the native 'closed' event arrived, or after a grace period (with a warning). */
  #closedEvent(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#notifyClosedEvent = undefined
        warn(new InternalError(`native endpoint stopped but its 'closed' event did not arrive within ${CLOSED_EVENT_GRACE_MS} ms`))
        resolve()
      }, CLOSED_EVENT_GRACE_MS)
      timer.unref()
      this.#notifyClosedEvent = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }

  #finalize(): void {
    if (this.#finalized) return
    this.#closing = true
    this.#finalized = true
    this.#detachSignal?.()
    this.#detachSignal = undefined
    this.#pending.rejectAll(() => new EndpointClosedError('the endpoint was closed before the connection was established'))
    const info = endpointClosedInfo()
    for (const [connId, conn] of this.#connections) {
      this.#connections.delete(connId)
      conn[kDeliverClose](info)
    }
    this.#resolveClosed()
  }

  #assertOpen(): void {
    if (this.#closing) throw new EndpointClosedError()
  }

  /** Endpoint 'error', or a process warning when nobody listens. Never throws. */
  #reportError(error: CribcallError): void {
    if (this.listenerCount('error') > 0) {
      this.emitSafe('error', [error], (failure) => warn(new HandlerError('error', failure)))
    } else {
      warn(error)
    }
  }

  /** The addon's onEvents callback. Must never throw. */
  #onEvents(batch: NativeEventBatch): void {
    try {
      walkEventBatch(batch, this.#visitor, (error, what) =>
        this.#reportError(error instanceof CribcallError ? error : new InternalError(`failed to process native event ${what}`, { cause: error })),
      )
    } catch (error) {
      try {
        warn(new InternalError('failed to process native events', { cause: error }))
      } catch {
        // never throw into the addon
      }
    }
  }

  readonly #visitor: EventBatchVisitor = {
    frame: (connId, payload) => this.#connections.get(connId)?.[kDeliverFrame](payload),
    event: (event) => this.#dispatch(event),
  }

  #dispatch(event: NativeEvent): void {
    switch (event.kind) {
      case 'connection': {
        const conn = this.#newConnection('server', event)
        this.emitSafe('connection', [conn], (failure) => this.#reportError(new HandlerError('connection', failure)))
        return
      }
      case 'connected': {
        const conn = this.#newConnection('client', event)
        const pending = this.#pending.get(event.connId)
        if (pending !== undefined) pending.settle(conn)
        else void conn.close(AppErrorCode.OK, 'connect abandoned') // aborted/timed out meanwhile
        return
      }
      case 'connectFailed': {
        this.#pending.get(event.connId)?.settle(fromNative(event))
        return
      }
      case 'drain': {
        this.#connections.get(event.connId)?.[kDeliverDrain]()
        return
      }
      case 'close': {
        const conn = this.#connections.get(event.connId)
        if (conn !== undefined) {
          this.#connections.delete(event.connId)
          conn[kDeliverClose](closeInfoOf(event))
        } else {
          this.#pending
            .get(event.connId)
            ?.settle(new ConnectionClosedError(event.reason ? `connection closed: ${event.reason}` : 'connection closed during the handshake'))
        }
        return
      }
      case 'error': {
        this.#reportError(fromNative(event))
        return
      }
      case 'closed': {
        this.#closedEventSeen = true
        const notify = this.#notifyClosedEvent
        this.#notifyClosedEvent = undefined
        this.#finalize()
        notify?.()
        return
      }
      default:
        // Kinds a newer addon may add are ignored.
        return
    }
  }

  #newConnection(role: Role, event: Extract<NativeEvent, { kind: 'connection' | 'connected' }>): Connection {
    const conn = new Connection(this.#owner, connectionInit(role, event))
    this.#connections.set(event.connId, conn)
    return conn
  }
}
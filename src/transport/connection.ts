import { TypedEmitter } from './emitter.js'
import type { Endpoint } from './endpoint.js'
import {
  AbortError,
  AppErrorCode,
  ConnectionClosedError,
  CribcallError,
  HandlerError,
  InvalidArgumentError,
  SendBufferFullError,
} from './errors.js'

export interface Address {
  readonly host: string
  readonly port: number
}

export type Role = 'client' | 'server'

/** How a connection ended. */
export interface CloseInfo {
  /** Application error code (0 OK … 5 INTERNAL_ERROR) or, if !application, a QUIC transport error code. */
  readonly code: number
  readonly reason: string
  /** True when the peer closed the connection (or it timed out), false when we closed it. */
  readonly byPeer: boolean
  /** True for an application close (CONNECTION_CLOSE 0x1d), false for a transport close. */
  readonly application: boolean
  /** Set when the close has a library-level cause, e.g. 'ERR_IDLE_TIMEOUT', 'ERR_ENDPOINT_CLOSED'. */
  readonly errorCode?: string
}

export type ConnectionEvents = {
  /** One complete frame payload (without the 4-byte length header). */
  frame: [payload: Buffer]
  /**
   * The native send queue is empty again after a send was refused (SendBufferFullError)
   * or after it rose above half of maxSendBuffer.
   */
  drain: []
  /** Emitted exactly once. */
  close: [info: CloseInfo]
  error: [error: CribcallError]
}

/**
 * Frames received while the connection has no 'frame' listener are kept (in order) and
 * delivered when the first listener attaches. Past this many the connection is closed
 * with INTERNAL_ERROR ('receive buffer overflow').
 */
export const MAX_BUFFERED_FRAMES = 10_000

/** What a Connection needs from its endpoint. Internal. */
export interface ConnectionOwner {
  /** The endpoint the connection belongs to. */
  readonly endpoint: Endpoint
  sendFrame(connId: number, payload: Buffer): number
  queuedBytes(connId: number): number
  closeConnection(connId: number, code: number, reason: string): void
  /** Reports an error nobody on the connection handled (endpoint 'error' or a process warning). */
  reportError(error: CribcallError): void
}

export interface ConnectionInit {
  connId: number
  role: Role
  peerFingerprint: string
  peerCertificate: Buffer
  peerKnown: boolean
  remoteAddress: Address
}

// Internal entry points used by the endpoint; not part of the public API.
export const kDeliverFrame: unique symbol = Symbol('cribcall.deliverFrame')
export const kDeliverClose: unique symbol = Symbol('cribcall.deliverClose')
export const kDeliverError: unique symbol = Symbol('cribcall.deliverError')
export const kDeliverDrain: unique symbol = Symbol('cribcall.deliverDrain')

/** Largest close code the native layer accepts (u32). */
const MAX_CLOSE_CODE = 0xffff_ffff

/**
 * One QUIC connection with its single bidirectional control stream. Created by the
 * endpoint (its 'connection' event on the server side, connect() on the client side).
 */
export class Connection extends TypedEmitter<ConnectionEvents> {
  readonly connId: number
  readonly role: Role
  /** SHA-256 fingerprint of the certificate the peer presented in the handshake. */
  readonly peerFingerprint: string
  /** The peer's certificate (DER) exactly as presented in the handshake. */
  readonly peerCertificate: Buffer
  /**
   * Server side: whether the client's fingerprint is in the endpoint's known peers
   * (false means the connection was admitted only because acceptUnknown was on).
   * Client side: always true (the server matched the pin).
   */
  readonly peerKnown: boolean
  readonly remoteAddress: Address
  /** Resolves once, with the close information, when the connection has closed. Never rejects. */
  readonly closed: Promise<CloseInfo>

  readonly #owner: ConnectionOwner
  #resolveClosed!: (info: CloseInfo) => void
  #closeInfo: CloseInfo | undefined
  #closing = false
  #buffered: Buffer[] = []
  #flushScheduled = false
  #overflowed = false

  /** @internal Connections are created by Endpoint. */
  constructor(owner: ConnectionOwner, init: ConnectionInit) {
    super()
    this.#owner = owner
    this.connId = init.connId
    this.role = init.role
    this.peerFingerprint = init.peerFingerprint
    this.peerCertificate = init.peerCertificate
    this.peerKnown = init.peerKnown
    this.remoteAddress = Object.freeze({ host: init.remoteAddress.host, port: init.remoteAddress.port })
    this.closed = new Promise<CloseInfo>((resolve) => {
      this.#resolveClosed = resolve
    })
  }

  /** The endpoint this connection belongs to. */
  get endpoint(): Endpoint {
    return this.#owner.endpoint
  }

  /** True once the connection has closed (the 'close' event was emitted). */
  get isClosed(): boolean {
    return this.#closeInfo !== undefined
  }

  /**
   * Queues one frame (the 4-byte length header is added natively). Returns the number of
   * bytes now queued natively for this connection. Throws synchronously:
   * ConnectionClosedError when closed or closing, FrameTooLargeError above
   * maxFramePayload, InvalidArgumentError for an empty or non-binary payload,
   * SendBufferFullError when maxSendBuffer bytes are already queued.
   */
  send(payload: Uint8Array): number {
    if (this.#closeInfo !== undefined || this.#closing) {
      throw new ConnectionClosedError(`connection ${this.connId} is closed`)
    }
    if (!(payload instanceof Uint8Array)) {
      throw new InvalidArgumentError('payload must be a Uint8Array or Buffer')
    }
    const buf = Buffer.isBuffer(payload)
      ? payload
      : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
    return this.#owner.sendFrame(this.connId, buf)
  }

  /** Bytes accepted by send()/write() and not yet handed to QUIC (0 once closed). */
  get queuedBytes(): number {
    if (this.#closeInfo !== undefined) return 0
    return this.#owner.queuedBytes(this.connId)
  }

  /**
   * Queues one frame like send(), waiting for 'drain' while the send buffer is full
   * instead of throwing SendBufferFullError. Resolves with the bytes then queued.
   * Rejects with ConnectionClosedError if the connection closes first, AbortError when
   * `signal` aborts, and like send() for invalid payloads (a frame larger than
   * maxSendBuffer can never be queued: FrameTooLargeError or SendBufferFullError at once).
   */
  async write(payload: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<number> {
    const { signal } = options
    for (;;) {
      if (signal?.aborted) throw new AbortError(signal.reason)
      try {
        return this.send(payload)
      } catch (error) {
        if (!(error instanceof SendBufferFullError) || this.queuedBytes === 0) throw error
      }
      await this.#waitForDrain(signal)
    }
  }

  #waitForDrain(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        this.off('drain', onDrain)
        this.off('close', onClose)
        signal?.removeEventListener('abort', onAbort)
      }
      const onDrain = (): void => {
        done()
        resolve()
      }
      const onClose = (): void => {
        done()
        reject(new ConnectionClosedError(`connection ${this.connId} closed before the frame could be queued`))
      }
      const onAbort = (): void => {
        done()
        reject(new AbortError(signal?.reason))
      }
      if (this.#closeInfo !== undefined) return onClose()
      this.on('drain', onDrain)
      this.on('close', onClose)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /**
   * Closes the connection with a QUIC application close (code, reason). Idempotent.
   * Returns the `closed` promise; the 'close' event follows with byPeer false.
   */
  close(code: number = AppErrorCode.OK, reason = ''): Promise<CloseInfo> {
    if (!Number.isInteger(code) || code < 0 || code > MAX_CLOSE_CODE) {
      throw new InvalidArgumentError(`close code must be an integer in 0..${MAX_CLOSE_CODE}, got ${String(code)}`)
    }
    if (typeof reason !== 'string') {
      throw new InvalidArgumentError('close reason must be a string')
    }
    if (this.#closeInfo === undefined && !this.#closing) {
      this.#closing = true
      try {
        this.#owner.closeConnection(this.connId, code, reason)
      } catch (error) {
        // Already gone natively (its 'close' event is on its way) or the endpoint is
        // closed (the endpoint closes its connections): nothing left to do. Anything
        // else is unexpected and surfaces as an 'error'.
        if (error instanceof CribcallError && error.code !== 'ERR_CONNECTION_CLOSED' && error.code !== 'ERR_ENDPOINT_CLOSED') {
          this[kDeliverError](error)
        }
      }
    }
    return this.closed
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  protected override listenerAdded(event: keyof ConnectionEvents): void {
    if (event === 'frame' && this.#buffered.length > 0) this.#scheduleFlush()
  }

  /** @internal */
  [kDeliverFrame](payload: Buffer): void {
    if (this.#overflowed) return
    if (this.#buffered.length === 0 && this.listenerCount('frame') > 0) {
      this.#emit('frame', [payload])
      return
    }
    this.#buffered.push(payload)
    if (this.#buffered.length > MAX_BUFFERED_FRAMES) {
      this.#overflowed = true
      this.#buffered = []
      if (this.#closeInfo === undefined) this.close(AppErrorCode.INTERNAL_ERROR, 'receive buffer overflow')
      return
    }
    if (this.listenerCount('frame') > 0) this.#scheduleFlush()
  }

  /** @internal */
  [kDeliverClose](info: CloseInfo): void {
    if (this.#closeInfo !== undefined) return
    const frozen = Object.freeze({ ...info })
    this.#closeInfo = frozen
    this.#resolveClosed(frozen)
    this.#emit('close', [frozen])
  }

  /** @internal */
  [kDeliverDrain](): void {
    if (this.#closeInfo !== undefined) return
    this.emitSafe('drain', [], (failure) => this[kDeliverError](new HandlerError('drain', failure)))
  }

  /** @internal Emits 'error', or hands the error to the endpoint when nobody listens. */
  [kDeliverError](error: CribcallError): void {
    if (this.listenerCount('error') > 0) {
      this.emitSafe('error', [error], (failure) => this.#owner.reportError(new HandlerError('error', failure)))
    } else {
      this.#owner.reportError(error)
    }
  }

  #emit<K extends 'frame' | 'close'>(event: K, args: ConnectionEvents[K]): void {
    this.emitSafe(event, args, (failure) => this[kDeliverError](new HandlerError(event, failure)))
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    // Deferred so that a listener is not called from inside on(), and so that every
    // listener attached in the same tick sees the buffered frames.
    queueMicrotask(() => this.#flush())
  }

  #flush(): void {
    this.#flushScheduled = false
    const queue = this.#buffered
    this.#buffered = []
    let i = 0
    while (i < queue.length && this.listenerCount('frame') > 0 && !this.#overflowed) {
      this.#emit('frame', [queue[i++]!])
    }
    if (i < queue.length && !this.#overflowed) {
      // The last listener went away: keep the rest, in order, ahead of anything newer.
      this.#buffered = queue.slice(i).concat(this.#buffered)
    }
  }
}

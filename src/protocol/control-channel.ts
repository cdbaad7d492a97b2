// ControlChannel: the typed, validated, gated CribCall control channel over one
// Connection. SPEC.md §5–§8 are the rules it enforces. Its events and options are in
// control-channel-types.ts, its round trips in control-channel-ping.ts, its message
// iterator in channel-iterator.ts.
import { TypedEmitter } from '../transport/emitter.js'
import { Connection, type CloseInfo } from '../transport/connection.js'
import type { Endpoint } from '../transport/endpoint.js'
import { ConnectionClosedError, CribcallError, HandlerError, InvalidArgumentError } from '../transport/errors.js'
import { CanonicalizationError, canonicalBytes } from './canonical.js'
import { ChannelIterator, ITERATOR_BUFFER } from './channel-iterator.js'
import { PendingPings, roundTrip, type PingWaiter } from './control-channel-ping.js'
import type {
  ConnectChannelOptions,
  ControlChannelEvents,
  ControlChannelOptions,
  PingOptions,
} from './control-channel-types.js'
import { judgeFrame, maySend, type ChannelRole, type Trust } from './gating.js'
import { ErrorCode, isMessageType, schemaError, type ErrorName, type Message } from './messages.js'
import { InvalidMessageError, NotAllowedError, ProtocolError, SessionConflictError } from './errors.js'

export type { ChannelRole, Trust } from './gating.js'
export type {
  ConnectChannelOptions,
  ControlChannelEvents,
  ControlChannelOptions,
  PingOptions,
} from './control-channel-types.js'

const ERROR_MESSAGE_MAX = 512

/**
 * A typed CribCall control channel. Incoming frames are parsed strictly, gated by role
 * and trust, validated, and only then delivered; what is rejected is answered in band
 * with an ERROR frame and, where SPEC.md says so, the connection is closed with the
 * same application code.
 */
export class ControlChannel extends TypedEmitter<ControlChannelEvents> {
  readonly connection: Connection
  readonly role: ChannelRole
  /** Resolves once with the close information. Never rejects. */
  readonly closed: Promise<CloseInfo>

  #trust: Trust
  readonly #maxDepth: number | undefined
  readonly #liveSessions = new Set<string>()
  readonly #pings = new PendingPings()
  #rejectedAndClosing = false
  #pingTimer: NodeJS.Timeout | undefined
  readonly #iterators = new Set<ChannelIterator>()
  readonly #iteratorBuffer: number
  #stats = { accepted: 0, rejected: 0 }

  constructor(connection: Connection, options: ControlChannelOptions) {
    super()
    if (!(connection instanceof Connection)) throw new InvalidArgumentError('connection must be a Connection')
    if (options.role !== 'monitor' && options.role !== 'listener') {
      throw new InvalidArgumentError("role must be 'monitor' or 'listener'")
    }
    if (options.trust !== 'pairing-only' && options.trust !== 'trusted') {
      throw new InvalidArgumentError("trust must be 'pairing-only' or 'trusted'")
    }
    this.connection = connection
    this.role = options.role
    this.#trust = options.trust
    this.#maxDepth = options.maxDepth
    this.#iteratorBuffer = options.iteratorBuffer ?? ITERATOR_BUFFER
    this.closed = connection.closed
    connection.on('frame', (payload) => this.#onFrame(payload))
    connection.on('close', (info) => this.#onClose(info))
    connection.on('drain', () => this.#emit('drain', []))
    connection.on('error', (error) => this.#reportError(error))
    const interval = options.pingIntervalMs ?? 0
    if (interval > 0) this.#startPinging(interval)
  }

  /**
   * Connects to a monitor as a listener: pinned mutual TLS, then a channel. Resolves only
   * after the monitor confirmed the handshake (a refused listener gets
   * PeerRejectedError). A trusted channel immediately sends a PING, which opens the
   * control stream so the monitor can push (SPEC.md §4).
   */
  static async connect(endpoint: Endpoint, options: ConnectChannelOptions): Promise<ControlChannel> {
    const trust = options.trust ?? 'trusted'
    const conn = await endpoint.connect({
      host: options.host,
      port: options.port,
      serverFingerprint: options.serverFingerprint,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    })
    const channel = new ControlChannel(conn, {
      role: 'listener',
      trust,
      ...(options.pingIntervalMs === undefined ? {} : { pingIntervalMs: options.pingIntervalMs }),
      ...(options.maxDepth === undefined ? {} : { maxDepth: options.maxDepth }),
    })
    if (trust === 'trusted') channel.#sendPing()
    return channel
  }

  /** Wraps a connection the monitor accepted; trust follows whether the peer is known. */
  static accept(connection: Connection, options: Partial<Omit<ControlChannelOptions, 'role'>> = {}): ControlChannel {
    return new ControlChannel(connection, {
      ...options,
      role: 'monitor',
      trust: options.trust ?? (connection.peerKnown ? 'trusted' : 'pairing-only'),
    })
  }

  /** SHA-256 fingerprint of the peer's certificate as seen in the TLS handshake. */
  get peerFingerprint(): string {
    return this.connection.peerFingerprint
  }

  get trust(): Trust {
    return this.#trust
  }

  get isClosed(): boolean {
    return this.connection.isClosed
  }

  /** Counters of accepted and rejected incoming messages. */
  get stats(): { readonly accepted: number; readonly rejected: number } {
    return { ...this.#stats }
  }

  /** Pairing upgrades a pairing-only channel to trusted, in place. */
  upgradeTrust(): void {
    if (this.#trust === 'trusted') return
    this.#trust = 'trusted'
    this.#emit('trust', ['trusted'])
  }

  /**
   * Validates, gates and sends one message as RFC 8785 canonical JSON. Throws
   * InvalidMessageError, NotAllowedError (role or trust), SessionConflictError,
   * ConnectionClosedError, SendBufferFullError.
   */
  send(message: Message): void {
    this.#sendChecked(message)
  }

  /** Bytes sent on this channel and still queued natively (not yet handed to QUIC). */
  get queuedBytes(): number {
    return this.connection.queuedBytes
  }

  /**
   * Like send(), but waits for 'drain' while the send buffer is full instead of throwing
   * SendBufferFullError. Validation and gating errors reject at once; ConnectionClosedError
   * if the channel closes first; AbortError when `signal` aborts. Resolves with the bytes
   * then queued natively.
   */
  async write(message: Message, options: { signal?: AbortSignal } = {}): Promise<number> {
    this.#checkOutgoing(message)
    if (message.type === 'START_STREAM_REQUEST' && this.#liveSessions.has(message.sessionId)) {
      throw new SessionConflictError(`stream session ${message.sessionId} is already live`)
    }
    const n = await this.connection.write(encode(message), options)
    this.#trackSessions(message)
    return n
  }

  /** Measures one application-level round trip (PING → PONG) in milliseconds. */
  ping(options: PingOptions = {}): Promise<number> {
    return roundTrip(this.#pings, (waiter) => this.#sendPing(waiter), options)
  }

  /** Closes the channel (QUIC application close with `code`, default 0 OK). */
  close(code: number = ErrorCode.OK, reason = ''): Promise<CloseInfo> {
    return this.connection.close(code, reason)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** Iterates accepted messages until the channel closes or `signal` aborts. */
  messages(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<Message> {
    const it = new ChannelIterator<ControlChannel>(this, this.#iteratorBuffer, options.signal, (self) => this.#iterators.delete(self))
    if (it.isDone) return it // the signal was already aborted: next() rejects with AbortError
    this.#iterators.add(it)
    if (this.isClosed) it.end()
    return it
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Message> {
    return this.messages()
  }

  /**
   * Sends one message to many channels: validated and serialized once, queued for all
   * channels of each endpoint in one native call. Every channel must be allowed to send
   * it (role and trust), else nothing is sent. Returns how many channels got it.
   */
  static broadcast(message: Message, channels: Iterable<ControlChannel>): number {
    const list = [...channels].filter((c) => !c.isClosed)
    for (const c of list) c.#checkOutgoing(message)
    const bytes = encode(message)
    const byEndpoint = new Map<Endpoint, Connection[]>()
    for (const c of list) {
      const ep = c.connection.endpoint
      const group = byEndpoint.get(ep)
      if (group === undefined) byEndpoint.set(ep, [c.connection])
      else group.push(c.connection)
    }
    let sent = 0
    for (const [ep, conns] of byEndpoint) sent += ep.broadcast(conns, bytes)
    return sent
  }

  // ---- internals ----

  #checkOutgoing(message: Message): void {
    if (message === null || typeof message !== 'object' || typeof (message as { type?: unknown }).type !== 'string') {
      throw new InvalidMessageError('a message is an object with a string "type"')
    }
    const type = message.type
    if (!isMessageType(type)) throw new InvalidMessageError(`unknown message type ${String(type)}`)
    const invalid = schemaError(type, message)
    if (invalid !== null) throw new InvalidMessageError(invalid)
    const allowed = maySend(this.role, this.#trust, type)
    if (allowed === 'role') throw new NotAllowedError('role', `a ${this.role} may not send ${type}`)
    if (allowed === 'trust') throw new NotAllowedError('trust', `${type} needs a paired channel (this one is pairing-only)`)
    if (this.connection.isClosed) throw new ConnectionClosedError()
  }

  #sendChecked(message: Message): void {
    this.#checkOutgoing(message)
    if (message.type === 'START_STREAM_REQUEST') {
      if (this.#liveSessions.has(message.sessionId)) {
        throw new SessionConflictError(`stream session ${message.sessionId} is already live`)
      }
    }
    this.connection.send(encode(message))
    this.#trackSessions(message)
  }

  #trackSessions(message: Message): void {
    switch (message.type) {
      case 'START_STREAM_REQUEST':
        this.#liveSessions.add(message.sessionId)
        break
      case 'START_STREAM_RESPONSE':
        if (!message.accepted) this.#liveSessions.delete(message.sessionId)
        break
      case 'END_STREAM':
        this.#liveSessions.delete(message.sessionId)
        break
      default:
        break
    }
  }

  #sendPing(waiter?: PingWaiter): number {
    return this.#pings.send((stamp) => this.#sendChecked({ type: 'PING', timestamp: stamp }), waiter)
  }

  #startPinging(interval: number): void {
    this.#pingTimer = setInterval(() => {
      if (this.#trust !== 'trusted' || this.isClosed) return
      this.ping({ timeoutMs: interval * 2 }).catch((e: unknown) => {
        if (this.isClosed) return
        this.#reportError(e instanceof CribcallError ? e : new CribcallError('ERR_PING', String(e)))
      })
    }, interval)
    this.#pingTimer.unref()
  }

  #onFrame(payload: Buffer): void {
    if (this.#rejectedAndClosing || this.isClosed) return
    const verdict = judgeFrame(payload, {
      role: this.role,
      trust: this.#trust,
      liveSessions: this.#liveSessions,
      ...(this.#maxDepth === undefined ? {} : { maxDepth: this.#maxDepth }),
    })
    if (!verdict.accept) {
      this.#stats.rejected++
      this.#answerError(verdict.error, verdict.detail, verdict.inReplyTo)
      if (verdict.close) {
        // Nothing the peer sends after this is judged (exactly one ERROR per rejection).
        this.#rejectedAndClosing = true
        this.#closeAfterError(verdict.code, verdict.error)
      }
      this.#reportError(
        new ProtocolError(verdict.code, verdict.error, `rejected from peer: ${verdict.detail}`, false),
      )
      return
    }
    this.#stats.accepted++
    const message = verdict.message
    this.#trackSessions(message)
    if (message.type === 'PING') {
      // PING is only accepted on a trusted channel (gating), so answering is allowed.
      try {
        this.#sendChecked({ type: 'PONG', timestamp: message.timestamp })
      } catch (e) {
        this.#reportError(e instanceof CribcallError ? e : new CribcallError('ERR_PONG', String(e)))
      }
    } else if (message.type === 'PONG') {
      this.#pings.pong(message.timestamp)
    }
    this.#deliver('message', [message])
    if (message.type === 'NOISE_EVENT') this.#deliver('noise', [message])
    if (message.type === 'ERROR') {
      this.#reportError(
        new ProtocolError(message.code, message.error, message.message ?? `peer reported ${message.error}`, true),
      )
    }
    for (const it of this.#iterators) it.push(message)
  }

  /**
   * Closes after a rejection. The ERROR frame was queued just before: the transport
   * sends the frames queued before a close ahead of the CONNECTION_CLOSE (SPEC.md §6).
   */
  #closeAfterError(code: number, reason: string): void {
    try {
      this.connection.close(code, reason).catch(() => undefined)
    } catch {
      // close() only throws for invalid arguments; ours are valid.
    }
  }

  #answerError(error: ErrorName, detail: string, inReplyTo: string | undefined): void {
    const frame: Message = {
      type: 'ERROR',
      code: ErrorCode[error],
      error,
      message: truncate(detail, ERROR_MESSAGE_MAX),
      ...(inReplyTo === undefined ? {} : { inReplyTo }),
    }
    try {
      this.connection.send(canonicalBytes(frame))
    } catch {
      // The connection is already going away; the close carries the code.
    }
  }

  #onClose(info: CloseInfo): void {
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer)
    this.#pings.rejectAll(() => new ConnectionClosedError(`channel closed: ${info.reason}`))
    this.#liveSessions.clear()
    for (const it of this.#iterators) it.end()
    this.#deliver('close', [info])
  }

  #deliver<K extends 'message' | 'noise' | 'close' | 'trust'>(event: K, args: ControlChannelEvents[K]): void {
    this.emitSafe(event, args, (failure) => this.#reportError(new HandlerError(String(event), failure)))
  }

  #reportError(error: CribcallError): void {
    const delivered = this.emitSafe('error', [error], (failure) => {
      process.emitWarning(`cribcall-quic: an 'error' listener failed: ${String(failure)}`)
    })
    if (!delivered && error instanceof HandlerError) {
      process.emitWarning(`cribcall-quic: ${error.message} (no 'error' listener on the channel)`)
    }
  }

  #emit<K extends keyof ControlChannelEvents>(event: K, args: ControlChannelEvents[K]): void {
    this.emitSafe(event, args, (failure) => this.#reportError(new HandlerError(String(event), failure)))
  }
}

/** Canonical bytes of an outgoing message; what cannot be serialized is an InvalidMessageError. */
function encode(message: Message): Uint8Array {
  try {
    return canonicalBytes(message)
  } catch (e) {
    if (e instanceof CanonicalizationError) throw new InvalidMessageError(`not serializable: ${e.message}`, { cause: e })
    throw e
  }
}

function truncate(s: string, max: number): string {
  const chars = [...s]
  return chars.length <= max ? s : chars.slice(0, max - 1).join('') + '…'
}

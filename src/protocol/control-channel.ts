// ControlChannel: the typed, validated, gated CribCall control channel over one
// Connection. SPEC.md §5–§8 are the rules it enforces.
import { TypedEmitter } from '../transport/emitter.js'
import { Connection, type CloseInfo } from '../transport/connection.js'
import type { Endpoint } from '../transport/endpoint.js'
import { AbortError, ConnectionClosedError, CribcallError, HandlerError, InvalidArgumentError } from '../transport/errors.js'
import { CanonicalizationError, canonicalBytes } from './canonical.js'
import { judgeFrame, maySend, type ChannelRole, type Trust } from './gating.js'
import {
  ErrorCode,
  isMessageType,
  schemaError,
  type ErrorName,
  type Message,
  type NoiseEventMessage,
} from './messages.js'
import {
  InvalidMessageError,
  IteratorOverflowError,
  NotAllowedError,
  ProtocolError,
  SessionConflictError,
} from './errors.js'

export type { ChannelRole, Trust } from './gating.js'

export type ControlChannelEvents = {
  /** Every message the channel accepted (rejected ones never get here). */
  message: [message: Message]
  /** NOISE_EVENT messages (also delivered as 'message'). */
  noise: [event: NoiseEventMessage]
  /** The channel's trust changed (pairing upgrades it in place). */
  trust: [trust: Trust]
  /** The connection's native send queue emptied after a refused send (see Connection 'drain'). */
  drain: []
  /** Emitted once when the underlying connection closed. */
  close: [info: CloseInfo]
  /** Handler failures, rejected peer input, peer ERROR frames. */
  error: [error: CribcallError]
}

export interface ControlChannelOptions {
  /** This side's role. */
  readonly role: ChannelRole
  /** Initial trust. Monitor side: 'trusted' only for a known (paired) peer. */
  readonly trust: Trust
  /** Nesting limit of incoming JSON (default 32). */
  readonly maxDepth?: number
  /** Send a PING this often (trusted channels); 0/absent = off. */
  readonly pingIntervalMs?: number
  /** Messages the async iterator may hold before it fails (default 10,000). */
  readonly iteratorBuffer?: number
}

export interface ConnectChannelOptions {
  readonly host: string
  readonly port: number
  /** The monitor's pinned certificate fingerprint. */
  readonly serverFingerprint: string
  /** 'trusted' when this monitor is paired (default), 'pairing-only' to pair. */
  readonly trust?: Trust
  readonly signal?: AbortSignal
  readonly timeoutMs?: number
  readonly pingIntervalMs?: number
  readonly maxDepth?: number
}

export interface PingOptions {
  readonly signal?: AbortSignal
  /** Give up after this many ms (default 10,000). */
  readonly timeoutMs?: number
}

interface PendingPing {
  readonly started: number
  readonly resolve: (ms: number) => void
  readonly reject: (e: Error) => void
}

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
  readonly #pings = new Map<number, PendingPing>()
  #lastPingStamp = 0
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
    this.#iteratorBuffer = options.iteratorBuffer ?? 10_000
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
    const { signal } = options
    const timeoutMs = options.timeoutMs ?? 10_000
    if (signal?.aborted) return Promise.reject(new AbortError(signal.reason))
    return new Promise<number>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      let stamp = 0
      const cleanup = (): void => {
        this.#pings.delete(stamp)
        if (timer !== undefined) clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      const onAbort = (): void => {
        cleanup()
        reject(new AbortError(signal?.reason))
      }
      try {
        stamp = this.#sendPing({
          resolve: (ms) => {
            cleanup()
            resolve(ms)
          },
          reject: (e) => {
            cleanup()
            reject(e)
          },
        })
      } catch (e) {
        reject(e)
        return
      }
      timer = setTimeout(() => {
        cleanup()
        reject(new CribcallError('ERR_PING_TIMEOUT', `no PONG within ${timeoutMs} ms`))
      }, timeoutMs)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
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
    const it = new ChannelIterator(this, this.#iteratorBuffer, options.signal, (self) => this.#iterators.delete(self))
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

  #sendPing(pending?: Omit<PendingPing, 'started'>): number {
    const stamp = Math.max(Date.now(), this.#lastPingStamp + 1)
    const started = performance.now()
    // Throws (NotAllowedError on a pairing-only channel, ConnectionClosedError, ...)
    // before anything is registered, so a failed ping leaves no pending entry behind.
    this.#sendChecked({ type: 'PING', timestamp: stamp })
    this.#lastPingStamp = stamp
    if (pending !== undefined) this.#pings.set(stamp, { ...pending, started })
    return stamp
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
      const p = this.#pings.get(message.timestamp)
      if (p !== undefined) p.resolve(performance.now() - p.started)
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
    for (const p of this.#pings.values()) p.reject(new ConnectionClosedError(`channel closed: ${info.reason}`))
    this.#pings.clear()
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

/** Async iterator over a channel's accepted messages. */
class ChannelIterator implements AsyncIterableIterator<Message> {
  readonly #queue: Message[] = []
  readonly #waiters: { resolve: (r: IteratorResult<Message>) => void; reject: (e: Error) => void }[] = []
  #done = false
  #failure: Error | undefined
  readonly #onAbort: () => void

  constructor(
    private readonly channel: ControlChannel,
    private readonly limit: number,
    private readonly signal: AbortSignal | undefined,
    private readonly detach: (self: ChannelIterator) => void,
  ) {
    this.#onAbort = () => this.#fail(new AbortError(signal?.reason))
    if (signal?.aborted) this.#fail(new AbortError(signal.reason))
    else signal?.addEventListener('abort', this.#onAbort, { once: true })
  }

  push(m: Message): void {
    if (this.#done) return
    const w = this.#waiters.shift()
    if (w !== undefined) {
      w.resolve({ value: m, done: false })
      return
    }
    if (this.#queue.length >= this.limit) {
      this.#fail(new IteratorOverflowError(`more than ${this.limit} messages waiting in the iterator`))
      return
    }
    this.#queue.push(m)
  }

  end(): void {
    if (this.#done) return
    this.#done = true
    this.#cleanup()
    for (const w of this.#waiters.splice(0)) w.resolve({ value: undefined, done: true })
  }

  #fail(e: Error): void {
    if (this.#done) return
    this.#failure = e
    this.#done = true
    this.#queue.length = 0
    this.#cleanup()
    for (const w of this.#waiters.splice(0)) w.reject(e)
  }

  #cleanup(): void {
    this.signal?.removeEventListener('abort', this.#onAbort)
    this.detach(this)
  }

  get isDone(): boolean {
    return this.#done
  }

  next(): Promise<IteratorResult<Message>> {
    const m = this.#queue.shift()
    if (m !== undefined) return Promise.resolve({ value: m, done: false })
    if (this.#failure !== undefined) {
      const f = this.#failure
      this.#failure = undefined
      return Promise.reject(f)
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
  }

  return(): Promise<IteratorResult<Message>> {
    this.end()
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Message> {
    return this
  }

  get source(): ControlChannel {
    return this.channel
  }
}

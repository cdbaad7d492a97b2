// ListenerChannel: a listener's self-reconnecting control channel to one paired monitor.
// Reconnects with jittered exponential backoff after every close or failed dial, ends
// for good only on a refusal (reconnect.ts classifies), and delivers each NOISE_EVENT
// at most once across reconnects (SPEC: a monitor's NOISE_EVENT timestamps strictly
// increase, so a listener drops any that is not newer than the last it delivered).
import { setTimeout as sleep } from 'node:timers/promises'
import { ChannelIterator, ITERATOR_BUFFER } from '../protocol/channel-iterator.js'
import type { ControlChannel, Trust } from '../protocol/control-channel.js'
import { ErrorCode, type Message, type NoiseEventMessage } from '../protocol/messages.js'
import type { TrustEntry } from '../store/trust-store.js'
import type { CloseInfo } from '../transport/connection.js'
import { AbortError, ConnectionClosedError, CribcallError, InternalError, InvalidArgumentError } from '../transport/errors.js'
import { backoffDelay, isFinalClose, isFinalDialError, resolveReconnectOptions, type ReconnectOptions, type ResolvedReconnectOptions } from './reconnect.js'
import { ReportingEmitter } from './reporting-emitter.js'

/** How the current connection ended; `final` when the channel ends with it (no redial). */
export interface DisconnectInfo extends CloseInfo {
  readonly final: boolean
}

export interface ReconnectingInfo {
  /** The number of the dial that follows (the first connection was attempt 1). */
  readonly attempt: number
  /** The jittered delay before that dial. */
  readonly delayMs: number
  /** Consecutive failures so far (0 right after a healthy connection closed). */
  readonly failures: number
  /** Why the previous dial failed; absent when an established connection closed. */
  readonly error?: CribcallError
}

export type ListenerChannelEvents = {
  /** Every accepted message, except NOISE_EVENTs dropped as replays (see duplicatesDropped). */
  message: [message: Message]
  /** NOISE_EVENTs newer than the last one delivered (also delivered as 'message'). */
  noise: [event: NoiseEventMessage]
  /** A connection (re)established. */
  connected: [info: { attempt: number }]
  /** The current connection ended; a reconnect follows unless `final`. */
  disconnected: [info: DisconnectInfo]
  /** A dial follows after `delayMs`. */
  reconnecting: [info: ReconnectingInfo]
  /** The channel is closed for good (close(), revoked or refused, changed monitor identity, give-up). */
  close: [info: CloseInfo]
  /** Handler failures (HandlerError), peer ERROR frames and rejected input, the error that ended the channel. */
  error: [error: CribcallError]
}

/** @internal What a Listener gives its channels. */
export interface ListenerChannelInit {
  readonly dial: (signal: AbortSignal) => Promise<ControlChannel>
  readonly reconnect?: ReconnectOptions
  /** Called after each connection is up (the listener records the monitor as seen). */
  readonly onConnected?: () => void
  /** Timestamp of the last NOISE_EVENT already delivered from this monitor (e.g. persisted by the app). */
  readonly lastNoiseTimestamp?: number
}

type Outcome = 'done' | { readonly healthy: boolean; readonly error?: CribcallError }

/**
 * A listener's channel to one paired monitor. It has the ControlChannel surface
 * (send, ping, messages, 'message'/'noise'/'close'/'error') and survives reconnects.
 */
export class ListenerChannel extends ReportingEmitter<ListenerChannelEvents> {
  readonly role = 'listener' as const
  readonly trust: Trust = 'trusted'
  readonly monitor: TrustEntry
  /** Resolves once, when the channel is closed for good. Never rejects. */
  readonly closed: Promise<CloseInfo>
  readonly #dial: ListenerChannelInit['dial']
  readonly #options: ResolvedReconnectOptions
  readonly #onConnected: () => void
  readonly #abort = new AbortController()
  #current: ControlChannel | undefined
  #resolveClosed!: (info: CloseInfo) => void
  #finished: CloseInfo | undefined
  readonly #iterators = new Set<ChannelIterator<ListenerChannel>>()
  #loop: Promise<void> | undefined
  #lastNoise: number | undefined
  #duplicates = 0

  /** @internal Created by Listener.connect() / Listener.openChannel(). */
  constructor(monitor: TrustEntry, init: ListenerChannelInit) {
    super()
    this.monitor = monitor
    this.#dial = init.dial
    this.#options = resolveReconnectOptions(init.reconnect)
    this.#onConnected = init.onConnected ?? (() => undefined)
    const last = init.lastNoiseTimestamp
    if (last !== undefined && (typeof last !== 'number' || !Number.isSafeInteger(last) || last < 0)) {
      throw new InvalidArgumentError('lastNoiseTimestamp must be a timestamp (integer ≥ 0, ms)')
    }
    this.#lastNoise = last
    this.closed = new Promise((r) => (this.#resolveClosed = r))
  }

  get peerFingerprint(): string {
    return this.monitor.fingerprint
  }

  /** The live ControlChannel, if connected. */
  get current(): ControlChannel | undefined {
    return this.#current
  }

  get isConnected(): boolean {
    return this.#current !== undefined && !this.#current.isClosed
  }

  get isClosed(): boolean {
    return this.#finished !== undefined
  }

  /** NOISE_EVENTs dropped because their timestamp was not newer than the last delivered one (replays). */
  get duplicatesDropped(): number {
    return this.#duplicates
  }

  /** Timestamp of the last NOISE_EVENT delivered on this channel (across reconnects). */
  get lastNoiseTimestamp(): number | undefined {
    return this.#lastNoise
  }

  /**
   * @internal Starts the connection loop (once); resolves after the first connection,
   * rejects when the channel ends before one (refused, give-up, `signal` aborted).
   */
  start(signal?: AbortSignal): Promise<void> {
    if (this.#loop !== undefined) return Promise.reject(new InternalError('ListenerChannel.start() called twice'))
    return new Promise<void>((resolve, reject) => {
      let settled = false
      const settle = (error?: CribcallError): void => {
        if (settled) return
        settled = true
        signal?.removeEventListener('abort', onAbort)
        if (error === undefined) resolve()
        else reject(error)
      }
      const onAbort = (): void => {
        settle(new AbortError(signal?.reason))
        void this.close()
      }
      if (signal?.aborted) return onAbort()
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#loop = this.#run(() => settle(), settle)
    })
  }

  async #run(onUp: () => void, onFatal: (e: CribcallError) => void): Promise<void> {
    let failures = 0
    for (let attempt = 1; this.#finished === undefined; attempt++) {
      const outcome = await this.#attempt(attempt, onUp, onFatal)
      if (outcome === 'done' || this.#finished !== undefined) return
      failures = outcome.healthy ? 0 : failures + 1
      if (failures >= this.#options.maxAttempts) {
        const err = outcome.error ?? new ConnectionClosedError('the connection to the monitor closed before it was healthy')
        this.#fail(err, onFatal, { code: ErrorCode.OK, reason: `gave up after ${failures} attempts: ${err.message}`, byPeer: false, application: false, errorCode: err.code })
        return
      }
      if (!(await this.#backoff(attempt + 1, failures, outcome.error))) return
    }
  }

  /** One dial and, when it succeeds, the life of that connection. */
  async #attempt(attempt: number, onUp: () => void, onFatal: (e: CribcallError) => void): Promise<Outcome> {
    let channel: ControlChannel
    try {
      channel = await this.#dial(this.#abort.signal)
    } catch (e) {
      if (this.#finished !== undefined) return 'done'
      const err = e instanceof CribcallError ? e : new InternalError(String(e), { cause: e })
      if (!isFinalDialError(err)) return { healthy: false, error: err }
      // A changed monitor identity or a refused certificate will not heal by retrying.
      this.#fail(err, onFatal, { code: ErrorCode.UNAUTHORIZED, reason: err.message, byPeer: true, application: false, errorCode: err.code })
      return 'done'
    }
    if (this.#finished !== undefined) {
      void channel.close(ErrorCode.OK, 'listener channel closed').catch(() => undefined)
      return 'done'
    }
    const upAt = performance.now()
    this.#attach(channel)
    this.#onConnected()
    this.emitReported('connected', [{ attempt }])
    onUp()
    const info = await channel.closed
    this.#current = undefined
    if (this.#finished !== undefined) return 'done'
    const final = isFinalClose(info)
    this.emitReported('disconnected', [{ ...info, final }])
    if (final) {
      this.#finish(info) // revoked by the monitor, or it no longer knows this listener
      return 'done'
    }
    return { healthy: performance.now() - upAt >= this.#options.healthyAfterMs }
  }

  /** Announces and waits out the jittered delay; false when the channel closed meanwhile. */
  async #backoff(attempt: number, failures: number, error: CribcallError | undefined): Promise<boolean> {
    const delayMs = backoffDelay(Math.max(failures, 1), this.#options)
    this.emitReported('reconnecting', [{ attempt, delayMs, failures, ...(error === undefined ? {} : { error }) }])
    if (this.#finished !== undefined) return false
    try {
      await sleep(delayMs, undefined, { signal: this.#abort.signal })
      return this.#finished === undefined
    } catch {
      return false
    }
  }

  #attach(channel: ControlChannel): void {
    this.#current = channel
    channel.on('message', (m) => this.#deliver(m))
    channel.on('error', (e) => this.reportError(e))
  }

  /** Delivers one accepted message, dropping NOISE_EVENTs that are not newer than the last delivered. */
  #deliver(m: Message): void {
    if (m.type === 'NOISE_EVENT') {
      if (this.#lastNoise !== undefined && m.timestamp <= this.#lastNoise) {
        this.#duplicates++
        return
      }
      this.#lastNoise = m.timestamp
    }
    for (const it of this.#iterators) it.push(m)
    this.emitReported('message', [m])
    if (m.type === 'NOISE_EVENT') this.emitReported('noise', [m])
  }

  /** Ends the channel because of `error`: reported on 'error', given to start(), then 'close'. */
  #fail(error: CribcallError, onFatal: (e: CribcallError) => void, info: CloseInfo): void {
    this.reportError(error)
    onFatal(error)
    this.#finish(info)
  }

  #finish(info: CloseInfo): void {
    if (this.#finished !== undefined) return
    this.#finished = Object.freeze({ ...info })
    this.#abort.abort()
    this.#resolveClosed(this.#finished)
    for (const it of this.#iterators) it.end()
    this.emitReported('close', [this.#finished])
  }

  /** Sends on the live connection; throws ConnectionClosedError while disconnected. */
  send(message: Message): void {
    const c = this.#current
    if (c === undefined || c.isClosed) throw new ConnectionClosedError('not connected to the monitor right now')
    c.send(message)
  }

  ping(options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<number> {
    const c = this.#current
    if (c === undefined || c.isClosed) return Promise.reject(new ConnectionClosedError('not connected to the monitor right now'))
    return c.ping(options)
  }

  /**
   * Iterates messages (replayed NOISE_EVENTs dropped) across reconnects until the channel
   * closes for good. Bounded as ControlChannel's: more than 10,000 messages waiting fail the
   * iterator with ERR_ITERATOR_OVERFLOW (a consumer that stopped reading).
   */
  messages(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<Message> {
    const it = new ChannelIterator<ListenerChannel>(this, ITERATOR_BUFFER, options.signal, (self) => this.#iterators.delete(self))
    if (it.isDone) return it // the signal was already aborted: next() rejects with AbortError
    this.#iterators.add(it)
    if (this.#finished !== undefined) it.end()
    return it
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Message> {
    return this.messages()
  }

  /** Closes for good. */
  async close(code: number = ErrorCode.OK, reason = ''): Promise<CloseInfo> {
    if (this.#finished === undefined) {
      const c = this.#current
      this.#finish({ code, reason, byPeer: false, application: true })
      if (c !== undefined) await c.close(code, reason).catch(() => undefined)
      await this.#loop?.catch(() => undefined)
    }
    return this.closed
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

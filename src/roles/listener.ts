// The Listener role: pairs with monitors (QR or CPace PIN), stores them, and keeps a
// self-reconnecting control channel to a paired monitor.
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { ControlChannel, type Trust } from '../protocol/control-channel.js'
import { ErrorCode, type Message, type NoiseEventMessage, type PairRejectedMessage } from '../protocol/messages.js'
import { ProtocolError } from '../protocol/errors.js'
import { DEFAULT_MONITOR_PORT, parseQrPayload, type QrPayload } from '../pairing/qr.js'
import { decodeB64x32, respondPin, tagsEqual, transcriptBytes } from '../pairing/pin.js'
import type { TrustEntry, TrustStore } from '../store/trust-store.js'
import { hostPort, parseHostPort, publicKeyOf } from './address.js'
import type { CloseInfo } from '../transport/connection.js'
import { Endpoint, type EndpointOptions } from '../transport/endpoint.js'
import { TypedEmitter } from '../transport/emitter.js'
import {
  AbortError,
  ConnectionClosedError,
  CribcallError,
  InvalidArgumentError,
  PeerRejectedError,
  PinMismatchError,
} from '../transport/errors.js'
import type { Identity } from '../transport/identity.js'

export class PairingRejectedError extends CribcallError {
  readonly reason: PairRejectedMessage['reason']
  constructor(reason: PairRejectedMessage['reason'], message?: string) {
    super('ERR_PAIRING_REJECTED', message ?? `the monitor rejected the pairing (${reason})`)
    this.name = 'PairingRejectedError'
    this.reason = reason
  }
}

export class PairingFailedError extends CribcallError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PAIRING_FAILED', message, options)
    this.name = 'PairingFailedError'
  }
}

export class NotPairedError extends CribcallError {
  constructor(message: string) {
    super('ERR_NOT_PAIRED', message)
    this.name = 'NotPairedError'
  }
}

export interface ListenerOptions {
  readonly identity: Identity
  readonly trustStore: TrustStore
  /** This device's name as monitors show it (default 'Listener'). */
  readonly name?: string
  /** Endpoint settings (timeouts, keep-alive, …). */
  readonly endpoint?: Omit<EndpointOptions, 'host' | 'port' | 'identity'>
  /** Reconnection backoff of connect() channels. */
  readonly reconnect?: ReconnectOptions
}

export interface ReconnectOptions {
  /** First retry delay (default 250 ms). */
  readonly minDelayMs?: number
  /** Cap of the exponential backoff (default 30 s). */
  readonly maxDelayMs?: number
  /** Give up after this many consecutive failed attempts (default: never). */
  readonly maxAttempts?: number
}

export interface PinPromptInfo {
  readonly pairingSessionId: string
  readonly expiresInSec: number
  /** 1-based attempt number. */
  readonly attempt: number
  readonly maxAttempts: number
  readonly signal: AbortSignal
}

export interface PairTarget {
  readonly host: string
  readonly port?: number
  readonly signal?: AbortSignal
  /** Overall pairing deadline (default 120 s). */
  readonly timeoutMs?: number
}

export type ListenerEvents = {
  paired: [entry: TrustEntry]
  error: [error: CribcallError]
}

/** Waits for the next message on a channel that satisfies `accept`, or fails. */
function nextMessage<T extends Message>(
  channel: ControlChannel,
  accept: (m: Message) => m is T,
  signal: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const cleanup = (): void => {
      channel.off('message', onMessage)
      channel.off('close', onClose)
      signal.removeEventListener('abort', onAbort)
    }
    const onMessage = (m: Message): void => {
      if (accept(m)) {
        cleanup()
        resolve(m)
      } else if (m.type === 'ERROR') {
        cleanup()
        reject(new ProtocolError(m.code, m.error, m.message ?? `monitor answered ${m.error}`, true))
      }
    }
    const onClose = (info: CloseInfo): void => {
      cleanup()
      reject(new ConnectionClosedError(`the monitor closed the connection (${info.code} ${info.reason})`))
    }
    const onAbort = (): void => {
      cleanup()
      reject(new AbortError(signal.reason))
    }
    if (signal.aborted) return onAbort()
    channel.on('message', onMessage)
    channel.on('close', onClose)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** The next message whose type is one of `types` (an ERROR or a close rejects). */
function nextOf<T extends Message['type']>(
  channel: ControlChannel,
  types: readonly T[],
  signal: AbortSignal,
): Promise<Extract<Message, { type: T }>> {
  return nextMessage(channel, (m): m is Extract<Message, { type: T }> => (types as readonly string[]).includes(m.type), signal)
}

/** A signal aborted (with ConnectionClosedError) when the channel closes. */
function closedSignal(channel: ControlChannel): AbortSignal {
  const ctl = new AbortController()
  if (channel.isClosed) ctl.abort(new ConnectionClosedError('the monitor closed the connection'))
  else void channel.closed.then((info) => ctl.abort(new ConnectionClosedError(`the monitor closed the connection (${info.code} ${info.reason})`)))
  return ctl.signal
}

/** Settles with `p`, or rejects as soon as `signal` aborts (with its reason). */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new AbortError(signal.reason))
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason instanceof CribcallError ? signal.reason : new AbortError(signal.reason))
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

export class Listener extends TypedEmitter<ListenerEvents> {
  readonly identity: Identity
  readonly trustStore: TrustStore
  readonly name: string
  readonly #endpointOptions: ListenerOptions['endpoint']
  readonly #reconnect: Required<ReconnectOptions>
  readonly #endpoints = new Map<4 | 6, Promise<Endpoint>>()
  readonly #channels = new Set<ListenerChannel>()
  #closed = false

  constructor(options: ListenerOptions) {
    super()
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('Listener options must be an object')
    if (options.trustStore === undefined) throw new InvalidArgumentError('trustStore is required')
    this.identity = options.identity
    this.trustStore = options.trustStore
    this.name = options.name ?? 'Listener'
    if (this.name.length === 0 || [...this.name].length > 64) throw new InvalidArgumentError('name must be 1–64 characters')
    this.#endpointOptions = options.endpoint
    this.#reconnect = {
      minDelayMs: options.reconnect?.minDelayMs ?? 250,
      maxDelayMs: options.reconnect?.maxDelayMs ?? 30_000,
      maxAttempts: options.reconnect?.maxAttempts ?? Number.POSITIVE_INFINITY,
    }
  }

  /** The endpoint for the address family of `host` (bound on first use). */
  async #endpointFor(host: string): Promise<{ endpoint: Endpoint; address: string }> {
    this.#assertOpen()
    let address = host.replace(/^\[(.*)\]$/, '$1')
    let family = isIP(address)
    if (family === 0) {
      const r = await lookup(address)
      address = r.address
      family = r.family
    }
    const fam = family === 6 ? 6 : 4
    let ep = this.#endpoints.get(fam)
    if (ep === undefined) {
      ep = Endpoint.bind({ ...this.#endpointOptions, host: fam === 6 ? '::' : '0.0.0.0', port: 0, identity: this.identity })
      this.#endpoints.set(fam, ep)
      ep.catch(() => this.#endpoints.delete(fam))
    }
    return { endpoint: await ep, address }
  }

  async #dial(host: string, port: number, fingerprint: string, trust: Trust, signal?: AbortSignal): Promise<ControlChannel> {
    const { endpoint, address } = await this.#endpointFor(host)
    return ControlChannel.connect(endpoint, {
      host: address,
      port,
      serverFingerprint: fingerprint,
      trust,
      ...(signal === undefined ? {} : { signal }),
    })
  }

  #deadline(target: PairTarget): AbortSignal {
    const timeout = AbortSignal.timeout(target.timeoutMs ?? 120_000)
    return target.signal === undefined ? timeout : AbortSignal.any([target.signal, timeout])
  }

  /** Pairs by the monitor's QR payload; resolves with the stored monitor entry. */
  async pairWithQr(payload: string | Uint8Array | QrPayload, target: PairTarget): Promise<TrustEntry> {
    const qr = typeof payload === 'string' || payload instanceof Uint8Array ? parseQrPayload(payload) : parseQrPayload(JSON.stringify(payload))
    const port = target.port ?? qr.service.defaultPort
    const signal = this.#deadline(target)
    const channel = await this.#dial(target.host, port, qr.monitorCertFingerprint, 'pairing-only', signal)
    try {
      const answer = nextOf(channel, ['PAIR_ACCEPTED', 'PAIR_REJECTED'], signal)
      channel.send({
        type: 'PAIR_REQUEST',
        listenerId: this.identity.deviceId,
        listenerName: this.name,
        listenerPublicKey: this.identity.publicKey,
        listenerCertFingerprint: this.identity.fingerprint,
      })
      const m = await answer
      if (m.type === 'PAIR_REJECTED') throw new PairingRejectedError(m.reason)
      if (m.monitorId.toLowerCase() !== qr.monitorId.toLowerCase()) {
        throw new PairingFailedError(`the monitor answered as ${m.monitorId}, the QR code names ${qr.monitorId}`)
      }
      const entry = await this.#storeMonitor(qr.monitorId, qr.monitorName, channel, target.host, port)
      channel.upgradeTrust()
      return entry
    } finally {
      await channel.close(ErrorCode.OK, 'pairing finished').catch(() => undefined)
    }
  }

  /**
   * Pairs by PIN (CPace). `getPin` returns the six digits the user typed; it is asked
   * again after a wrong PIN while the session has attempts left.
   */
  async pairWithPin(
    target: PairTarget & { readonly monitorFingerprint: string; readonly monitorId?: string; readonly monitorName?: string },
    getPin: (info: PinPromptInfo) => string | Promise<string>,
  ): Promise<TrustEntry> {
    if (typeof getPin !== 'function') throw new InvalidArgumentError('getPin must be a function')
    const port = target.port ?? DEFAULT_MONITOR_PORT
    const signal = this.#deadline(target)
    const channel = await this.#dial(target.host, port, target.monitorFingerprint, 'pairing-only', signal)
    try {
      const required = nextOf(channel, ['PIN_REQUIRED', 'PAIR_REJECTED'], signal)
      channel.send({
        type: 'PIN_PAIRING_INIT',
        listenerId: this.identity.deviceId,
        listenerName: this.name,
        protocolVersion: 1,
        listenerCertFingerprint: this.identity.fingerprint,
      })
      const req = await required
      if (req.type === 'PAIR_REJECTED') throw new PairingRejectedError(req.reason)
      if (target.monitorId !== undefined && target.monitorId.toLowerCase() !== req.monitorId.toLowerCase()) {
        throw new PairingFailedError(`the monitor says it is ${req.monitorId}, expected ${target.monitorId}`)
      }
      const share = decodeB64x32(req.pakeMsgA)
      if (share === undefined) throw new PairingFailedError('pakeMsgA is not 32 bytes')
      const transcript = {
        monitorId: req.monitorId,
        listenerId: this.identity.deviceId,
        listenerPublicKey: this.identity.publicKey,
        listenerCertFingerprint: this.identity.fingerprint,
        monitorCertFingerprint: channel.peerFingerprint,
        pairingSessionId: req.pairingSessionId,
      }
      const tBytes = transcriptBytes(transcript)
      for (let attempt = 1; attempt <= req.maxAttempts; attempt++) {
        // The prompt is abandoned as soon as the monitor goes away or the deadline passes.
        const promptSignal = AbortSignal.any([signal, closedSignal(channel)])
        const pin = String(
          await raceAbort(
            Promise.resolve(
              getPin({ pairingSessionId: req.pairingSessionId, expiresInSec: req.expiresInSec, attempt, maxAttempts: req.maxAttempts, signal: promptSignal }),
            ),
            promptSignal,
          ),
        ).trim()
        if (signal.aborted) throw new AbortError(signal.reason)
        if (!/^\d{6}$/.test(pin)) throw new InvalidArgumentError('a PIN is exactly 6 digits')
        // The pinned fingerprint is the TLS-observed one (the pin was checked in the handshake).
        let r: ReturnType<typeof respondPin>
        try {
          r = respondPin(pin, req.pairingSessionId, channel.peerFingerprint, this.identity.fingerprint, share, tBytes)
        } catch (e) {
          // A low-order pakeMsgA (or a malformed session id): no honest monitor sends that.
          await channel.close(ErrorCode.UNAUTHORIZED, 'invalid PAKE share').catch(() => undefined)
          throw new PairingFailedError(`the monitor's PIN_REQUIRED is unusable: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
        }
        const answer = nextOf(channel, ['PAIR_ACCEPTED', 'PAIR_REJECTED'], signal)
        channel.send({
          type: 'PIN_SUBMIT',
          pairingSessionId: req.pairingSessionId,
          pakeMsgB: r.share.toString('base64'),
          transcript,
          authTag: r.listenerTag.toString('base64'),
        })
        const m = await answer
        if (m.type === 'PAIR_REJECTED') {
          if (m.reason === 'INVALID_PIN' && attempt < req.maxAttempts) continue
          throw new PairingRejectedError(m.reason)
        }
        // The monitor must prove it knows the PIN too before we trust it.
        const tag = m.authTag === undefined ? undefined : decodeB64x32(m.authTag)
        if (tag === undefined || !tagsEqual(tag, r.monitorTag)) {
          await channel.close(ErrorCode.UNAUTHORIZED, 'monitor confirmation failed').catch(() => undefined)
          throw new PairingFailedError('the monitor did not prove knowledge of the PIN (missing or wrong confirmation tag)')
        }
        if (m.monitorId.toLowerCase() !== req.monitorId.toLowerCase()) {
          throw new PairingFailedError('PAIR_ACCEPTED names another monitor than PIN_REQUIRED')
        }
        const entry = await this.#storeMonitor(req.monitorId, target.monitorName ?? 'Monitor', channel, target.host, port)
        channel.upgradeTrust()
        return entry
      }
      throw new PairingRejectedError('INVALID_PIN')
    } finally {
      await channel.close(ErrorCode.OK, 'pairing finished').catch(() => undefined)
    }
  }

  async #storeMonitor(monitorId: string, name: string, channel: ControlChannel, host: string, port: number): Promise<TrustEntry> {
    const now = Date.now()
    const entry: TrustEntry = {
      deviceId: monitorId.toLowerCase(),
      name,
      fingerprint: channel.peerFingerprint,
      publicKey: publicKeyOf(channel.connection.peerCertificate),
      role: 'monitor',
      pairedAt: now,
      lastSeenAt: now,
      lastAddress: hostPort(host, port),
    }
    await this.trustStore.put(entry)
    const stored = this.trustStore.get(entry.deviceId) ?? entry
    this.emitSafe('paired', [stored], () => undefined)
    return stored
  }

  /**
   * A control channel to a paired monitor that reconnects by itself (exponential backoff
   * with jitter) and keeps its subscribers across reconnects. Resolves once the first
   * connection is up.
   */
  async connect(monitorId: string, options: { host?: string; port?: number; signal?: AbortSignal } = {}): Promise<ListenerChannel> {
    this.#assertOpen()
    const entry = this.trustStore.get(monitorId.toLowerCase())
    if (entry === undefined || entry.role !== 'monitor') throw new NotPairedError(`monitor ${monitorId} is not paired`)
    const last = entry.lastAddress === undefined ? undefined : parseHostPort(entry.lastAddress)
    const host = options.host ?? last?.host
    if (host === undefined) throw new InvalidArgumentError(`no address known for monitor ${monitorId}; pass host`)
    const port = options.port ?? last?.port ?? DEFAULT_MONITOR_PORT
    const ch = new ListenerChannel(
      entry,
      (signal) => this.#dial(host, port, entry.fingerprint, 'trusted', signal),
      this.#reconnect,
      () => {
        this.trustStore.touch(entry.deviceId, { lastSeenAt: Date.now(), lastAddress: hostPort(host, port) }).catch(() => undefined)
      },
    )
    this.#channels.add(ch)
    void ch.closed.then(() => this.#channels.delete(ch))
    try {
      await ch.start(options.signal)
    } catch (e) {
      this.#channels.delete(ch)
      throw e
    }
    return ch
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.all([...this.#channels].map((c) => c.close()))
    const eps = await Promise.allSettled([...this.#endpoints.values()])
    await Promise.all(eps.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)))
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  #assertOpen(): void {
    if (this.#closed) throw new CribcallError('ERR_LISTENER_CLOSED', 'the listener is closed')
  }
}

export type ListenerChannelEvents = {
  message: [message: Message]
  noise: [event: NoiseEventMessage]
  /** A connection (re)established. */
  connected: [info: { attempt: number }]
  /** The current connection ended; a reconnect follows unless the channel is finished. */
  disconnected: [info: CloseInfo]
  reconnecting: [info: { attempt: number; delayMs: number }]
  /** Final: the channel is closed for good (close(), revoked, give-up). */
  close: [info: CloseInfo]
  error: [error: CribcallError]
}

/**
 * A listener's channel to one paired monitor. It has the ControlChannel surface
 * (send, ping, messages, 'message'/'noise'/'close'/'error') and survives reconnects.
 */
export class ListenerChannel extends TypedEmitter<ListenerChannelEvents> {
  readonly role = 'listener' as const
  readonly trust: Trust = 'trusted'
  readonly monitor: TrustEntry
  readonly closed: Promise<CloseInfo>
  #current: ControlChannel | undefined
  #resolveClosed!: (info: CloseInfo) => void
  #finished: CloseInfo | undefined
  readonly #abort = new AbortController()
  #loop: Promise<void> | undefined

  constructor(
    monitor: TrustEntry,
    private readonly dial: (signal: AbortSignal) => Promise<ControlChannel>,
    private readonly backoff: Required<ReconnectOptions>,
    private readonly onConnected: () => void,
  ) {
    super()
    this.monitor = monitor
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

  /** @internal Starts the connection loop; resolves after the first connection. */
  start(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let first = true
      const onAbort = (): void => {
        if (!first) return
        first = false
        reject(new AbortError(signal?.reason))
        void this.close()
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#loop = this.#run(
        () => {
          if (!first) return
          first = false
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
        (e) => {
          if (!first) return
          first = false
          signal?.removeEventListener('abort', onAbort)
          reject(e)
        },
      )
    })
  }

  async #run(onUp: () => void, onFatal: (e: CribcallError) => void): Promise<void> {
    let failures = 0
    let attempt = 0
    while (this.#finished === undefined) {
      attempt++
      let channel: ControlChannel
      try {
        channel = await this.dial(this.#abort.signal)
      } catch (e) {
        if (this.#finished !== undefined) return
        const err = e instanceof CribcallError ? e : new CribcallError('ERR_INTERNAL', String(e))
        // A changed monitor identity or a refused certificate will not heal by retrying.
        if (err instanceof PinMismatchError || err instanceof PeerRejectedError) {
          onFatal(err)
          this.#finish({ code: ErrorCode.UNAUTHORIZED, reason: err.message, byPeer: true, application: false, errorCode: err.code })
          return
        }
        failures++
        if (failures >= this.backoff.maxAttempts) {
          onFatal(err)
          this.#finish({ code: ErrorCode.OK, reason: `gave up after ${failures} attempts: ${err.message}`, byPeer: false, application: false, errorCode: err.code })
          return
        }
        const base = Math.min(this.backoff.maxDelayMs, this.backoff.minDelayMs * 2 ** Math.min(failures - 1, 30))
        const delayMs = Math.round(base / 2 + Math.random() * (base / 2))
        this.emitSafe('reconnecting', [{ attempt, delayMs }], () => undefined)
        try {
          await sleep(delayMs, undefined, { signal: this.#abort.signal })
        } catch {
          return
        }
        continue
      }
      failures = 0
      this.#attach(channel)
      this.onConnected()
      this.emitSafe('connected', [{ attempt }], () => undefined)
      onUp()
      const info = await channel.closed
      this.#current = undefined
      if (this.#finished !== undefined) return
      this.emitSafe('disconnected', [info], () => undefined)
      if (info.application && info.byPeer && info.code === ErrorCode.UNAUTHORIZED) {
        this.#finish(info) // revoked by the monitor
        return
      }
    }
  }

  #attach(channel: ControlChannel): void {
    this.#current = channel
    channel.on('message', (m) => {
      this.emitSafe('message', [m], (f) => this.#handlerFailed('message', f))
    })
    channel.on('noise', (n) => {
      this.emitSafe('noise', [n], (f) => this.#handlerFailed('noise', f))
    })
    channel.on('error', (e) => {
      this.emitSafe('error', [e], () => undefined)
    })
  }

  #handlerFailed(event: string, failure: unknown): void {
    const e = new CribcallError('ERR_HANDLER', `a '${event}' listener failed: ${String(failure)}`, { cause: failure })
    if (!this.emitSafe('error', [e], () => undefined)) process.emitWarning(`cribcall-quic: ${e.message}`)
  }

  #finish(info: CloseInfo): void {
    if (this.#finished !== undefined) return
    this.#finished = Object.freeze({ ...info })
    this.#abort.abort()
    this.#resolveClosed(this.#finished)
    this.emitSafe('close', [this.#finished], () => undefined)
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

  /** Iterates messages across reconnects until the channel closes for good. */
  async *messages(options: { signal?: AbortSignal } = {}): AsyncGenerator<Message> {
    const queue: Message[] = []
    let wake: (() => void) | undefined
    const onMessage = (m: Message): void => {
      queue.push(m)
      wake?.()
    }
    const onClose = (): void => wake?.()
    const onAbort = (): void => wake?.()
    this.on('message', onMessage)
    this.on('close', onClose)
    options.signal?.addEventListener('abort', onAbort)
    try {
      for (;;) {
        if (options.signal?.aborted) throw new AbortError(options.signal.reason)
        const m = queue.shift()
        if (m !== undefined) {
          yield m
          continue
        }
        if (this.#finished !== undefined) return
        await new Promise<void>((r) => (wake = r))
        wake = undefined
      }
    } finally {
      this.off('message', onMessage)
      this.off('close', onClose)
      options.signal?.removeEventListener('abort', onAbort)
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<Message> {
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

export type { QrPayload }

// The Listener role: pairs with monitors (QR or CPace PIN), stores them, and keeps a
// self-reconnecting control channel to a paired monitor (listener-channel.ts).
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { ControlChannel, type Trust } from '../protocol/control-channel.js'
import { ErrorCode, LIMITS } from '../protocol/messages.js'
import { DEFAULT_MONITOR_PORT, parseQrPayload, type QrPayload } from '../pairing/qr.js'
import { qrPairingProof } from '../pairing/qr-proof.js'
import { checkTrustStore, type TrustEntry, type TrustStore } from '../store/trust-store.js'
import { hostPort, parseHostPort, publicKeyOf } from './address.js'
import { Endpoint, type EndpointOptions } from '../transport/endpoint.js'
import { AbortError, CribcallError, InternalError, InvalidArgumentError } from '../transport/errors.js'
import { checkIdentity, type Identity } from '../transport/identity.js'
import { ListenerChannel } from './listener-channel.js'
import { NotPairedError, PairingFailedError, PairingRejectedError, nextOf, pinExchange, type GetPin } from './listener-pairing.js'
import { resolveReconnectOptions, type ReconnectOptions, type ResolvedReconnectOptions } from './reconnect.js'
import { ReportingEmitter } from './reporting-emitter.js'


/**
 * A listener's keep-alive (unless its `endpoint` options say otherwise): a QUIC PING
 * after 500 ms without sending. The listener is the side whose address a NAT rebinds and
 * that must notice a restarted monitor, and only its packets reveal the one and draw
 * the other's stateless reset; at 500 ms a restarted monitor is noticed about half a
 * second after it is back. Cost: two small datagrams and their acknowledgements per
 * second per monitor (about 200 bytes/s).
 */
export const LISTENER_KEEP_ALIVE_MS = 500

export { ListenerChannel, type DisconnectInfo, type ListenerChannelEvents, type ReconnectingInfo } from './listener-channel.js'
export { NotPairedError, PairingFailedError, PairingRejectedError, type GetPin, type PinPromptInfo } from './listener-pairing.js'
export { RECONNECT_DEFAULTS, isFinalClose, isFinalDialError, isRefusal, type ReconnectOptions } from './reconnect.js'

export interface ListenerOptions {
  readonly identity: Identity
  readonly trustStore: TrustStore
  /** This device's name as monitors show it (default 'Listener'). */
  readonly name?: string
  /** Endpoint settings (timeouts, keep-alive, …). */
  readonly endpoint?: Omit<EndpointOptions, 'host' | 'port' | 'identity'>
  /** Reconnection discipline of connect() channels (validated here: InvalidArgumentError). */
  readonly reconnect?: ReconnectOptions
}

export interface PairTarget {
  readonly host: string
  readonly port?: number
  readonly signal?: AbortSignal
  /**
   * Overall pairing deadline, ms. When absent: 120 s to reach the monitor and get its
   * answer (PIN pairing: its PIN_REQUIRED; the PIN prompt then lasts the session's
   * expiry). When given, a hard cap on the whole pairing, prompt included.
   */
  readonly timeoutMs?: number
}

export interface ChannelOptions {
  /** The monitor's address (default: the last address stored for it). */
  readonly host?: string
  readonly port?: number
  /** connect(): abandons waiting for the first connection. openChannel(): closes the channel. */
  readonly signal?: AbortSignal
  /**
   * The timestamp of the last NOISE_EVENT the application already has from this monitor
   * (persisted across restarts): older and equal ones replayed by the monitor are dropped.
   */
  readonly lastNoiseTimestamp?: number
}

export type ListenerEvents = {
  paired: [entry: TrustEntry]
  error: [error: CribcallError]
}

/** Default deadline of a pairing attempt (handshake and the monitor's first answer). */
const PAIRING_DEADLINE_MS = 120_000

export class Listener extends ReportingEmitter<ListenerEvents> {
  readonly identity: Identity
  readonly trustStore: TrustStore
  readonly name: string
  readonly #endpointOptions: ListenerOptions['endpoint']
  readonly #reconnect: ResolvedReconnectOptions
  readonly #endpoints = new Map<4 | 6, Promise<Endpoint>>()
  readonly #channels = new Set<ListenerChannel>()
  #closed = false
  #closing: Promise<void> | undefined
  #resolveClosed!: () => void
  /** Settles (never rejects) once the listener has closed: its channels and endpoints too. */
  readonly closed: Promise<void> = new Promise<void>((resolve) => {
    this.#resolveClosed = () => resolve()
  })

  constructor(options: ListenerOptions) {
    super()
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('Listener options must be an object')
    checkTrustStore(options.trustStore)
    checkIdentity(options.identity)
    this.identity = options.identity
    this.trustStore = options.trustStore
    this.name = options.name ?? 'Listener'
    if (this.name.length === 0 || [...this.name].length > 64) throw new InvalidArgumentError('name must be 1–64 characters')
    this.#endpointOptions = options.endpoint
    this.#reconnect = resolveReconnectOptions(options.reconnect)
  }

  /** The endpoint for the address family of `host` (bound on first use, again after it closed). */
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
    const cached = this.#endpoints.get(fam)
    if (cached !== undefined) {
      const ep = await cached.catch(() => undefined)
      if (ep !== undefined && !ep.isClosed) return { endpoint: ep, address }
      if (this.#endpoints.get(fam) === cached) this.#endpoints.delete(fam)
    }
    this.#assertOpen()
    let ep = this.#endpoints.get(fam)
    if (ep === undefined) {
      ep = Endpoint.bind({
        keepAliveMs: LISTENER_KEEP_ALIVE_MS,
        ...this.#endpointOptions,
        host: fam === 6 ? '::' : '0.0.0.0',
        port: 0,
        identity: this.identity,
      })
      this.#endpoints.set(fam, ep)
      const bound = ep
      ep.catch(() => {
        if (this.#endpoints.get(fam) === bound) this.#endpoints.delete(fam)
      })
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

  /** The caller's signal and, if given, its timeoutMs: a hard cap on the whole pairing. */
  #hardDeadline(target: PairTarget): AbortSignal {
    const signals = [target.signal, target.timeoutMs === undefined ? undefined : AbortSignal.timeout(target.timeoutMs)]
    return AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined))
  }

  /** The deadline for reaching the monitor and its first answer. */
  #setupDeadline(target: PairTarget, hard: AbortSignal): AbortSignal {
    return target.timeoutMs === undefined ? AbortSignal.any([hard, AbortSignal.timeout(PAIRING_DEADLINE_MS)]) : hard
  }

  /**
   * Pairs by the monitor's QR payload; resolves with the stored monitor entry. When the
   * payload carries a `pairingSecret`, PAIR_REQUEST proves knowledge of it (SPEC §7.1).
   */
  async pairWithQr(payload: string | Uint8Array | QrPayload, target: PairTarget): Promise<TrustEntry> {
    const qr = typeof payload === 'string' || payload instanceof Uint8Array ? parseQrPayload(payload) : parseQrPayload(JSON.stringify(payload))
    const port = target.port ?? qr.service.defaultPort
    const signal = this.#setupDeadline(target, this.#hardDeadline(target))
    const channel = await this.#dial(target.host, port, qr.monitorCertFingerprint, 'pairing-only', signal)
    try {
      const request = {
        type: 'PAIR_REQUEST' as const,
        listenerId: this.identity.deviceId,
        listenerName: this.name,
        listenerPublicKey: this.identity.publicKey,
        listenerCertFingerprint: this.identity.fingerprint,
      }
      // Proof that we read the QR code (SPEC §7.1), bound to both certificates as seen in
      // this TLS session. A QR code without a secret (a monitor that predates it): none.
      const proof =
        qr.pairingSecret === undefined
          ? {}
          : {
              pairingProof: qrPairingProof(qr.pairingSecret, {
                monitorCertFingerprint: channel.peerFingerprint,
                listenerCertFingerprint: this.identity.fingerprint,
                monitorId: qr.monitorId,
                listenerId: request.listenerId,
                listenerName: request.listenerName,
                listenerPublicKey: request.listenerPublicKey,
              }),
            }
      const answer = nextOf(channel, ['PAIR_ACCEPTED', 'PAIR_REJECTED'], signal)
      channel.send({ ...request, ...proof })
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
   * again after a wrong PIN while the session has attempts left. The prompt lasts until
   * the pairing session expires (PIN_REQUIRED's expiresInSec): its `signal` aborts then,
   * and pairing fails with PairingRejectedError EXPIRED. PIN pairing carries no monitor
   * name: `monitorName` is stored (default `monitor at <host>`); `monitorId`, when
   * given, must be the monitor's.
   */
  async pairWithPin(
    target: PairTarget & { readonly monitorFingerprint: string; readonly monitorId?: string; readonly monitorName?: string },
    getPin: GetPin,
  ): Promise<TrustEntry> {
    if (typeof getPin !== 'function') throw new InvalidArgumentError('getPin must be a function')
    const port = target.port ?? DEFAULT_MONITOR_PORT
    const hard = this.#hardDeadline(target)
    const setup = this.#setupDeadline(target, hard)
    const channel = await this.#dial(target.host, port, target.monitorFingerprint, 'pairing-only', setup)
    try {
      const required = nextOf(channel, ['PIN_REQUIRED', 'PAIR_REJECTED'], setup)
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
      // From here on the session's expiry bounds the prompt, not the setup deadline.
      const m = await pinExchange({ channel, identity: this.identity, req, getPin, signal: hard })
      if (m.monitorId.toLowerCase() !== req.monitorId.toLowerCase()) {
        throw new PairingFailedError('PAIR_ACCEPTED names another monitor than PIN_REQUIRED')
      }
      // PIN pairing carries no monitor name (SPEC.md §7.2): the caller's, else its address.
      const entry = await this.#storeMonitor(req.monitorId, target.monitorName ?? [...`monitor at ${target.host}`].slice(0, LIMITS.nameMax).join(''), channel, target.host, port)
      channel.upgradeTrust()
      return entry
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
    this.emitReported('paired', [stored])
    return stored
  }

  /**
   * A control channel to a paired monitor that reconnects by itself (exponential backoff
   * with jitter) and keeps its subscribers across reconnects. Resolves once the first
   * connection is up; rejects if the monitor refuses this listener first.
   */
  async connect(monitorId: string, options: ChannelOptions = {}): Promise<ListenerChannel> {
    const ch = this.#newChannel(monitorId, options)
    try {
      await ch.start(options.signal)
    } catch (e) {
      this.#channels.delete(ch)
      throw e
    }
    return ch
  }

  /**
   * Like connect(), but returns the channel at once; it connects in the background
   * (subscribe to 'connected', 'reconnecting', 'close', …). A refusal ends it with
   * 'error' and 'close'. Aborting `signal` closes it.
   */
  openChannel(monitorId: string, options: ChannelOptions = {}): ListenerChannel {
    const ch = this.#newChannel(monitorId, options)
    const { signal } = options
    if (signal !== undefined) {
      const onAbort = (): void => void ch.close()
      signal.addEventListener('abort', onAbort, { once: true })
      void ch.closed.then(() => signal.removeEventListener('abort', onAbort))
    }
    // Every event comes after at least one await (the dial), so handlers attached right
    // after this call see all of them. A refusal is reported through 'error' and 'close'.
    ch.start().catch(() => undefined)
    return ch
  }

  #newChannel(monitorId: string, options: ChannelOptions): ListenerChannel {
    this.#assertOpen()
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new InvalidArgumentError('signal must be an AbortSignal')
    if (options.signal?.aborted) throw new AbortError(options.signal.reason)
    const entry = this.trustStore.get(monitorId.toLowerCase())
    if (entry === undefined || entry.role !== 'monitor') throw new NotPairedError(`monitor ${monitorId} is not paired`)
    const last = entry.lastAddress === undefined ? undefined : parseHostPort(entry.lastAddress)
    const host = options.host ?? last?.host
    if (host === undefined) throw new InvalidArgumentError(`no address known for monitor ${monitorId}; pass host`)
    const port = options.port ?? last?.port ?? DEFAULT_MONITOR_PORT
    const ch = new ListenerChannel(entry, {
      dial: (signal) => this.#dial(host, port, entry.fingerprint, 'trusted', signal),
      reconnect: this.#reconnect,
      ...(options.lastNoiseTimestamp === undefined ? {} : { lastNoiseTimestamp: options.lastNoiseTimestamp }),
      onConnected: () => {
        this.trustStore.touch(entry.deviceId, { lastSeenAt: Date.now(), lastAddress: hostPort(host, port) }).catch((e: unknown) => {
          this.reportError(e instanceof CribcallError ? e : new CribcallError('ERR_TRUST_STORE', `recording the monitor as seen failed: ${String(e)}`, { cause: e }))
        })
      },
    })
    this.#channels.add(ch)
    void ch.closed.then(() => this.#channels.delete(ch))
    return ch
  }

  /**
   * Closes every channel and endpoint of this listener. Idempotent: every call returns
   * the same promise, which settles with `closed`.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true
      this.#closing = this.#close()
      this.#closing.then(this.#resolveClosed, this.#resolveClosed)
    }
    return this.#closing
  }

  /** Closes at once without waiting; the outcome is observed through `closed`, a failure on 'error'. */
  destroy(): void {
    this.close().catch((error: unknown) =>
      this.reportError(error instanceof CribcallError ? error : new InternalError('close failed', { cause: error })),
    )
  }

  async #close(): Promise<void> {
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

export type { QrPayload }

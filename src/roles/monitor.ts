// The Monitor role: a QUIC server that admits paired listeners, runs the pairing
// window (QR and CPace PIN), pushes NOISE_EVENTs and enforces revocation.
import { ControlChannel } from '../protocol/control-channel.js'
import { ErrorCode, type Message } from '../protocol/messages.js'
import { buildCompactQrPayload, buildQrPayload, DEFAULT_MONITOR_PORT, type QrPayloadInput } from '../pairing/qr.js'
import type { PinRulesOptions, PinSessionInfo } from '../pairing/pin-session.js'
import { checkTrustStore, type TrustEntry, type TrustStore } from '../store/trust-store.js'
import { hostPort as hostPortOf } from './address.js'
import { PairingWindow } from './monitor-pairing.js'
import { safeSend } from './pairing-host.js'
import { checkNoiseOptions, NoiseFanout, type NoiseBroadcastReport } from './noise-fanout.js'
import { Endpoint, type EndpointOptions } from '../transport/endpoint.js'
import type { Connection } from '../transport/connection.js'
import { TypedEmitter } from '../transport/emitter.js'
import { CribcallError, HandlerError, InternalError, InvalidArgumentError } from '../transport/errors.js'
import { warn } from './reporting-emitter.js'
import { checkIdentity, type Identity } from '../transport/identity.js'

export interface MonitorOptions {
  readonly identity: Identity
  readonly trustStore: TrustStore
  /** Default '0.0.0.0'. */
  readonly host?: string
  /** Default 48080; 0 picks a free port. */
  readonly port?: number
  /** Shown to listeners (QR payload); 1–64 characters. */
  readonly name: string
  /** Extra endpoint settings (timeouts, limits). */
  readonly endpoint?: Omit<EndpointOptions, 'host' | 'port' | 'identity'>
  /** PIN rules (expiry, attempts, lockout) and an injectable clock for tests. */
  readonly pin?: PinRulesOptions
  /**
   * How long (ms) broadcast NOISE_EVENTs are kept to be replayed to a paired listener
   * that (re)connects; at most 10,000 events. Default 60,000; 0 disables the replay.
   */
  readonly replayWindowMs?: number
  /**
   * Bound (bytes) of each trusted listener channel's send queue. A listener whose queue
   * would grow past it is closed with INTERNAL_ERROR (5) 'too slow: send queue full'
   * and caught up by the replay when it reconnects. Default 1 MiB.
   */
  readonly maxListenerQueueBytes?: number
  readonly signal?: AbortSignal
}

export interface PairingRequestInfo {
  readonly method: 'qr' | 'pin'
  readonly listenerId: string
  readonly listenerName: string
  readonly fingerprint: string
  readonly publicKey: string
  readonly remoteAddress: { readonly host: string; readonly port: number }
  /**
   * True for a QR request without `pairingProof`, admitted only because the window was
   * opened with `allowLegacyQr`: nothing shows that this device read the QR code.
   */
  readonly legacyQr: boolean
  /**
   * Aborts when the answer no longer matters: the requesting connection closed, the
   * pairing window closed, or the monitor closed (a late approval pairs nobody).
   */
  readonly signal: AbortSignal
}

export interface OpenPairingOptions {
  /** How long the window stays open (default 120 s). */
  readonly durationMs?: number
  /** Allow PIN pairing in this window (default true when onPin is given). */
  readonly allowPin?: boolean
  /** Allow QR pairing (PAIR_REQUEST) in this window (default true). */
  readonly allowQr?: boolean
  /**
   * Also accept a PAIR_REQUEST that carries no `pairingProof` (listeners that predate
   * the QR pairing secret, SPEC.md §7.1). Default false: such a request is answered
   * PAIR_REJECTED NOT_PAIRING, because any device on the LAN that learnt the monitor's
   * fingerprint could send it. A request that carries a proof must prove the secret
   * either way. `approve` sees these requests with `legacyQr: true`.
   */
  readonly allowLegacyQr?: boolean
  /** Called with the PIN to show when a listener starts PIN pairing. Never log it. */
  readonly onPin?: (pin: string, session: Omit<PinSessionInfo, 'pin'>) => void
  /** The application's approval of a pairing (default: approve). */
  readonly approve?: (request: PairingRequestInfo) => boolean | Promise<boolean>
}

export type MonitorEvents = {
  /** A listener's control channel is up (trusted: paired; pairing-only: pairing). */
  'listener-connected': [info: { channel: ControlChannel; entry: TrustEntry | undefined }]
  'listener-disconnected': [info: { channel: ControlChannel; entry: TrustEntry | undefined; code: number; reason: string }]
  paired: [info: { entry: TrustEntry; method: 'qr' | 'pin'; channel: ControlChannel }]
  'pairing-failed': [info: { method: 'qr' | 'pin'; reason: string; fingerprint: string }]
  revoked: [entry: TrustEntry]
  'pairing-opened': [info: { until: number; allowPin: boolean; allowQr: boolean }]
  'pairing-closed': [info: { reason: 'timeout' | 'closed' | 'locked' }]
  /** Every accepted message of a trusted listener channel. */
  message: [info: { channel: ControlChannel; message: Message }]
  error: [error: CribcallError]
}

export class Monitor extends TypedEmitter<MonitorEvents> {
  readonly identity: Identity
  readonly name: string
  readonly trustStore: TrustStore
  readonly #endpoint: Endpoint
  readonly #channels = new Set<ControlChannel>()
  readonly #pairing: PairingWindow
  readonly #noise: NoiseFanout
  #closed = false
  #closing: Promise<void> | undefined
  #resolveClosed!: () => void
  /** Settles (never rejects) once the monitor has closed: its endpoint has stopped. */
  readonly closed: Promise<void> = new Promise<void>((resolve) => {
    this.#resolveClosed = () => resolve()
  })
  readonly #onRevoked: (entry: TrustEntry) => void
  readonly #onChange: () => void

  private constructor(options: MonitorOptions, endpoint: Endpoint) {
    super()
    this.identity = options.identity
    this.name = options.name
    this.trustStore = options.trustStore
    this.#endpoint = endpoint
    this.#noise = new NoiseFanout(options)
    this.#pairing = new PairingWindow(
      {
        identity: this.identity,
        trustStore: this.trustStore,
        isClosed: () => this.#closed,
        channels: () => this.#channels,
        setAcceptUnknown: (accept) => endpoint.setAcceptUnknown(accept),
        attachNoise: (channel, deviceId) => this.#noise.attach(channel, deviceId),
        emit: (event, args) => this.#emit(event, args),
        error: (e) => this.#error(e),
      },
      options.pin,
    )
    this.#onRevoked = (entry) => this.#handleRevoked(entry)
    this.#onChange = () => this.#syncKnownPeers()
    this.trustStore.on('revoked', this.#onRevoked)
    this.trustStore.on('change', this.#onChange)
    this.#syncKnownPeers()
    endpoint.on('connection', (conn) => this.#onConnection(conn))
    endpoint.on('error', (e) => this.#error(e))
    endpoint.listen({ acceptUnknown: false })
  }

  /** Binds the monitor's endpoint and starts accepting paired listeners. */
  static async start(options: MonitorOptions): Promise<Monitor> {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('Monitor.start options must be an object')
    if (typeof options.name !== 'string' || options.name.length === 0 || [...options.name].length > 64) {
      throw new InvalidArgumentError('name must be 1–64 characters')
    }
    checkTrustStore(options.trustStore)
    checkIdentity(options.identity)
    checkNoiseOptions(options)
    const endpoint = await Endpoint.bind({
      ...options.endpoint,
      host: options.host ?? '0.0.0.0',
      port: options.port ?? DEFAULT_MONITOR_PORT,
      identity: options.identity,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    })
    return new Monitor(options, endpoint)
  }

  get address(): { host: string; port: number } {
    return this.#endpoint.address
  }

  get endpoint(): Endpoint {
    return this.#endpoint
  }

  get deviceId(): string {
    return this.identity.deviceId
  }

  get fingerprint(): string {
    return this.identity.fingerprint
  }

  /** Live listener channels (trusted and pairing-only). */
  get channels(): readonly ControlChannel[] {
    return [...this.#channels]
  }

  get isPairingOpen(): boolean {
    return this.#pairing.isOpen
  }

  /**
   * The canonical `monitor_pair_v1` JSON to show as a QR code. While a pairing window
   * that allows QR pairing is open it carries that window's one-time `pairingSecret`
   * (a new one each time openPairing() is called): call it after openPairing(), and
   * show the result only on the monitor's screen. Without such a window the payload has
   * no secret and pairs nobody (except legacy requests, which need `allowLegacyQr`).
   */
  pairingQrPayload(): string {
    return buildQrPayload(this.#qrInput())
  }

  /**
   * The same QR payload in its compact form (`CC1:` + Base45, SPEC §7.1.8): small enough
   * for a QR code that fits an 80 × 24 terminal, for where the JSON one does not fit
   * (offer the JSON form wherever it fits: other implementations may scan only that).
   * It leaves out `monitorPublicKey` and cuts a name longer than 18 UTF-8 bytes.
   * Undefined while no pairing window that allows QR pairing is open (the compact form
   * always carries the secret). Throws QrPayloadError when the identity's deviceId is
   * not lowercase (the compact form can only carry the lowercase id, SPEC §7.1.8).
   */
  pairingQrCompact(): string | undefined {
    const input = this.#qrInput()
    return input.pairingSecret === undefined ? undefined : buildCompactQrPayload(input)
  }

  #qrInput(): QrPayloadInput {
    const secret = this.#pairing.qrSecret
    return {
      monitorId: this.identity.deviceId,
      monitorName: this.name,
      monitorCertFingerprint: this.identity.fingerprint,
      monitorPublicKey: this.identity.publicKey,
      defaultPort: this.address.port === 0 ? DEFAULT_MONITOR_PORT : this.address.port,
      ...(secret === undefined ? {} : { pairingSecret: secret }),
    }
  }

  /**
   * Opens the pairing window: unknown client certificates are admitted (pairing-only)
   * until it closes. Each call makes a new QR pairing secret (a QR code shown before is
   * void) and reopening also clears a PIN lockout.
   */
  openPairing(options: OpenPairingOptions = {}): void {
    this.#assertOpen()
    const opened = this.#pairing.open(options, () => this.#pairing.close('timeout'))
    this.#emit('pairing-opened', [opened])
  }

  /** Closes the pairing window: unknown certificates fail the handshake again. */
  closePairing(): void {
    this.#pairing.close('closed')
  }

  /**
   * Sends a NOISE_EVENT to every connected paired listener and keeps it in the replay
   * window. Its timestamp is `timestamp` (default now), raised to one more than the
   * previous event's when it is not greater: a monitor's timestamps strictly increase.
   * Throws InvalidMessageError for an invalid peakLevel or timestamp.
   */
  broadcastNoise(event: { peakLevel: number; timestamp?: number }): NoiseBroadcastReport {
    this.#assertOpen()
    const paired = this.trustStore
      .list()
      .filter((e) => e.role === 'listener')
      .map((e) => e.deviceId)
    return this.#noise.broadcast(this.identity.deviceId, event, paired)
  }

  /** The replay window (ms; 0: disabled) and the per-listener queue bound (bytes). */
  get noiseSettings(): { readonly replayWindowMs: number; readonly maxListenerQueueBytes: number } {
    return { replayWindowMs: this.#noise.replayWindowMs, maxListenerQueueBytes: this.#noise.maxListenerQueueBytes }
  }

  /** Revokes a paired listener: removed from the store, its live channels closed (UNAUTHORIZED). */
  async revoke(deviceId: string, options: { readonly signal?: AbortSignal } = {}): Promise<TrustEntry | undefined> {
    return this.trustStore.revoke(deviceId, options)
  }

  /**
   * Closes the pairing window, every channel and the endpoint. Idempotent: every call
   * returns the same promise, which settles with `closed`.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true
      this.#pairing.close('closed')
      this.#noise.close()
      this.trustStore.off('revoked', this.#onRevoked)
      this.trustStore.off('change', this.#onChange)
      this.#closing = this.#endpoint.close()
      this.#closing.then(this.#resolveClosed, this.#resolveClosed)
    }
    return this.#closing
  }

  /** Closes at once without waiting; the outcome is observed through `closed`, a failure on 'error'. */
  destroy(): void {
    this.close().catch((error: unknown) =>
      this.#error(error instanceof CribcallError ? error : new InternalError('close failed', { cause: error })),
    )
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  // ---- internals ----

  #assertOpen(): void {
    if (this.#closed) throw new CribcallError('ERR_MONITOR_CLOSED', 'the monitor is closed')
  }

  #emit<K extends keyof MonitorEvents>(event: K, args: MonitorEvents[K]): void {
    this.emitSafe(event, args, (failure) =>
      this.#error(new HandlerError(String(event), failure)),
    )
  }

  #error(e: CribcallError): void {
    if (!this.emitSafe('error', [e], (failure) => warn(new HandlerError('error', failure)))) {
      process.emitWarning(`cribcall-quic monitor: ${e.message}`)
    }
  }

  #syncKnownPeers(): void {
    if (this.#closed) return
    try {
      this.#endpoint.setKnownPeers(this.trustStore.list().filter((e) => e.role === 'listener').map((e) => e.fingerprint))
    } catch (e) {
      this.#error(e instanceof CribcallError ? e : new CribcallError('ERR_INTERNAL', String(e)))
    }
  }

  #handleRevoked(entry: TrustEntry): void {
    this.#syncKnownPeers()
    for (const c of this.#channels) {
      if (c.peerFingerprint === entry.fingerprint) c.close(ErrorCode.UNAUTHORIZED, 'revoked').catch(() => undefined)
    }
    this.#emit('revoked', [entry])
  }

  #onConnection(conn: Connection): void {
    const known = this.trustStore.findByFingerprint(conn.peerFingerprint)
    const trusted = known !== undefined && known.role === 'listener'
    if (!trusted && !this.#pairing.isOpen) {
      // Admitted by a race with closePairing(): refuse.
      conn.close(ErrorCode.UNAUTHORIZED, 'pairing closed').catch(() => undefined)
      return
    }
    const channel = ControlChannel.accept(conn, { trust: trusted ? 'trusted' : 'pairing-only' })
    this.#channels.add(channel)
    channel.on('error', (e) => {
      if (e.code !== 'ERR_HANDLER') return // peer misbehaviour is answered in band already
      this.#error(e)
    })
    channel.on('message', (message) => this.#onMessage(channel, message))
    channel.on('close', (info) => {
      this.#channels.delete(channel)
      this.#noise.detach(channel)
      this.#pairing.channelClosed(channel)
      this.#emit('listener-disconnected', [
        { channel, entry: this.trustStore.findByFingerprint(channel.peerFingerprint), code: info.code, reason: info.reason },
      ])
    })
    if (trusted) {
      this.trustStore
        .touch(known.deviceId, { lastSeenAt: Date.now(), lastAddress: hostPortOf(conn.remoteAddress.host, conn.remoteAddress.port) })
        .catch((e: unknown) => this.#error(e instanceof CribcallError ? e : new CribcallError('ERR_TRUST_STORE', String(e))))
      // The events of the replay window it may have missed go first (it drops those it
      // already has, by timestamp); none from before it was paired.
      this.#noise.attach(channel, known.deviceId, known.pairedAt)
    }
    this.#emit('listener-connected', [{ channel, entry: known }])
  }

  #onMessage(channel: ControlChannel, message: Message): void {
    if (this.#pairing.isDoomed(channel)) return
    if (channel.trust === 'trusted') {
      this.#emit('message', [{ channel, message }])
      // A paired listener may pair again (e.g. it lost its trust store): its pairing
      // messages get the same answers as an unknown listener's instead of none.
      if (message.type !== 'PAIR_REQUEST' && message.type !== 'PIN_PAIRING_INIT' && message.type !== 'PIN_SUBMIT') return
    }
    this.#pairing.handle(channel, message).catch((e: unknown) => {
      this.#error(e instanceof CribcallError ? e : new InternalError(`pairing failed: ${String(e)}`, { cause: e }))
      safeSend(channel, { type: 'PAIR_REJECTED', reason: 'INTERNAL_ERROR' })
    })
  }

}

// The Monitor role: a QUIC server that admits paired listeners, runs the pairing
// window (QR and CPace PIN), pushes NOISE_EVENTs and enforces revocation.
import { ControlChannel } from '../protocol/control-channel.js'
import { ErrorCode, type Message, type PairRequestMessage, type PinPairingInitMessage, type PinSubmitMessage } from '../protocol/messages.js'
import { buildCompactQrPayload, buildQrPayload, DEFAULT_MONITOR_PORT, type QrPayloadInput } from '../pairing/qr.js'
import { generateQrPairingSecret, verifyQrPairingProof } from '../pairing/qr-proof.js'
import { PinInitiator, decodeB64x32, tagsEqual, transcriptBytes } from '../pairing/pin.js'
import { PinRules, type PinRulesOptions, type PinSessionInfo } from '../pairing/pin-session.js'
import { checkTrustStore, type TrustEntry, type TrustStore } from '../store/trust-store.js'
import { hostPort as hostPortOf, publicKeyOf } from './address.js'
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

interface Window {
  until: number
  timer: NodeJS.Timeout
  allowPin: boolean
  allowQr: boolean
  allowLegacyQr: boolean
  /** This window's QR pairing secret (unpadded base64url; only while QR is allowed). Never logged. */
  qrSecret: string | undefined
  /** Aborted when pairing closes (kept across a reopen of an open window). */
  closing: AbortController
  onPin: OpenPairingOptions['onPin']
  approve: OpenPairingOptions['approve']
}

interface PinState {
  session: PinSessionInfo
  initiator: PinInitiator
  channel: ControlChannel
}

export class Monitor extends TypedEmitter<MonitorEvents> {
  readonly identity: Identity
  readonly name: string
  readonly trustStore: TrustStore
  readonly #endpoint: Endpoint
  readonly #channels = new Set<ControlChannel>()
  /** Pairing channels whose close is scheduled (their last answer is still being flushed). */
  readonly #doomed = new WeakSet<ControlChannel>()
  readonly #pinRules: PinRules
  readonly #noise: NoiseFanout
  #window: Window | undefined
  #pin: PinState | undefined
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
    this.#pinRules = new PinRules(options.pin)
    this.#noise = new NoiseFanout(options)
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
    return this.#window !== undefined
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
    const secret = this.#window?.qrSecret
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
    const durationMs = options.durationMs ?? 120_000
    if (!Number.isInteger(durationMs) || durationMs <= 0) throw new InvalidArgumentError('durationMs must be a positive integer')
    if (options.allowLegacyQr !== undefined && typeof options.allowLegacyQr !== 'boolean') {
      throw new InvalidArgumentError('allowLegacyQr must be a boolean')
    }
    // Without onPin nobody could see the PIN: PIN pairing would only serve guessers.
    const allowPin = options.allowPin ?? options.onPin !== undefined
    const allowQr = options.allowQr ?? true
    const qrSecret = allowQr ? generateQrPairingSecret() : undefined
    const previous = this.#window
    if (previous !== undefined) clearTimeout(previous.timer)
    const timer = setTimeout(() => this.#closePairing('timeout'), durationMs)
    timer.unref()
    this.#window = {
      until: Date.now() + durationMs,
      timer,
      allowPin,
      allowQr,
      allowLegacyQr: allowQr && options.allowLegacyQr === true,
      qrSecret,
      closing: previous?.closing ?? new AbortController(),
      onPin: options.onPin,
      approve: options.approve,
    }
    if (allowPin) this.#pinRules.open()
    else this.#pinRules.close()
    this.#endpoint.setAcceptUnknown(true)
    this.#emit('pairing-opened', [{ until: this.#window.until, allowPin, allowQr }])
  }

  /** Closes the pairing window: unknown certificates fail the handshake again. */
  closePairing(): void {
    this.#closePairing('closed')
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
      this.#closePairing('closed')
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

  #closePairing(reason: 'timeout' | 'closed' | 'locked'): void {
    const w = this.#window
    this.#endPin()
    this.#pinRules.close()
    if (w === undefined) return
    clearTimeout(w.timer)
    this.#window = undefined
    w.closing.abort(new CribcallError('ERR_PAIRING_CLOSED', `the pairing window closed (${reason})`))
    if (!this.#closed) this.#endpoint.setAcceptUnknown(false)
    // Pairing-only channels have no business left.
    for (const c of this.#channels) {
      if (c.trust !== 'pairing-only' || this.#doomed.has(c)) continue
      // Whatever pairing was in progress on it is over.
      this.#safeSend(c, { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      this.#closeSoon(c, ErrorCode.UNAUTHORIZED, 'pairing closed')
    }
    this.#emit('pairing-closed', [{ reason }])
  }

  /**
   * Closes a channel; frames queued before (the ERROR or PAIR_REJECTED that explains
   * the close) still go out first — the transport sends them ahead of the
   * CONNECTION_CLOSE. Messages arriving meanwhile are ignored.
   */
  #closeSoon(channel: ControlChannel, code: number, reason: string): void {
    if (this.#doomed.has(channel) || channel.isClosed) return
    this.#doomed.add(channel)
    channel.close(code, reason).catch(() => undefined)
  }

  /** May a pairing whose checks (and approval) passed still complete on `channel`? */
  #mayComplete(channel: ControlChannel): boolean {
    return this.#window !== undefined && !this.#closed && !channel.isClosed && !this.#doomed.has(channel)
  }

  #endPin(): void {
    if (this.#pin !== undefined) {
      this.#pin.initiator.destroy()
      this.#pin = undefined
    }
    this.#pinRules.end()
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
    if (!trusted && this.#window === undefined) {
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
      if (this.#pin?.channel === channel) this.#endPin()
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
    if (this.#doomed.has(channel)) return
    if (channel.trust === 'trusted') {
      this.#emit('message', [{ channel, message }])
      // A paired listener may pair again (e.g. it lost its trust store): its pairing
      // messages get the same answers as an unknown listener's instead of none.
      if (message.type !== 'PAIR_REQUEST' && message.type !== 'PIN_PAIRING_INIT' && message.type !== 'PIN_SUBMIT') return
    }
    const run = async (): Promise<void> => {
      switch (message.type) {
        case 'PAIR_REQUEST':
          return this.#onPairRequest(channel, message)
        case 'PIN_PAIRING_INIT':
          return this.#onPinInit(channel, message)
        case 'PIN_SUBMIT':
          return this.#onPinSubmit(channel, message)
        default:
          return
      }
    }
    run().catch((e: unknown) => {
      this.#error(e instanceof CribcallError ? e : new CribcallError('ERR_INTERNAL', `pairing failed: ${String(e)}`, { cause: e }))
      this.#safeSend(channel, { type: 'PAIR_REJECTED', reason: 'INTERNAL_ERROR' })
    })
  }

  #safeSend(channel: ControlChannel, message: Message): void {
    try {
      if (!channel.isClosed) channel.send(message)
    } catch {
      // closed meanwhile
    }
  }

  /** A false identity claim (SPEC §7): ERROR UNAUTHORIZED in reply to the claim, then close 2. */
  #refuseIdentity(channel: ControlChannel, inReplyTo: 'PAIR_REQUEST' | 'PIN_PAIRING_INIT', detail: string): void {
    const method = inReplyTo === 'PAIR_REQUEST' ? 'qr' : 'pin'
    this.#emit('pairing-failed', [{ method, reason: detail, fingerprint: channel.peerFingerprint }])
    this.#safeSend(channel, { type: 'ERROR', code: ErrorCode.UNAUTHORIZED, error: 'UNAUTHORIZED', message: detail, inReplyTo })
    this.#closeSoon(channel, ErrorCode.UNAUTHORIZED, 'UNAUTHORIZED')
  }

  /**
   * Asks the application (the window's `approve`, default approve). Its `signal` aborts
   * when the channel closes or pairing closes.
   */
  async #approve(channel: ControlChannel, info: Omit<PairingRequestInfo, 'signal'>): Promise<boolean> {
    const w = this.#window
    const approve = w?.approve
    if (w === undefined || approve === undefined) return true
    const gone = new AbortController()
    const onClose = (): void => gone.abort(new CribcallError('ERR_CONNECTION_CLOSED', 'the requesting connection closed'))
    channel.once('close', onClose)
    if (channel.isClosed) onClose()
    try {
      return (await approve({ ...info, signal: AbortSignal.any([gone.signal, w.closing.signal]) })) === true
    } catch (e) {
      this.#error(new HandlerError('approve', e))
      return false
    } finally {
      channel.off('close', onClose)
    }
  }

  async #store(channel: ControlChannel, info: Omit<PairingRequestInfo, 'signal'>): Promise<TrustEntry> {
    const entry: TrustEntry = {
      deviceId: info.listenerId.toLowerCase(),
      name: info.listenerName,
      fingerprint: channel.peerFingerprint,
      publicKey: info.publicKey,
      role: 'listener',
      pairedAt: Date.now(),
      lastSeenAt: Date.now(),
      lastAddress: hostPortOf(channel.connection.remoteAddress.host, channel.connection.remoteAddress.port),
    }
    await this.trustStore.put(entry)
    return this.trustStore.get(entry.deviceId) ?? entry
  }

  async #onPairRequest(channel: ControlChannel, m: PairRequestMessage): Promise<void> {
    const w = this.#window
    if (w === undefined || !w.allowQr) {
      this.#safeSend(channel, { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      return
    }
    if (m.listenerCertFingerprint !== channel.peerFingerprint) {
      return this.#refuseIdentity(channel, 'PAIR_REQUEST', 'listenerCertFingerprint is not the certificate presented in TLS')
    }
    const certKey = publicKeyOf(channel.connection.peerCertificate)
    if (m.listenerPublicKey !== certKey) {
      return this.#refuseIdentity(channel, 'PAIR_REQUEST', 'listenerPublicKey is not the key of the certificate presented in TLS')
    }
    // Proof of the window's secret (SPEC §7.1), bound to the certificates seen in TLS:
    // a device that did not read this window's QR code gets no further — not even to
    // the application's approval. Nothing is stored.
    const legacyQr = m.pairingProof === undefined
    const proofFailure = this.#qrProofFailure(w, channel, m, certKey)
    if (proofFailure !== undefined) {
      this.#emit('pairing-failed', [{ method: 'qr', reason: proofFailure, fingerprint: channel.peerFingerprint }])
      this.#safeSend(channel, { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      return
    }
    const info = {
      method: 'qr' as const,
      listenerId: m.listenerId,
      listenerName: m.listenerName,
      fingerprint: channel.peerFingerprint,
      publicKey: certKey,
      remoteAddress: channel.connection.remoteAddress,
      legacyQr,
    }
    if (!(await this.#approve(channel, info))) {
      this.#emit('pairing-failed', [{ method: 'qr', reason: 'not approved', fingerprint: channel.peerFingerprint }])
      this.#safeSend(channel, { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      return
    }
    // The window may have closed (or the channel gone) while the application decided.
    if (!this.#mayComplete(channel)) {
      this.#safeSend(channel, { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      return
    }
    const entry = await this.#store(channel, info)
    this.#safeSend(channel, { type: 'PAIR_ACCEPTED', monitorId: this.identity.deviceId })
    channel.upgradeTrust()
    this.#noise.attach(channel, entry.deviceId) // live events from now on
    this.#emit('paired', [{ entry, method: 'qr', channel }])
  }

  /** Why the request's pairing proof is refused, or undefined when it passes (SPEC §7.1). */
  #qrProofFailure(w: Window, channel: ControlChannel, m: PairRequestMessage, certKey: string): string | undefined {
    if (m.pairingProof === undefined) {
      return w.allowLegacyQr ? undefined : 'PAIR_REQUEST without pairingProof (legacy QR pairing is not allowed in this window)'
    }
    const claims = {
      monitorCertFingerprint: this.identity.fingerprint,
      listenerCertFingerprint: channel.peerFingerprint, // as observed in TLS
      monitorId: this.identity.deviceId,
      listenerId: m.listenerId,
      listenerName: m.listenerName,
      listenerPublicKey: certKey,
    }
    if (w.qrSecret !== undefined && verifyQrPairingProof(w.qrSecret, claims, m.pairingProof)) return undefined
    return "wrong pairingProof (not proof of this pairing window's QR code)"
  }

  async #onPinInit(channel: ControlChannel, m: PinPairingInitMessage): Promise<void> {
    if (m.listenerCertFingerprint !== channel.peerFingerprint) {
      return this.#refuseIdentity(channel, 'PIN_PAIRING_INIT', 'listenerCertFingerprint is not the certificate presented in TLS')
    }
    const started = this.#pinRules.start({
      fingerprint: channel.peerFingerprint,
      listenerId: m.listenerId,
      listenerName: m.listenerName,
    })
    if (!started.ok) {
      if (started.reason === 'CONFLICT') {
        this.#safeSend(channel, {
          type: 'ERROR',
          code: ErrorCode.CONFLICT,
          error: 'CONFLICT',
          message: 'another PIN pairing session is in progress',
          inReplyTo: 'PIN_PAIRING_INIT',
        })
      } else {
        this.#safeSend(channel, { type: 'PAIR_REJECTED', reason: started.reason })
      }
      return
    }
    const session = started.session
    const initiator = new PinInitiator(session.pin, session.pairingSessionId, this.identity.fingerprint, channel.peerFingerprint)
    if (this.#pin !== undefined) this.#pin.initiator.destroy()
    this.#pin = { session, initiator, channel }
    const { pin, ...publicInfo } = session
    const onPin = this.#window?.onPin
    if (onPin !== undefined) {
      try {
        onPin(pin, publicInfo)
      } catch (e) {
        this.#error(new HandlerError('onPin', e))
      }
    }
    this.#safeSend(channel, {
      type: 'PIN_REQUIRED',
      monitorId: this.identity.deviceId,
      pairingSessionId: session.pairingSessionId,
      pakeMsgA: initiator.share.toString('base64'),
      expiresInSec: session.expiresInSec,
      maxAttempts: session.maxAttempts,
    })
  }

  async #onPinSubmit(channel: ControlChannel, m: PinSubmitMessage): Promise<void> {
    const state = this.#pin
    const check = this.#pinRules.check(m.pairingSessionId)
    if (!check.ok || state === undefined || state.channel !== channel) {
      // Only drop our state when the rules say the session is over (it expired): a
      // submit naming another session id, or coming from another channel, must not end
      // the live session of the listener that is typing the PIN.
      if (this.#pin !== undefined && this.#pinRules.current() === undefined) this.#endPin()
      this.#safeSend(channel, { type: 'PAIR_REJECTED', reason: check.ok ? 'EXPIRED' : check.reason })
      return
    }
    const session = check.session
    const t = m.transcript
    const consistent =
      t.pairingSessionId === session.pairingSessionId &&
      t.monitorId === this.identity.deviceId &&
      t.monitorCertFingerprint === this.identity.fingerprint &&
      t.listenerCertFingerprint === channel.peerFingerprint &&
      t.listenerId === session.listenerId &&
      t.listenerPublicKey === publicKeyOf(channel.connection.peerCertificate)
    let ok = false
    const share = decodeB64x32(m.pakeMsgB)
    const tag = decodeB64x32(m.authTag)
    let monitorTag: Buffer | undefined
    if (consistent && share !== undefined && tag !== undefined) {
      try {
        const tags = state.initiator.confirm(share, transcriptBytes(t))
        ok = tagsEqual(tags.listenerTag, tag)
        monitorTag = tags.monitorTag
      } catch {
        ok = false // invalid point: a failed attempt like a wrong tag
      }
    }
    if (!ok) {
      const r = this.#pinRules.fail()
      this.#emit('pairing-failed', [
        { method: 'pin', reason: consistent ? 'wrong PIN or confirmation tag' : 'transcript does not match the TLS identities', fingerprint: channel.peerFingerprint },
      ])
      if (r.sessionDead) this.#endPin()
      this.#safeSend(channel, { type: 'PAIR_REJECTED', reason: r.locked ? 'LOCKED' : 'INVALID_PIN' })
      if (r.locked) this.#closePairing('locked')
      return
    }
    const info = {
      method: 'pin' as const,
      listenerId: session.listenerId,
      listenerName: session.listenerName,
      fingerprint: channel.peerFingerprint,
      publicKey: t.listenerPublicKey,
      remoteAddress: channel.connection.remoteAddress,
      legacyQr: false,
    }
    this.#endPin()
    if (!(await this.#approve(channel, info))) {
      this.#safeSend(channel, { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      return
    }
    if (!this.#mayComplete(channel) || monitorTag === undefined) {
      this.#safeSend(channel, { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      return
    }
    const entry = await this.#store(channel, info)
    this.#safeSend(channel, { type: 'PAIR_ACCEPTED', monitorId: this.identity.deviceId, authTag: monitorTag.toString('base64') })
    channel.upgradeTrust()
    this.#noise.attach(channel, entry.deviceId) // live events from now on
    this.#emit('paired', [{ entry, method: 'pin', channel }])
  }
}

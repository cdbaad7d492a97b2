// The Monitor's pairing window (SPEC.md §7): QR pairing (PAIR_REQUEST with the proof of
// the window's secret), PIN pairing (CPace: PIN_PAIRING_INIT, PIN_SUBMIT), the
// application's approval, and what becomes of pairing-only channels when it closes.
// The Monitor owns the channels and the endpoint; this owns the window and the PIN
// session and answers the pairing messages.
import type { ControlChannel } from '../protocol/control-channel.js'
import { ErrorCode, type Message, type PairRequestMessage, type PinPairingInitMessage, type PinSubmitMessage } from '../protocol/messages.js'
import { generateQrPairingSecret, verifyQrPairingProof } from '../pairing/qr-proof.js'
import { PinInitiator, decodeB64x32, tagsEqual, transcriptBytes } from '../pairing/pin.js'
import { PinRules, type PinRulesOptions, type PinSessionInfo } from '../pairing/pin-session.js'
import type { TrustEntry } from '../store/trust-store.js'
import { hostPort as hostPortOf, publicKeyOf } from './address.js'
import { CribcallError, HandlerError, InvalidArgumentError } from '../transport/errors.js'
import type { OpenPairingOptions, PairingRequestInfo } from './monitor.js'
import { safeSend, type PairingHost } from './pairing-host.js'

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

/** What the application's approval sees of a request that passed every check. */
function requestInfo(
  channel: ControlChannel,
  method: 'qr' | 'pin',
  listenerId: string,
  listenerName: string,
  publicKey: string,
  legacyQr: boolean,
): Omit<PairingRequestInfo, 'signal'> {
  return { method, listenerId, listenerName, fingerprint: channel.peerFingerprint, publicKey, remoteAddress: channel.connection.remoteAddress, legacyQr }
}

export class PairingWindow {
  readonly #host: PairingHost
  readonly #pinRules: PinRules
  /** Pairing channels whose close is scheduled (their last answer is still being flushed). */
  readonly #doomed = new WeakSet<ControlChannel>()
  #window: Window | undefined
  #pin: PinState | undefined

  constructor(host: PairingHost, pin: PinRulesOptions | undefined) {
    this.#host = host
    this.#pinRules = new PinRules(pin)
  }

  get isOpen(): boolean {
    return this.#window !== undefined
  }

  /** The open window's QR pairing secret (only while QR is allowed). Never logged. */
  get qrSecret(): string | undefined {
    return this.#window?.qrSecret
  }

  /** Whether `channel`'s close is scheduled: its messages are ignored. */
  isDoomed(channel: ControlChannel): boolean {
    return this.#doomed.has(channel)
  }

  /**
   * Opens (or reopens) the window: a new QR secret each time (a QR code shown before is
   * void); reopening also clears a PIN lockout. `onTimeout` closes it when it ends.
   */
  open(options: OpenPairingOptions, onTimeout: () => void): { until: number; allowPin: boolean; allowQr: boolean } {
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
    const timer = setTimeout(onTimeout, durationMs)
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
    this.#host.setAcceptUnknown(true)
    return { until: this.#window.until, allowPin, allowQr }
  }

  /** Answers a pairing message (PAIR_REQUEST, PIN_PAIRING_INIT, PIN_SUBMIT) on `channel`. */
  async handle(channel: ControlChannel, message: Message): Promise<void> {
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

  /** `channel` closed: a PIN session on it ends. */
  channelClosed(channel: ControlChannel): void {
    if (this.#pin?.channel === channel) this.#endPin()
  }

  /** Closes the window (and a PIN session); pairing-only channels are told and closed. */
  close(reason: 'timeout' | 'closed' | 'locked'): void {
    const w = this.#window
    this.#endPin()
    this.#pinRules.close()
    if (w === undefined) return
    clearTimeout(w.timer)
    this.#window = undefined
    w.closing.abort(new CribcallError('ERR_PAIRING_CLOSED', `the pairing window closed (${reason})`))
    if (!this.#host.isClosed()) this.#host.setAcceptUnknown(false)
    // Pairing-only channels have no business left.
    for (const c of this.#host.channels()) {
      if (c.trust !== 'pairing-only' || this.#doomed.has(c)) continue
      // Whatever pairing was in progress on it is over.
      safeSend(c, { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      this.#closeSoon(c, ErrorCode.UNAUTHORIZED, 'pairing closed')
    }
    this.#host.emit('pairing-closed', [{ reason }])
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
    return this.#window !== undefined && !this.#host.isClosed() && !channel.isClosed && !this.#doomed.has(channel)
  }

  #endPin(): void {
    if (this.#pin !== undefined) {
      this.#pin.initiator.destroy()
      this.#pin = undefined
    }
    this.#pinRules.end()
  }

  /** A false identity claim (SPEC §7): ERROR UNAUTHORIZED in reply to the claim, then close 2. */
  #refuseIdentity(channel: ControlChannel, inReplyTo: 'PAIR_REQUEST' | 'PIN_PAIRING_INIT', detail: string): void {
    const method = inReplyTo === 'PAIR_REQUEST' ? 'qr' : 'pin'
    this.#host.emit('pairing-failed', [{ method, reason: detail, fingerprint: channel.peerFingerprint }])
    safeSend(channel, { type: 'ERROR', code: ErrorCode.UNAUTHORIZED, error: 'UNAUTHORIZED', message: detail, inReplyTo })
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
      this.#host.error(new HandlerError('approve', e))
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
    await this.#host.trustStore.put(entry)
    return this.#host.trustStore.get(entry.deviceId) ?? entry
  }

  async #onPairRequest(channel: ControlChannel, m: PairRequestMessage): Promise<void> {
    const w = this.#window
    if (w === undefined || !w.allowQr) {
      safeSend(channel, { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
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
      this.#host.emit('pairing-failed', [{ method: 'qr', reason: proofFailure, fingerprint: channel.peerFingerprint }])
      safeSend(channel, { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      return
    }
    const info = requestInfo(channel, 'qr', m.listenerId, m.listenerName, certKey, legacyQr)
    return this.#finish(channel, info, undefined)
  }

  /**
   * Every check passed: the application's approval, then the listener is stored, gets
   * PAIR_ACCEPTED (with the monitor's tag after PIN pairing) and its channel becomes
   * trusted. A refusal is PAIR_REJECTED NOT_PAIRING and a 'pairing-failed' event.
   */
  async #finish(channel: ControlChannel, info: Omit<PairingRequestInfo, 'signal'>, authTag: Buffer | undefined): Promise<void> {
    if (!(await this.#approve(channel, info))) {
      this.#host.emit('pairing-failed', [{ method: info.method, reason: 'not approved', fingerprint: channel.peerFingerprint }])
      safeSend(channel, { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      return
    }
    // The window may have closed (or the channel gone) while the application decided.
    if (!this.#mayComplete(channel)) {
      safeSend(channel, { type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      return
    }
    const entry = await this.#store(channel, info)
    const tag = authTag === undefined ? {} : { authTag: authTag.toString('base64') }
    safeSend(channel, { type: 'PAIR_ACCEPTED', monitorId: this.#host.identity.deviceId, ...tag })
    channel.upgradeTrust()
    this.#host.attachNoise(channel, entry.deviceId) // live events from now on
    this.#host.emit('paired', [{ entry, method: info.method, channel }])
  }

  /** Why the request's pairing proof is refused, or undefined when it passes (SPEC §7.1). */
  #qrProofFailure(w: Window, channel: ControlChannel, m: PairRequestMessage, certKey: string): string | undefined {
    if (m.pairingProof === undefined) {
      return w.allowLegacyQr ? undefined : 'PAIR_REQUEST without pairingProof (legacy QR pairing is not allowed in this window)'
    }
    const claims = {
      monitorCertFingerprint: this.#host.identity.fingerprint,
      listenerCertFingerprint: channel.peerFingerprint, // as observed in TLS
      monitorId: this.#host.identity.deviceId,
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
        safeSend(channel, {
          type: 'ERROR',
          code: ErrorCode.CONFLICT,
          error: 'CONFLICT',
          message: 'another PIN pairing session is in progress',
          inReplyTo: 'PIN_PAIRING_INIT',
        })
      } else {
        safeSend(channel, { type: 'PAIR_REJECTED', reason: started.reason })
      }
      return
    }
    const session = started.session
    const initiator = new PinInitiator(session.pin, session.pairingSessionId, this.#host.identity.fingerprint, channel.peerFingerprint)
    if (this.#pin !== undefined) this.#pin.initiator.destroy()
    this.#pin = { session, initiator, channel }
    const { pin, ...publicInfo } = session
    const onPin = this.#window?.onPin
    if (onPin !== undefined) {
      try {
        onPin(pin, publicInfo)
      } catch (e) {
        this.#host.error(new HandlerError('onPin', e))
      }
    }
    safeSend(channel, {
      type: 'PIN_REQUIRED',
      monitorId: this.#host.identity.deviceId,
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
      safeSend(channel, { type: 'PAIR_REJECTED', reason: check.ok ? 'EXPIRED' : check.reason })
      return
    }
    const session = check.session
    const t = m.transcript
    const consistent =
      t.pairingSessionId === session.pairingSessionId &&
      t.monitorId === this.#host.identity.deviceId &&
      t.monitorCertFingerprint === this.#host.identity.fingerprint &&
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
      this.#host.emit('pairing-failed', [
        { method: 'pin', reason: consistent ? 'wrong PIN or confirmation tag' : 'transcript does not match the TLS identities', fingerprint: channel.peerFingerprint },
      ])
      if (r.sessionDead) this.#endPin()
      safeSend(channel, { type: 'PAIR_REJECTED', reason: r.locked ? 'LOCKED' : 'INVALID_PIN' })
      if (r.locked) this.close('locked')
      return
    }
    const info = requestInfo(channel, 'pin', session.listenerId, session.listenerName, t.listenerPublicKey, false)
    this.#endPin()
    if (monitorTag === undefined) return safeSend(channel, { type: 'PAIR_REJECTED', reason: 'INTERNAL_ERROR' }) // unreachable: ok implies a tag
    return this.#finish(channel, info, monitorTag)
  }
}

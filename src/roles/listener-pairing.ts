// The listener's side of pairing: its errors, the waits on a pairing channel, and the
// CPace PIN exchange (SPEC §7.2). Used by Listener.pairWithQr / pairWithPin.
import { ControlChannel } from '../protocol/control-channel.js'
import { ErrorCode, type Message, type PairAcceptedMessage, type PairRejectedMessage, type PinRequiredMessage } from '../protocol/messages.js'
import { ProtocolError } from '../protocol/errors.js'
import { decodeB64x32, respondPin, tagsEqual, transcriptBytes } from '../pairing/pin.js'
import type { CloseInfo } from '../transport/connection.js'
import { AbortError, ConnectionClosedError, CribcallError, InvalidArgumentError } from '../transport/errors.js'
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

export interface PinPromptInfo {
  readonly pairingSessionId: string
  readonly expiresInSec: number
  /** 1-based attempt number. */
  readonly attempt: number
  readonly maxAttempts: number
  /** Aborts when the prompt is moot: session expired, monitor gone, pairing abandoned. */
  readonly signal: AbortSignal
}

export type GetPin = (info: PinPromptInfo) => string | Promise<string>

/**
 * How long after the session expiry the listener still waits for the monitor's answer
 * to a PIN_SUBMIT (a submit at the expiry is on time, SPEC §7.2.4).
 */
const ANSWER_GRACE_MS = 10_000

/** The next message whose type is one of `types` (an ERROR or a close rejects). */
export function nextOf<T extends Message['type']>(
  channel: ControlChannel,
  types: readonly T[],
  signal: AbortSignal,
): Promise<Extract<Message, { type: T }>> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      channel.off('message', onMessage)
      channel.off('close', onClose)
      signal.removeEventListener('abort', onAbort)
    }
    const onMessage = (m: Message): void => {
      if ((types as readonly string[]).includes(m.type)) {
        cleanup()
        resolve(m as Extract<Message, { type: T }>)
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
      reject(abortReason(signal))
    }
    if (signal.aborted) return onAbort()
    channel.on('message', onMessage)
    channel.on('close', onClose)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** A signal's reason as the error to throw: a CribcallError as is, anything else as AbortError. */
function abortReason(signal: AbortSignal): CribcallError {
  return signal.reason instanceof CribcallError ? signal.reason : new AbortError(signal.reason)
}

/**
 * A signal aborted by the first of `sources` to abort, or (ConnectionClosedError) when
 * `channel` closes. `dispose` detaches it: it never aborts afterwards.
 */
function scopedSignal(sources: readonly AbortSignal[], channel: ControlChannel): { signal: AbortSignal; dispose: () => void } {
  const ctl = new AbortController()
  const offs: Array<() => void> = []
  const onClose = (info: CloseInfo): void => ctl.abort(new ConnectionClosedError(`the monitor closed the connection (${info.code} ${info.reason})`))
  for (const s of sources) {
    if (s.aborted) ctl.abort(s.reason)
    const onAbort = (): void => ctl.abort(s.reason)
    s.addEventListener('abort', onAbort, { once: true })
    offs.push(() => s.removeEventListener('abort', onAbort))
  }
  if (channel.isClosed) ctl.abort(new ConnectionClosedError('the monitor closed the connection'))
  channel.on('close', onClose)
  offs.push(() => channel.off('close', onClose))
  return { signal: ctl.signal, dispose: () => offs.forEach((off) => off()) }
}

/** Settles with `p`, or rejects as soon as `signal` aborts. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal))
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal))
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

/** A signal aborted `ms` from now with `reason`; `dispose` clears the timer. */
function timerSignal(ms: number, reason: () => unknown): { signal: AbortSignal; dispose: () => void } {
  const ctl = new AbortController()
  const timer = setTimeout(() => ctl.abort(reason()), ms)
  return { signal: ctl.signal, dispose: () => clearTimeout(timer) }
}

export interface PinExchange {
  readonly channel: ControlChannel
  readonly identity: Identity
  readonly req: PinRequiredMessage
  readonly getPin: GetPin
  /** The caller's hard deadline (its signal, an explicit timeoutMs). */
  readonly signal: AbortSignal
}

/**
 * Runs the PIN attempts of one session. The prompt lasts until the session expires
 * (`expiresInSec` from PIN_REQUIRED, measured from its receipt) — its signal aborts then,
 * and the exchange fails with PairingRejectedError EXPIRED — or until the monitor goes
 * away or the caller gives up. Resolves with the verified PAIR_ACCEPTED.
 */
export async function pinExchange(x: PinExchange): Promise<PairAcceptedMessage> {
  const { channel, req } = x
  const share = decodeB64x32(req.pakeMsgA)
  if (share === undefined) throw new PairingFailedError('pakeMsgA is not 32 bytes')
  const expiryMs = req.expiresInSec * 1000
  const expiry = timerSignal(expiryMs, () => new PairingRejectedError('EXPIRED', `the pairing session expired (${req.expiresInSec} s) before the PIN was confirmed`))
  const answerDeadline = timerSignal(expiryMs + ANSWER_GRACE_MS, () => new PairingFailedError('the monitor did not answer the PIN in time'))
  // The prompt ends with the session, the connection or the caller; never after the exchange.
  const prompt = scopedSignal([x.signal, expiry.signal], channel)
  const promptSignal = prompt.signal
  const answerSignal = AbortSignal.any([x.signal, answerDeadline.signal])
  try {
    const transcript = {
      monitorId: req.monitorId,
      listenerId: x.identity.deviceId,
      listenerPublicKey: x.identity.publicKey,
      listenerCertFingerprint: x.identity.fingerprint,
      monitorCertFingerprint: channel.peerFingerprint,
      pairingSessionId: req.pairingSessionId,
    }
    const tBytes = transcriptBytes(transcript)
    for (let attempt = 1; attempt <= req.maxAttempts; attempt++) {
      const info = { pairingSessionId: req.pairingSessionId, expiresInSec: req.expiresInSec, attempt, maxAttempts: req.maxAttempts, signal: promptSignal }
      const pin = String(await raceAbort(Promise.resolve(x.getPin(info)), promptSignal)).trim()
      if (x.signal.aborted) throw abortReason(x.signal)
      if (!/^\d{6}$/.test(pin)) throw new InvalidArgumentError('a PIN is exactly 6 digits')
      // The pinned fingerprint is the TLS-observed one (the pin was checked in the handshake).
      let r: ReturnType<typeof respondPin>
      try {
        r = respondPin(pin, req.pairingSessionId, channel.peerFingerprint, x.identity.fingerprint, share, tBytes)
      } catch (e) {
        // A low-order pakeMsgA (or a malformed session id): no honest monitor sends that.
        await channel.close(ErrorCode.UNAUTHORIZED, 'invalid PAKE share').catch(() => undefined)
        throw new PairingFailedError(`the monitor's PIN_REQUIRED is unusable: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
      }
      const answer = nextOf(channel, ['PAIR_ACCEPTED', 'PAIR_REJECTED'], answerSignal)
      channel.send({ type: 'PIN_SUBMIT', pairingSessionId: req.pairingSessionId, pakeMsgB: r.share.toString('base64'), transcript, authTag: r.listenerTag.toString('base64') })
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
      return m
    }
    throw new PairingRejectedError('INVALID_PIN')
  } finally {
    prompt.dispose()
    expiry.dispose()
    answerDeadline.dispose()
  }
}

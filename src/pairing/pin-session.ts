// The monitor's PIN-pairing rules as a state machine with an injectable clock
// (SPEC.md §7.2): one session at a time, 60 s expiry, 3 attempts per session, and
// 20 failures within 15 minutes close PIN pairing until the user reopens it.
import { randomBytes, randomInt } from 'node:crypto'

export interface PinRulesOptions {
  /** Session lifetime (default 60 s). */
  readonly ttlMs?: number
  /** Wrong confirmations per session (default 3). */
  readonly maxAttempts?: number
  /** Failures in the window that lock PIN pairing (default 20). */
  readonly lockoutFailures?: number
  /** Lockout window (default 15 min). */
  readonly lockoutWindowMs?: number
  /** Clock in ms (default Date.now); tests inject a fake one. */
  readonly now?: () => number
  /** PIN source (default: uniform random, trivial PINs excluded). */
  readonly generatePin?: () => string
}

export interface PinSessionInfo {
  readonly pairingSessionId: string
  readonly pin: string
  readonly expiresAt: number
  readonly expiresInSec: number
  readonly maxAttempts: number
  /** TLS-observed fingerprint of the listener this session belongs to. */
  readonly listenerFingerprint: string
  readonly listenerId: string
  readonly listenerName: string
}

export type StartResult =
  | { readonly ok: true; readonly session: PinSessionInfo }
  | { readonly ok: false; readonly reason: 'NOT_PAIRING' | 'LOCKED' | 'CONFLICT' }

export type AttemptCheck =
  | { readonly ok: true; readonly session: PinSessionInfo }
  | { readonly ok: false; readonly reason: 'EXPIRED' | 'NOT_PAIRING' | 'LOCKED' }

export type FailureResult = { readonly sessionDead: boolean; readonly locked: boolean; readonly attemptsLeft: number }

/** True for PINs a person would guess first: one repeated digit, or a straight run. */
export function isTrivialPin(pin: string): boolean {
  if (!/^\d{6}$/.test(pin)) return true
  const d = [...pin].map(Number)
  if (d.every((x) => x === d[0])) return true
  const steps = d.slice(1).map((x, i) => x - (d[i] as number))
  if (steps.every((s) => s === 1) || steps.every((s) => s === -1)) return true
  // Two halves repeated (123123) and the classic sequences.
  if (pin.slice(0, 3) === pin.slice(3)) return true
  return ['123456', '654321', '121212', '112233', '696969', '000001'].includes(pin)
}

export function randomPin(): string {
  for (;;) {
    const pin = String(randomInt(0, 1_000_000)).padStart(6, '0')
    if (!isTrivialPin(pin)) return pin
  }
}

interface Live {
  info: PinSessionInfo
  attempts: number
  dead: boolean
}

export class PinRules {
  readonly #ttlMs: number
  readonly #maxAttempts: number
  readonly #lockoutFailures: number
  readonly #lockoutWindowMs: number
  readonly #now: () => number
  readonly #generatePin: () => string
  #open = false
  #locked = false
  #failures: number[] = []
  #session: Live | undefined

  constructor(options: PinRulesOptions = {}) {
    this.#ttlMs = options.ttlMs ?? 60_000
    this.#maxAttempts = options.maxAttempts ?? 3
    this.#lockoutFailures = options.lockoutFailures ?? 20
    this.#lockoutWindowMs = options.lockoutWindowMs ?? 15 * 60_000
    this.#now = options.now ?? Date.now
    this.#generatePin = options.generatePin ?? randomPin
  }

  get isOpen(): boolean {
    return this.#open && !this.#locked
  }

  get isLocked(): boolean {
    return this.#locked
  }

  /** Opens PIN pairing (and clears a lockout: the user reopened it). */
  open(): void {
    this.#open = true
    this.#locked = false
    this.#failures = []
  }

  /** Closes PIN pairing and ends any session. */
  close(): void {
    this.#open = false
    this.end()
  }

  /** Ends the current session (success, channel closed, …). */
  end(): void {
    if (this.#session !== undefined) this.#session.dead = true
    this.#session = undefined
  }

  /** The live session, if any (expired or dead ones are dropped). */
  current(): PinSessionInfo | undefined {
    const s = this.#session
    if (s === undefined) return undefined
    if (s.dead || this.#now() > s.info.expiresAt) {
      this.#session = undefined
      return undefined
    }
    return s.info
  }

  start(listener: { fingerprint: string; listenerId: string; listenerName: string }): StartResult {
    if (this.#locked) return { ok: false, reason: 'LOCKED' }
    if (!this.#open) return { ok: false, reason: 'NOT_PAIRING' }
    if (this.current() !== undefined) return { ok: false, reason: 'CONFLICT' }
    const now = this.#now()
    const info: PinSessionInfo = Object.freeze({
      pairingSessionId: randomBytes(16).toString('base64url'),
      pin: this.#generatePin(),
      expiresAt: now + this.#ttlMs,
      expiresInSec: Math.ceil(this.#ttlMs / 1000),
      maxAttempts: this.#maxAttempts,
      listenerFingerprint: listener.fingerprint,
      listenerId: listener.listenerId,
      listenerName: listener.listenerName,
    })
    this.#session = { info, attempts: 0, dead: false }
    return { ok: true, session: info }
  }

  /** May a PIN_SUBMIT for `pairingSessionId` be checked now? */
  check(pairingSessionId: string): AttemptCheck {
    if (this.#locked) return { ok: false, reason: 'LOCKED' }
    if (!this.#open) return { ok: false, reason: 'NOT_PAIRING' }
    const s = this.#session
    if (s === undefined || s.dead || s.info.pairingSessionId !== pairingSessionId) return { ok: false, reason: 'EXPIRED' }
    if (this.#now() > s.info.expiresAt) {
      this.#session = undefined
      return { ok: false, reason: 'EXPIRED' }
    }
    return { ok: true, session: s.info }
  }

  /** Records a failed confirmation for the current session. */
  fail(): FailureResult {
    const now = this.#now()
    this.#failures = this.#failures.filter((t) => now - t < this.#lockoutWindowMs)
    this.#failures.push(now)
    if (this.#failures.length >= this.#lockoutFailures) {
      this.#locked = true
      this.end()
    }
    const s = this.#session
    let attemptsLeft = 0
    let sessionDead = true
    if (s !== undefined && !s.dead) {
      s.attempts++
      attemptsLeft = Math.max(0, this.#maxAttempts - s.attempts)
      if (attemptsLeft === 0) this.end()
      else sessionDead = false
    }
    return { sessionDead, locked: this.#locked, attemptsLeft }
  }
}

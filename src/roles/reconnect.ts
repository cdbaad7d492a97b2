// Reconnect discipline of a listener's channel: the options, the backoff delay, and the
// classification of closes and failed dials into final (no redial) and transient.
import { ErrorCode } from '../protocol/messages.js'
import type { CloseInfo } from '../transport/connection.js'
import { InvalidArgumentError, type CribcallError } from '../transport/errors.js'

export interface ReconnectOptions {
  /** Base delay of the first retry, ms (default 250). Integer ≥ 1. */
  readonly minDelayMs?: number
  /** Cap of the exponential backoff, ms (default 5,000). Integer ≥ minDelayMs. */
  readonly maxDelayMs?: number
  /**
   * Give up after this many consecutive failures (failed dials, and connections that
   * closed before they were healthy); default: never. Integer ≥ 1 or Infinity.
   */
  readonly maxAttempts?: number
  /**
   * A connection that stayed up this long (ms) is healthy: the failure count starts
   * again from zero after it closes (default 10,000). Integer ≥ 0.
   */
  readonly healthyAfterMs?: number
}

export type ResolvedReconnectOptions = Required<ReconnectOptions>

export const RECONNECT_DEFAULTS: ResolvedReconnectOptions = Object.freeze({
  minDelayMs: 250,
  maxDelayMs: 5_000,
  maxAttempts: Number.POSITIVE_INFINITY,
  healthyAfterMs: 10_000,
})

/** Largest delay a Node timer honours. */
const MAX_TIMER_MS = 2 ** 31 - 1

function describe(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v)
}

function intOption(value: unknown, name: string, min: number, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_TIMER_MS) {
    throw new InvalidArgumentError(`reconnect.${name} must be an integer in ${min}..${MAX_TIMER_MS}, got ${describe(value)}`)
  }
  return value
}

/** Validates reconnect options and fills in the defaults (InvalidArgumentError, ERR_INVALID_ARG). */
export function resolveReconnectOptions(options: ReconnectOptions | undefined): ResolvedReconnectOptions {
  if (options === undefined) return RECONNECT_DEFAULTS
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('reconnect must be an object')
  const minDelayMs = intOption(options.minDelayMs, 'minDelayMs', 1, RECONNECT_DEFAULTS.minDelayMs)
  const maxDelayMs = intOption(options.maxDelayMs, 'maxDelayMs', 1, Math.max(RECONNECT_DEFAULTS.maxDelayMs, minDelayMs))
  if (maxDelayMs < minDelayMs) {
    throw new InvalidArgumentError(`reconnect.maxDelayMs (${maxDelayMs}) must not be below reconnect.minDelayMs (${minDelayMs})`)
  }
  const healthyAfterMs = intOption(options.healthyAfterMs, 'healthyAfterMs', 0, RECONNECT_DEFAULTS.healthyAfterMs)
  const maxAttempts = options.maxAttempts ?? RECONNECT_DEFAULTS.maxAttempts
  if (maxAttempts !== Number.POSITIVE_INFINITY && (typeof maxAttempts !== 'number' || !Number.isSafeInteger(maxAttempts) || maxAttempts < 1)) {
    throw new InvalidArgumentError(`reconnect.maxAttempts must be a positive integer or Infinity, got ${describe(maxAttempts)}`)
  }
  return Object.freeze({ minDelayMs, maxDelayMs, maxAttempts, healthyAfterMs })
}

/** The un-jittered delay after `failures` consecutive failures (≥ 1): min · 2^(failures−1), capped. */
export function backoffBase(failures: number, options: ResolvedReconnectOptions): number {
  const exp = Math.min(Math.max(failures, 1) - 1, 30)
  return Math.min(options.maxDelayMs, options.minDelayMs * 2 ** exp)
}

/** The jittered delay: uniform in [base/2, base], whole milliseconds, at least 1. */
export function backoffDelay(failures: number, options: ResolvedReconnectOptions, random: () => number = Math.random): number {
  const base = backoffBase(failures, options)
  return Math.max(1, Math.round(base / 2 + random() * (base / 2)))
}

/**
 * The monitor closed a handshake with an application close. Addons before the
 * HANDSHAKE_DONE change report it as ERR_PEER_REJECTED with this message; its code
 * decides (only 2 UNAUTHORIZED is a refusal).
 */
const HANDSHAKE_APP_CLOSE = /closed the connection during the handshake \(code (\d+)\)/

/**
 * Whether a failed dial ends the channel for good: the monitor's identity changed
 * (ERR_PIN_MISMATCH), or its admission refused our certificate (ERR_PEER_REJECTED from a
 * TLS refusal, or an application close with code 2 UNAUTHORIZED). Everything else —
 * handshake timeout or failure, an application close with another code (5 "busy"),
 * idle timeout, stateless reset, network errors — is transient.
 */
export function isFinalDialError(error: CribcallError): boolean {
  if (error.code === 'ERR_PIN_MISMATCH') return true
  if (error.code !== 'ERR_PEER_REJECTED') return false
  const app = HANDSHAKE_APP_CLOSE.exec(error.message)
  return app === null || Number(app[1]) === ErrorCode.UNAUTHORIZED
}

/**
 * Whether the close of an established connection ends the channel: the monitor closed
 * it with 2 UNAUTHORIZED (revoked, not paired). A close with a library-level cause
 * (`errorCode`: idle timeout, stateless reset, endpoint closed, …) never is.
 */
export function isFinalClose(info: CloseInfo): boolean {
  return info.errorCode === undefined && info.byPeer && info.application && info.code === ErrorCode.UNAUTHORIZED
}

/**
 * Whether a final close means the monitor refused this listener (revocation, or a
 * refused certificate) rather than something else (a changed monitor identity, giving up).
 */
export function isRefusal(info: CloseInfo): boolean {
  return info.errorCode === 'ERR_PEER_REJECTED' || isFinalClose(info)
}

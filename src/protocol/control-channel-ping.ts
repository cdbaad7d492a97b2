// Application-level round trips of a ControlChannel: the PINGs it sent and awaits a
// PONG for, and ping()'s promise with its timeout and abort signal.
import { AbortError, CribcallError } from '../transport/errors.js'
import type { PingOptions } from './control-channel-types.js'

/** What a waiting ping() is told: the round trip in ms, or why it failed. */
export interface PingWaiter {
  readonly resolve: (ms: number) => void
  readonly reject: (e: Error) => void
}

interface PendingPing extends PingWaiter {
  readonly started: number
}

/** The PINGs a channel sent and awaits a PONG for, keyed by their timestamp. */
export class PendingPings {
  readonly #pings = new Map<number, PendingPing>()
  #lastStamp = 0

  /**
   * Sends one PING through `send` with a fresh timestamp (the wall clock, strictly
   * increasing) and returns it. `send` throws (NotAllowedError on a pairing-only
   * channel, ConnectionClosedError, ...) before anything is registered, so a failed
   * ping leaves no pending entry behind. `waiter`, if any, hears of the PONG.
   */
  send(send: (stamp: number) => void, waiter?: PingWaiter): number {
    const stamp = Math.max(Date.now(), this.#lastStamp + 1)
    const started = performance.now()
    send(stamp)
    this.#lastStamp = stamp
    if (waiter !== undefined) this.#pings.set(stamp, { ...waiter, started })
    return stamp
  }

  /** A PONG arrived: its PING's waiter, if any, gets the round trip. */
  pong(stamp: number): void {
    const p = this.#pings.get(stamp)
    if (p !== undefined) p.resolve(performance.now() - p.started)
  }

  /** The waiter of `stamp` gave up (answered, timed out or aborted). */
  forget(stamp: number): void {
    this.#pings.delete(stamp)
  }

  /** The channel closed: every waiter fails with the error `reason` makes. */
  rejectAll(reason: () => Error): void {
    for (const p of this.#pings.values()) p.reject(reason())
    this.#pings.clear()
  }
}

/**
 * One round trip: `sendPing` sends a PING registered with the waiter it is given and
 * returns its stamp; resolves with the ms until the PONG. Rejects with AbortError when
 * `options.signal` aborts, ERR_PING_TIMEOUT after `options.timeoutMs` (default 10,000),
 * or with what `sendPing` threw.
 */
export function roundTrip(
  pings: PendingPings,
  sendPing: (waiter: PingWaiter) => number,
  options: PingOptions,
): Promise<number> {
  const { signal } = options
  const timeoutMs = options.timeoutMs ?? 10_000
  if (signal?.aborted) return Promise.reject(new AbortError(signal.reason))
  return new Promise<number>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined
    let stamp = 0
    const cleanup = (): void => {
      pings.forget(stamp)
      if (timer !== undefined) clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
    const onAbort = (): void => {
      cleanup()
      reject(new AbortError(signal?.reason))
    }
    try {
      stamp = sendPing({
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

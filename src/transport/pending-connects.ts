// The connect() attempts of an Endpoint that await their handshake, by native
// connection id: each settles once — with its Connection, the native failure, an
// abort, its timeout, or the endpoint's close.
import { Connection } from './connection.js'
import { AbortError, HandshakeTimeoutError, type CribcallError } from './errors.js'

/** One pending attempt: settle() resolves or rejects its promise (once; later calls are ignored). */
export interface PendingConnect {
  settle(result: Connection | CribcallError): void
}

/** What wait() needs of a connect() attempt: where it goes (for the timeout message), its signal and timeout. */
export interface ConnectAttempt {
  readonly host: string
  readonly port: number
  readonly signal: AbortSignal | undefined
  readonly timeoutMs: number | undefined
}

/** An endpoint's pending connect() attempts, by native connection id. */
export class PendingConnects {
  readonly #pending = new Map<number, PendingConnect>()

  /**
   * Registers attempt `connId`; the promise resolves with the Connection settle() gives
   * and rejects with the error it gives, with AbortError when the attempt's signal
   * aborts, or with HandshakeTimeoutError after its timeoutMs. An attempt given up
   * (abort, timeout) rejects first, then `closeNative` closes its half-open native
   * connection.
   */
  wait(connId: number, attempt: ConnectAttempt, closeNative: () => void): Promise<Connection> {
    const { host, port, signal, timeoutMs } = attempt
    return new Promise<Connection>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const entry: PendingConnect = {
        settle: (result) => {
          if (this.#pending.get(connId) !== entry) return
          this.#pending.delete(connId)
          if (timer !== undefined) clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          if (result instanceof Connection) resolve(result)
          else reject(result)
        },
      }
      // Gives up on the attempt: rejects, then closes the half-open native connection.
      const abandon = (error: CribcallError): void => {
        if (this.#pending.get(connId) !== entry) return
        entry.settle(error)
        try {
          closeNative()
        } catch {
          // Already gone natively; any later event for connId is ignored.
        }
      }
      const onAbort = (): void => abandon(new AbortError(signal?.reason))
      this.#pending.set(connId, entry)
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () => abandon(new HandshakeTimeoutError(`no handshake with ${host}:${port} within ${timeoutMs} ms`)),
          timeoutMs,
        )
      }
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Attempt `connId`, if it is still pending. */
  get(connId: number): PendingConnect | undefined {
    return this.#pending.get(connId)
  }

  /** Rejects every pending attempt, each with a new error from `error`. */
  rejectAll(error: () => CribcallError): void {
    for (const pending of this.#pending.values()) pending.settle(error())
  }
}

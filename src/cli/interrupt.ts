// Ctrl-C / SIGTERM handling and abortable waits of cribcall-agent.
import { EXIT, fail } from './output.js'

/** Ctrl-C / SIGTERM: run `close` once, then exit (a second Ctrl-C exits at once with 130). */
export function onInterrupt(close: () => Promise<void>, exitCode: number = EXIT.OK): void {
  let closing = false
  const handler = (): void => {
    if (closing) process.exit(EXIT.INTERRUPTED)
    closing = true
    close().then(
      () => process.exit(exitCode),
      (e: unknown) => fail(e),
    )
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
}

/** Rejects when `signal` aborts; `start` returns its cleanup. */
export function abortable<T>(signal: AbortSignal, start: (resolve: (v: T) => void, reject: (e: unknown) => void) => () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const onAbort = (): void => {
      cleanup()
      reject(signal.reason)
    }
    const cleanup = start(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

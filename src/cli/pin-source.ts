// Where `pair` gets the PIN when --pin is not given: a prompt on a terminal, else one
// line of stdin per attempt (so scripts can pipe the PIN in once the monitor shows it).
import { createInterface, type Interface } from 'node:readline'
import { CribcallError } from '../index.js'
import { abortable } from './interrupt.js'
import { PIN_RE } from './options.js'
import { emit, UsageError } from './output.js'

export interface PinRequest {
  attempt: number
  maxAttempts: number
  expiresInSec: number
  pairingSessionId: string
  signal: AbortSignal
}

/** What the user is told when the monitor asks again: the previous PIN was wrong. */
export function wrongPinLine(info: Pick<PinRequest, 'attempt' | 'maxAttempts'>): string {
  const left = info.maxAttempts - info.attempt + 1
  return `wrong PIN: the monitor rejected it (${left} attempt${left === 1 ? '' : 's'} left)`
}

export class PinSource {
  #rl: Interface | undefined
  readonly #lines: string[] = []
  readonly #waiters = new Set<(line: string | undefined) => void>()
  #ended = false

  async next(info: PinRequest): Promise<string> {
    if (info.attempt > 1) {
      emit('pin-rejected', { attempt: info.attempt - 1, maxAttempts: info.maxAttempts }, wrongPinLine(info))
    }
    if (process.stdin.isTTY) {
      for (;;) {
        const pin = (await this.#question(`PIN shown on the monitor (attempt ${info.attempt}/${info.maxAttempts}): `, info.signal)).trim()
        if (PIN_RE.test(pin)) return pin
        process.stderr.write('a PIN is exactly 6 digits\n')
      }
    }
    emit(
      'pin-required',
      { pairingSessionId: info.pairingSessionId, expiresInSec: info.expiresInSec, attempt: info.attempt, maxAttempts: info.maxAttempts },
      `enter the PIN shown on the monitor (attempt ${info.attempt}/${info.maxAttempts}, expires in ${info.expiresInSec} s)`,
    )
    for (;;) {
      const line = await this.#line(info.signal)
      if (line === undefined) {
        if (info.attempt > 1) throw new CribcallError('ERR_PAIRING_REJECTED', 'wrong PIN: the monitor rejected it, and stdin ended before another')
        throw new UsageError('no --pin given and stdin ended without a PIN')
      }
      const pin = line.trim()
      if (pin === '') continue
      if (!PIN_RE.test(pin)) throw new UsageError(`invalid PIN '${pin}' (expected 6 digits)`)
      return pin
    }
  }

  close(): void {
    this.#rl?.close()
    this.#rl = undefined
  }

  /**
   * One prompt on the terminal. The terminal is in raw mode while it waits, so Ctrl-C
   * arrives as a key, not a signal: it is turned back into SIGINT for the process (the
   * interrupt handler exits 130), after the terminal is restored.
   */
  #question(prompt: string, signal: AbortSignal): Promise<string> {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true })
    rl.on('SIGINT', () => {
      rl.close()
      process.stderr.write('\n')
      process.kill(process.pid, 'SIGINT')
    })
    return abortable<string>(signal, (resolve) => {
      rl.question(prompt, (answer) => {
        rl.close()
        resolve(answer)
      })
      return () => rl.close()
    })
  }

  #line(signal: AbortSignal): Promise<string | undefined> {
    if (this.#rl === undefined && !this.#ended) {
      const rl = createInterface({ input: process.stdin, terminal: false })
      rl.on('line', (line) => {
        const [w] = this.#waiters
        if (w === undefined) this.#lines.push(line)
        else {
          this.#waiters.delete(w)
          w(line)
        }
      })
      rl.on('close', () => {
        this.#ended = true
        for (const w of this.#waiters) w(undefined)
        this.#waiters.clear()
      })
      this.#rl = rl
    }
    const queued = this.#lines.shift()
    if (queued !== undefined) return Promise.resolve(queued)
    if (this.#ended) return Promise.resolve(undefined)
    return abortable<string | undefined>(signal, (resolve) => {
      this.#waiters.add(resolve)
      return () => this.#waiters.delete(resolve)
    })
  }
}

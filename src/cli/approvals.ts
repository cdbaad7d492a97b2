// `cribcall-agent monitor`: the operator approves each new listener (unless
// --auto-approve). On a terminal (stdin a TTY, no --json) each request is a y/N prompt
// answered by the next line that is not a monitor command; otherwise (--json, or stdin
// not a terminal) each request is an `approve-request` event, answered by the stdin
// lines `approve <listenerId>` / `refuse <listenerId>`. Both forms of answer work in
// both modes.
import type { PairingRequestInfo } from '../index.js'

export interface ApprovalOutput {
  /** y/N prompts (stdin is a terminal and --json is off). */
  readonly interactive: boolean
  /** An event line (JSON with --json, else the human text). */
  emit(event: string, fields: Record<string, unknown>, human: string): void
  /** The interactive prompt (no newline: the answer is typed after it). */
  prompt(text: string): void
}

export type AnswerResult = { readonly ok: true } | { readonly ok: false; readonly message: string }

interface Pending {
  readonly id: string
  readonly info: PairingRequestInfo
  readonly settle: (approved: boolean) => void
}

function addressOf(info: PairingRequestInfo): string {
  const { host, port } = info.remoteAddress
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

function describe(info: PairingRequestInfo): string {
  const how = info.method === 'qr' ? (info.legacyQr ? 'QR, legacy: no proof it read the QR code' : 'QR') : 'PIN'
  return `"${info.listenerName}" (${info.listenerId}, fingerprint ${info.fingerprint.slice(0, 16)}…, ${addressOf(info)}, by ${how})`
}

export class Approvals {
  readonly #out: ApprovalOutput
  readonly #queue: Pending[] = []
  /** The request the interactive prompt is showing. */
  #prompted: Pending | undefined
  #inputEnded = false
  #prompts = 0

  constructor(out: ApprovalOutput) {
    this.#out = out
  }

  /** Requests waiting for an answer, oldest first. */
  get pending(): readonly PairingRequestInfo[] {
    return this.#queue.map((p) => p.info)
  }

  /** How many prompts were written so far. */
  get promptCount(): number {
    return this.#prompts
  }

  /** True when an interactive prompt waits for its y/N line. */
  get awaitingAnswer(): boolean {
    return this.#prompted !== undefined
  }

  /** The monitor's `approve` hook: resolves once the operator answered (or the request became moot). */
  request(info: PairingRequestInfo): Promise<boolean> {
    if (this.#inputEnded) {
      this.#out.emit(
        'approve-cancelled',
        { listenerId: info.listenerId, fingerprint: info.fingerprint, reason: 'stdin closed' },
        `refused ${describe(info)}: stdin is closed, nobody can approve (use --auto-approve)`,
      )
      return Promise.resolve(false)
    }
    if (info.signal.aborted) return Promise.resolve(false)
    return new Promise<boolean>((resolve) => {
      const onAbort = (): void => {
        if (!this.#remove(pending)) return
        const reason = info.signal.reason instanceof Error ? info.signal.reason.message : 'cancelled'
        this.#out.emit(
          'approve-cancelled',
          { listenerId: info.listenerId, fingerprint: info.fingerprint, reason },
          `pairing request of ${describe(info)} withdrawn: ${reason}`,
        )
        resolve(false)
        this.#promptNext()
      }
      const pending: Pending = {
        id: info.listenerId.toLowerCase(),
        info,
        settle: (approved) => {
          info.signal.removeEventListener('abort', onAbort)
          resolve(approved)
        },
      }
      info.signal.addEventListener('abort', onAbort, { once: true })
      this.#queue.push(pending)
      if (this.#out.interactive) {
        this.#promptNext()
      } else {
        this.#out.emit(
          'approve-request',
          {
            listenerId: info.listenerId,
            name: info.listenerName,
            fingerprint: info.fingerprint,
            method: info.method,
            address: addressOf(info),
            legacy: info.legacyQr,
          },
          `listener ${describe(info)} asks to pair; answer 'approve ${info.listenerId}' or 'refuse ${info.listenerId}'`,
        )
      }
    })
  }

  /** `approve <listenerId>` / `refuse <listenerId>`: answers the oldest request of that listener. */
  answer(listenerId: string, approved: boolean): AnswerResult {
    const id = listenerId.toLowerCase()
    const p = this.#queue.find((q) => q.id === id)
    if (p === undefined) return { ok: false, message: `no pairing request from ${listenerId} is waiting for an answer` }
    this.#settle(p, approved)
    return { ok: true }
  }

  /** The line typed after an interactive prompt: y or yes approves, anything else (Enter included) refuses. */
  answerPrompt(line: string): void {
    const p = this.#prompted
    if (p === undefined) return
    this.#settle(p, /^y(es)?$/i.test(line.trim()))
  }

  /** Shows the waiting prompt again (after a command ran in between). */
  repeatPrompt(): void {
    if (this.#prompted !== undefined) this.#writePrompt(this.#prompted)
  }

  /** stdin ended: nobody can answer any more; waiting and later requests are refused. */
  inputEnded(): void {
    this.#inputEnded = true
    for (const p of [...this.#queue]) this.#settle(p, false)
  }

  #settle(p: Pending, approved: boolean): void {
    if (!this.#remove(p)) return
    p.settle(approved)
    this.#promptNext()
  }

  #remove(p: Pending): boolean {
    const i = this.#queue.indexOf(p)
    if (i === -1) return false
    this.#queue.splice(i, 1)
    if (this.#prompted === p) this.#prompted = undefined
    return true
  }

  #promptNext(): void {
    if (!this.#out.interactive || this.#prompted !== undefined) return
    const next = this.#queue[0]
    if (next === undefined) return
    this.#prompted = next
    this.#writePrompt(next)
  }

  #writePrompt(p: Pending): void {
    this.#prompts++
    this.#out.prompt(`Pair listener ${describe(p.info)}? [y/N] `)
  }
}

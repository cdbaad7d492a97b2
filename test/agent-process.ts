// A `cribcall-agent … --json` child process for the long-running tests (restart, soak):
// its JSON events, each stamped with the test process's clock when its line arrived,
// waits for events, and an exit promise. Runs `node dist/cli/main.js` (build first).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createWriteStream, type WriteStream } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js')

export type AgentEvent = Record<string, unknown> & {
  event: string
  /** performance.now() in the test process when the line arrived. */
  at: number
}

export class AgentProcess {
  readonly child: ChildProcessWithoutNullStreams
  readonly events: AgentEvent[] = []
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  /** Last lines of stderr and non-JSON stdout, for failure messages. */
  #log: string[] = []
  #partial = ''
  readonly #waiters = new Set<() => void>()
  readonly #onEvent: ((e: AgentEvent) => void) | undefined

  constructor(
    readonly args: readonly string[],
    /** `stderrFile`: also append the child's stderr there (e.g. its CRIBCALL_LOG=debug lines). */
    options: { env?: NodeJS.ProcessEnv; onEvent?: (e: AgentEvent) => void; stderrFile?: string } = {},
  ) {
    this.#onEvent = options.onEvent
    this.child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env } })
    const file: WriteStream | undefined = options.stderrFile === undefined ? undefined : createWriteStream(options.stderrFile, { flags: 'a' })
    if (file !== undefined) {
      this.child.stderr.on('data', (chunk: string) => file.write(chunk))
      this.child.on('close', () => file.end())
    }
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const at = performance.now()
      this.#partial += chunk
      let nl: number
      while ((nl = this.#partial.indexOf('\n')) !== -1) {
        const line = this.#partial.slice(0, nl)
        this.#partial = this.#partial.slice(nl + 1)
        let e: AgentEvent | undefined
        if (line.startsWith('{')) {
          try {
            e = { ...(JSON.parse(line) as Record<string, unknown> & { event: string }), at }
          } catch {
            e = undefined
          }
        }
        if (e === undefined) this.#remember(`stdout: ${line}`)
        else {
          this.events.push(e)
          this.#onEvent?.(e)
        }
      }
      this.#wake()
    })
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line !== '') this.#remember(`stderr: ${line}`)
      this.#wake()
    })
    this.child.stdin.on('error', () => undefined) // EPIPE once it died
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal }
        this.#wake()
        resolve(this.exit)
      })
    })
  }

  #remember(line: string): void {
    this.#log.push(line)
    if (this.#log.length > 50) this.#log.shift()
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w()
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  get running(): boolean {
    return this.exit === undefined
  }

  describe(): string {
    const last = this.events.slice(-15).map((e) => JSON.stringify(e))
    return `cribcall-agent ${this.args.join(' ')} (pid ${this.pid}, exit ${JSON.stringify(this.exit)})\n  last events:\n    ${last.join('\n    ')}\n  output:\n    ${this.#log.join('\n    ')}`
  }

  /** The first event from index `from` on named `name` that satisfies `match`; waits up to `ms`. */
  waitFor(name: string, match: (e: AgentEvent) => boolean = () => true, ms = 10_000, from = 0): Promise<AgentEvent> {
    return new Promise<AgentEvent>((resolve, reject) => {
      let i = from
      const check = (): void => {
        for (; i < this.events.length; i++) {
          const e = this.events[i]!
          if (e.event === name && match(e)) {
            done()
            return resolve(e)
          }
        }
        if (this.exit !== undefined) {
          done()
          reject(new Error(`process exited before printing '${name}'\n${this.describe()}`))
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`no '${name}' event within ${ms} ms\n${this.describe()}`))
      }, ms)
      const done = (): void => {
        clearTimeout(timer)
        this.#waiters.delete(check)
      }
      this.#waiters.add(check)
      check()
    })
  }

  write(line: string): void {
    this.child.stdin.write(line + '\n')
  }

  /** Sends `signal` (if still running). */
  signal(signal: NodeJS.Signals): void {
    if (this.exit === undefined) this.child.kill(signal)
  }

  /** SIGKILL (also resumes nothing: a stopped process dies too); resolves once it exited. */
  /** The exit code once the process ended; fails after `ms`. */
  async waitExit(ms = 15_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined
    try {
      const exit = await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still running after ${ms} ms\n${this.describe()}`)), ms))),
      ])
      return exit.code
    } finally {
      clearTimeout(timer)
    }
  }

  async kill(): Promise<void> {
    this.signal('SIGKILL')
    await this.exited
  }
}

/** The value at quantile q (0..1) of `values` (nearest rank). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[i]!
}

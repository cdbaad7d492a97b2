// The `cribcall-agent` processes of cli.test.ts: each command is a separate
// `node dist/cli/main.js …` process (run `npm run build` first) with its state in a temp
// directory of the test file; its JSON events, raw output and exit.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync, promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect } from 'vitest'

const here = path.dirname(fileURLToPath(import.meta.url))
const CLI = path.join(here, '..', 'dist', 'cli', 'main.js')
export const HOST = '127.0.0.1'

type Event = Record<string, unknown> & { event: string }

let root = ''
const procs: Agent[] = []

/**
 * Call once at the top level of the test file: before its tests, a fresh temp root for the
 * state directories (dir()); after them, every process still running is killed and the
 * root removed.
 */
export function useCliSandbox(): void {
  beforeAll(async () => {
    expect(existsSync(CLI), `${CLI} is missing: run 'npm run build' (or 'npx tsc -p tsconfig.json') first`).toBe(true)
    root = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-cli-'))
  })

  afterAll(async () => {
    for (const p of procs) if (p.exit === undefined) p.child.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
    if (root !== '') await fs.rm(root, { recursive: true, force: true })
  })
}

/** A running `cribcall-agent` process: its JSON events, raw output and exit. */
export class Agent {
  readonly child: ChildProcessWithoutNullStreams
  readonly events: Event[] = []
  stdout = ''
  stderr = ''
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly #waiters = new Set<() => void>()
  #partial = ''

  constructor(
    readonly args: readonly string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    this.child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      // Never the user's real config directory.
      env: { ...process.env, CRIBCALL_AGENT_DIR: path.join(root, 'default-dir'), ...env },
    })
    this.child.stdout.setEncoding('utf8')
    this.child.stderr.setEncoding('utf8')
    this.child.stdout.on('data', (chunk: string) => {
      this.stdout += chunk
      this.#partial += chunk
      let nl: number
      while ((nl = this.#partial.indexOf('\n')) !== -1) {
        const line = this.#partial.slice(0, nl)
        this.#partial = this.#partial.slice(nl + 1)
        if (line.startsWith('{')) {
          try {
            this.events.push(JSON.parse(line) as Event)
          } catch {
            // not an event line; kept in stdout
          }
        }
      }
      this.#wake()
    })
    this.child.stderr.on('data', (chunk: string) => {
      this.stderr += chunk
      this.#wake()
    })
    this.child.stdin.on('error', () => undefined) // EPIPE after the process exited
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal }
        this.#wake()
        resolve(this.exit)
      })
    })
    procs.push(this)
  }

  #wake(): void {
    for (const w of this.#waiters) w()
  }

  /** What the process printed, for failure messages. */
  describe(): string {
    return `cribcall-agent ${this.args.join(' ')}\n--- stdout:\n${this.stdout}--- stderr:\n${this.stderr}--- exit: ${JSON.stringify(this.exit)}`
  }

  /** The first event (from `from` on) named `name` that satisfies `match`; waits for it. */
  waitFor(name: string, match: (e: Event) => boolean = () => true, ms = 10_000, from = 0): Promise<Event> {
    const find = (): Event | undefined => this.events.slice(from).find((e) => e.event === name && match(e))
    return new Promise<Event>((resolve, reject) => {
      const check = (): void => {
        const e = find()
        if (e !== undefined) {
          done()
          resolve(e)
        } else if (this.exit !== undefined) {
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

  /** Resolves with the exit once the process ended; fails after `ms`. */
  async waitExit(ms = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const t0 = performance.now()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still running after ${ms} ms\n${this.describe()}`)), ms)
    })
    try {
      const r = await Promise.race([this.exited, timeout])
      return { ...r, ms: performance.now() - t0 }
    } finally {
      clearTimeout(timer)
    }
  }

  write(line: string): void {
    this.child.stdin.write(line + '\n')
  }
}

/** Runs a short-lived command to its end. */
export async function run(args: readonly string[], options: { env?: NodeJS.ProcessEnv; ms?: number } = {}): Promise<Agent & { code: number | null }> {
  const a = new Agent(args, options.env)
  a.child.stdin.end()
  const { code } = await a.waitExit(options.ms ?? 15_000)
  return Object.assign(a, { code })
}

export const dir = (name: string): string => path.join(root, name)
export const mode = async (p: string): Promise<number> => (await fs.stat(p)).mode & 0o777
const stderrLines = (a: Agent): string[] => a.stderr.split('\n').filter((l) => l.trim() !== '')

/** Every stdout line of a --json process is one JSON object with an "event" name. */
export function expectOnlyJsonLines(a: Agent): void {
  for (const line of a.stdout.split('\n').filter((l) => l !== '')) {
    const v = JSON.parse(line) as unknown
    expect(v, line).toMatchObject({ event: expect.any(String) })
  }
}

/** One line on stderr, a non-zero exit, no stack trace. */
export function expectCleanFailure(a: Agent & { code: number | null }, exitCode: number, pattern: RegExp): void {
  expect(a.code, a.describe()).toBe(exitCode)
  const lines = stderrLines(a)
  expect(lines, a.describe()).toHaveLength(1)
  expect(lines[0]).toMatch(/^cribcall-agent: /)
  expect(lines[0]).toMatch(pattern)
  expect(a.stderr).not.toMatch(/^\s+at /m)
}

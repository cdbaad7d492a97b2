// Orchestrator side of the worker processes: starting a worker (child_process.fork of a
// bench/workers/ script, or through `sh -c 'ulimit -n N; exec node …'` when it needs more
// file descriptors than the current soft limit), request/response calls over IPC with a
// timeout, and the guarantee that no worker outlives the orchestrator: every worker is
// registered, killed on shutdown, on a failed run, and on the orchestrator's own exit,
// SIGINT or SIGTERM. (Workers also exit when their IPC channel closes.)
import { execFileSync, fork, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const live = new Set()

function killAll() {
  for (const w of live) w.kill()
}

process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    killAll()
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1))
  })
}

/** The soft and hard RLIMIT_NOFILE of this process (as `ulimit -n` / `ulimit -Hn` report them). */
export function fdLimits() {
  try {
    const [soft, hard] = execFileSync('/bin/sh', ['-c', 'ulimit -n; ulimit -Hn'], { encoding: 'utf8' }).trim().split('\n')
    const parse = (v) => (v === 'unlimited' ? Infinity : Number(v))
    return { soft: parse(soft), hard: parse(hard) }
  } catch {
    return { soft: NaN, hard: NaN }
  }
}

const STDERR_TAIL = 4000

export class Worker {
  #child
  #pending = new Map()
  #nextId = 1
  #exit
  #stderr = ''
  #fatal = null
  #ready

  /**
   * @param script path of the worker module (relative to bench/workers/ or a URL)
   * @param label  name used in errors, e.g. 'fanout/quic client 2'
   * @param nofile file-descriptor limit the worker needs (spawned through sh + ulimit when above the soft limit)
   */
  constructor(script, { label, nofile } = {}) {
    this.label = label ?? script
    const path = fileURLToPath(new URL(`../workers/${script}`, import.meta.url))
    const execArgv = ['--expose-gc']
    const stdio = ['ignore', 'inherit', 'pipe', 'ipc']
    if (nofile !== undefined) {
      this.#child = spawn('/bin/sh', ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, process.execPath, ...execArgv, path], { stdio })
    } else {
      this.#child = fork(path, [], { execArgv, stdio })
    }
    live.add(this)
    this.#child.stderr.setEncoding('utf8')
    this.#child.stderr.on('data', (chunk) => {
      this.#stderr = (this.#stderr + chunk).slice(-STDERR_TAIL)
    })
    this.#exit = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        live.delete(this)
        const why = this.#fatal ?? `exited (code ${code}, signal ${signal})`
        const error = new Error(`worker ${this.label} ${why}${this.#stderr ? `\n--- its stderr:\n${this.#stderr.trim()}` : ''}`)
        for (const p of this.#pending.values()) p.reject(error)
        this.#pending.clear()
        resolve({ code, signal })
      })
    })
    this.#ready = new Promise((resolve, reject) => {
      this.#pending.set(0, { resolve, reject })
    })
    this.#child.on('message', (msg) => {
      if (msg === null || typeof msg !== 'object') return
      if (msg.id === -1) {
        this.#fatal = msg.error
        return
      }
      const p = this.#pending.get(msg.id)
      if (p === undefined) return
      this.#pending.delete(msg.id)
      if (msg.ok) p.resolve(msg.result)
      else p.reject(new Error(`worker ${this.label}: ${msg.error}`))
    })
    this.#child.on('error', (error) => {
      for (const p of this.#pending.values()) p.reject(error)
      this.#pending.clear()
    })
  }

  get pid() {
    return this.#child.pid
  }

  /** Resolves once the worker's IPC loop is up. */
  ready(timeoutMs = 20_000) {
    return withTimeout(this.#ready, timeoutMs, `worker ${this.label} to start`)
  }

  /** Sends one request; resolves with the worker's result or rejects with its error. */
  call(op, args = {}, timeoutMs = 60_000) {
    const id = this.#nextId++
    const reply = new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      try {
        this.#child.send({ id, op, args })
      } catch (error) {
        this.#pending.delete(id)
        reject(error)
      }
    })
    return withTimeout(reply, timeoutMs, `worker ${this.label}: ${op}`).finally(() => this.#pending.delete(id))
  }

  /** Asks the worker to exit, then kills it if it has not after graceMs. */
  async stop(graceMs = 3000) {
    if (!live.has(this)) return
    this.call('exit', {}, graceMs).catch(() => undefined)
    const timer = setTimeout(() => this.kill(), graceMs)
    await this.#exit
    clearTimeout(timer)
  }

  kill() {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL')
  }

  exited() {
    return this.#exit
  }
}

/** Rejects with "timed out after … waiting for <what>" unless the promise settles first. */
export function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${(ms / 1000).toFixed(1)} s waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Workers currently alive (for the final orphan check). */
export function liveWorkers() {
  return live.size
}

/**
 * The workers of one run of one workload. spawn() starts a worker and waits until it is
 * ready; shutdown() stops every one of them (gracefully, then SIGKILL), whatever happened.
 * `phase` names what the run is doing, for timeout messages.
 */
export class RunContext {
  phase = 'starting'
  #workers = []
  #closed = false

  constructor(label) {
    this.label = label
  }

  async spawn(script, label, options = {}) {
    // A run that outlived its deadline must not start workers after its shutdown.
    if (this.#closed) throw new Error(`${this.label}: run already shut down`)
    const w = new Worker(script, { label: `${this.label} ${label}`, ...options })
    this.#workers.push(w)
    await w.ready()
    return w
  }

  async shutdown() {
    this.#closed = true
    await Promise.all(this.#workers.map((w) => w.stop()))
  }
}

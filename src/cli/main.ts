#!/usr/bin/env node
// cribcall-agent: the headless pairing agent. Uses only the public API.
import { Command, CommanderError, Option } from 'commander'
import { mkdtemp, rm } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import path from 'node:path'
import { createInterface, type Interface } from 'node:readline'
import QRCode from 'qrcode'
import {
  AppErrorCode,
  CribcallError,
  FileTrustStore,
  Listener,
  MemoryTrustStore,
  Monitor,
  fingerprintOf,
  generateIdentity,
  loadOrCreateIdentity,
  parseQrPayload,
  type ControlChannel,
  type Identity,
  type ListenerChannel,
  type PairingRequestInfo,
  type TrustEntry,
} from '../index.js'
import { parseFingerprint as parseFingerprintText } from '../base/formats.js'
import { Approvals } from './approvals.js'
import type { WebConsole } from './web/index.js'

// ---------------------------------------------------------------- output

interface Out {
  json: boolean
  debug: boolean
}

const out: Out = { json: false, debug: false }

/** One event: a JSON line with --json, else a human line. */
function emit(event: string, fields: Record<string, unknown>, human: string): void {
  if (out.json) process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
  else process.stdout.write(human + '\n')
}

/** Bad input from the user: exit 2. */
class UsageError extends Error {
  readonly code: string
  constructor(message: string, code = 'ERR_USAGE') {
    super(message)
    this.code = code
  }
}

/** The `error` code of a failure: the library's code, ERR_USAGE for bad input, else ERR_FAILED. */
function codeOf(e: unknown): string {
  if (e instanceof CribcallError || e instanceof UsageError) return e.code
  return 'ERR_FAILED'
}

/** One line, whatever the message holds. */
function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim()
}

/** A non-fatal error: an `error` event with --json, else a line on stderr. */
function warn(e: unknown, extra: Record<string, unknown> = {}): void {
  const code = codeOf(e)
  const message = oneLine(e instanceof Error ? e.message : String(e))
  if (out.json) process.stdout.write(JSON.stringify({ event: 'error', code, message, ...extra }) + '\n')
  else process.stderr.write(`cribcall-agent: ${message}${code !== 'ERR_FAILED' ? ` [${code}]` : ''}\n`)
  if (out.debug && e instanceof Error && e.stack !== undefined) process.stderr.write(e.stack + '\n')
}

/**
 * A fatal error: one line on stderr (plus an `error` event with --json; the stack only
 * with --debug), then exit 2 for bad usage, 1 otherwise.
 */
function fail(e: unknown): never {
  const code = codeOf(e)
  const message = oneLine(e instanceof Error ? e.message : String(e))
  if (out.json) process.stdout.write(JSON.stringify({ event: 'error', code, message }) + '\n')
  process.stderr.write(`cribcall-agent: ${message}${code !== 'ERR_FAILED' ? ` [${code}]` : ''}\n`)
  if (out.debug && e instanceof Error && e.stack !== undefined) process.stderr.write(e.stack + '\n')
  process.exit(e instanceof UsageError ? EXIT.USAGE : EXIT.FAILURE)
}

/** Exit codes (documented in docs/cli.md). */
const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  /** watch: every paired monitor revoked or refused this listener. */
  REVOKED: 3,
  /** pair interrupted by Ctrl-C, or a second Ctrl-C while closing. */
  INTERRUPTED: 130,
} as const

// ---------------------------------------------------------------- helpers

/** The platform's config location: XDG on Linux, Application Support on macOS, APPDATA on Windows. */
function defaultDir(): string {
  if (process.env.CRIBCALL_AGENT_DIR !== undefined && process.env.CRIBCALL_AGENT_DIR !== '') return process.env.CRIBCALL_AGENT_DIR
  if (process.platform === 'win32') return path.join(process.env.APPDATA ?? path.join(homedir(), 'AppData', 'Roaming'), 'cribcall-agent')
  if (process.platform === 'darwin') return path.join(homedir(), 'Library', 'Application Support', 'cribcall-agent')
  const xdg = process.env.XDG_CONFIG_HOME
  return path.join(xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(homedir(), '.config'), 'cribcall-agent')
}

/** The monitor port when neither --port nor a QR payload gives one. */
const DEFAULT_PORT = 48080

function parsePort(v: string): number {
  const n = Number(v)
  if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`invalid port '${v}'`)
  return n
}

function parseFingerprint(v: string): string {
  const f = parseFingerprintText(v)
  if (f === undefined) throw new UsageError(`invalid fingerprint '${v}' (expected 64 hex digits, the SHA-256 of the monitor certificate)`)
  return f
}

function parsePositive(v: string): number {
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`expected a positive number, got '${v}'`)
  return n
}

async function open(dir: string, keyType?: 'p256' | 'ed25519'): Promise<{ identity: Identity; store: FileTrustStore }> {
  const identity = await loadOrCreateIdentity(path.join(dir, 'identity'), keyType === undefined ? {} : { keyType })
  const store = await FileTrustStore.open(path.join(dir, 'trust.json'))
  return { identity, store }
}

/** Ctrl-C / SIGTERM: run `close` once, then exit 0 (a second Ctrl-C exits at once with 130). */
function onInterrupt(close: () => Promise<void>, exitCode: number = EXIT.OK): void {
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

const PIN_RE = /^\d{6}$/

/** Rejects when `signal` aborts. */
function abortable<T>(signal: AbortSignal, start: (resolve: (v: T) => void, reject: (e: unknown) => void) => () => void): Promise<T> {
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

/**
 * Where `pair` gets the PIN when --pin is not given: a prompt on a terminal, else one
 * line of stdin per attempt (so scripts can pipe the PIN in once the monitor shows it).
 */
class PinSource {
  #rl: Interface | undefined
  readonly #lines: string[] = []
  readonly #waiters = new Set<(line: string | undefined) => void>()
  #ended = false

  async next(info: { attempt: number; maxAttempts: number; expiresInSec: number; pairingSessionId: string; signal: AbortSignal }): Promise<string> {
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
        if (info.attempt > 1) throw new CribcallError('ERR_PAIRING_REJECTED', 'the monitor rejected the PIN (INVALID_PIN)')
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

  #question(prompt: string, signal: AbortSignal): Promise<string> {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true })
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

function entryFields(e: TrustEntry): Record<string, unknown> {
  return { deviceId: e.deviceId, name: e.name, fingerprint: e.fingerprint, role: e.role, pairedAt: e.pairedAt, lastSeenAt: e.lastSeenAt, lastAddress: e.lastAddress }
}

// ---------------------------------------------------------------- commands

async function cmdIdentity(o: { dir: string; key?: 'p256' | 'ed25519' }): Promise<void> {
  const identity = await loadOrCreateIdentity(path.join(o.dir, 'identity'), o.key === undefined ? {} : { keyType: o.key })
  if (o.key !== undefined && identity.keyType !== o.key) {
    throw new UsageError(`an ${identity.keyType} identity already exists in ${o.dir}; it is never replaced`)
  }
  emit(
    'identity',
    { deviceId: identity.deviceId, keyType: identity.keyType, fingerprint: identity.fingerprint, publicKey: identity.publicKey, dir: o.dir },
    `device ${identity.deviceId} (${identity.keyType})\nfingerprint ${identity.fingerprint}\nstored in ${o.dir}`,
  )
}

interface MonitorCmd {
  dir: string
  host: string
  port: number
  name: string
  pair: 'qr' | 'pin' | 'both' | 'off'
  pairMinutes: number
  autoApprove?: boolean
  allowLegacyQr?: boolean
  /** --web [HOST:]PORT: the web console (src/cli/web/, loaded only then). */
  web?: { host: string; port: number }
}

async function cmdMonitor(o: MonitorCmd): Promise<void> {
  const { identity, store } = await open(o.dir)
  const monitor = await Monitor.start({ identity, trustStore: store, host: o.host, port: o.port, name: o.name })
  // Another process (`cribcall-agent trust revoke`) may change the trust store: reload it,
  // and the monitor disconnects revoked listeners at once.
  const unwatch = store.watch((e) => warn(e instanceof CribcallError ? e : new CribcallError('ERR_TRUST_STORE', `trust store: ${String(e)}`)))
  let web: WebConsole | undefined
  onInterrupt(async () => {
    unwatch()
    await web?.close()
    await monitor.close()
  })
  const { host, port } = monitor.address
  emit('listening', { host, port, fingerprint: identity.fingerprint, deviceId: identity.deviceId }, `monitor ${o.name} listening on ${host}:${port}\nfingerprint ${identity.fingerprint}`)

  // The entry of each live channel: a revoked listener's entry is gone from the store by
  // the time its channel closes, but its `disconnected` event still names it.
  const known = new Map<ControlChannel, TrustEntry>()
  monitor.on('listener-connected', ({ channel, entry }) => {
    if (entry !== undefined) known.set(channel, entry)
    emit('connected', { deviceId: entry?.deviceId ?? null, fingerprint: channel.peerFingerprint, trusted: channel.trust === 'trusted' }, `listener ${entry?.name ?? '(pairing)'} connected (${channel.peerFingerprint.slice(0, 16)}…)`)
  })
  monitor.on('listener-disconnected', ({ channel, entry: current, code, reason }) => {
    const entry = current ?? known.get(channel)
    known.delete(channel)
    emit('disconnected', { deviceId: entry?.deviceId ?? null, fingerprint: channel.peerFingerprint, code, reason }, `listener ${entry?.name ?? '(pairing)'} disconnected (${code} ${reason})`)
  })
  monitor.on('paired', ({ entry, method, channel }) => {
    known.set(channel, entry)
    emit('paired', { deviceId: entry.deviceId, name: entry.name, fingerprint: entry.fingerprint, method }, `paired ${entry.name} (${entry.deviceId}) by ${method}`)
  })
  monitor.on('pairing-failed', ({ method, reason, fingerprint }) => emit('pairing-failed', { method, reason, fingerprint }, `pairing failed (${method}): ${reason}`))
  monitor.on('revoked', (entry) => emit('revoked', { deviceId: entry.deviceId, fingerprint: entry.fingerprint }, `revoked ${entry.name} (${entry.deviceId})`))
  monitor.on('pairing-closed', ({ reason }) => emit('pairing-closed', { reason }, `pairing closed (${reason})`))
  monitor.on('error', (e) => warn(e))

  // Each new listener is approved by the operator unless --auto-approve: a y/N prompt
  // on a terminal, else an `approve-request` event answered by `approve|refuse <id>`.
  const approvals = new Approvals({
    interactive: process.stdin.isTTY === true && !out.json,
    emit,
    prompt: (text) => process.stderr.write(text),
  })
  const openPairing = async (minutes: number): Promise<void> => {
    if (o.pair === 'off') return
    monitor.openPairing({
      durationMs: Math.round(minutes * 60_000),
      allowQr: o.pair !== 'pin',
      allowPin: o.pair !== 'qr',
      allowLegacyQr: o.allowLegacyQr === true,
      ...(o.autoApprove === true ? {} : { approve: (request) => webTracked(web, request, approvals.request(request)) }),
      onPin: (pin, session) => {
        web?.pinShown(pin, session)
        emit('pin', { pin, pairingSessionId: session.pairingSessionId, expiresInSec: session.expiresInSec, listenerName: session.listenerName }, `PIN for ${session.listenerName}: ${pin} (expires in ${session.expiresInSec} s)`)
      },
    })
    const payload = monitor.pairingQrPayload()
    if (o.pair !== 'pin') {
      if (!out.json && process.stdout.isTTY) process.stdout.write(await QRCode.toString(payload, { type: 'terminal', small: true }))
      emit('qr', { payload }, `pairing QR payload: ${payload}`)
    }
    emit('pairing-opened', { minutes, qr: o.pair !== 'pin', pin: o.pair !== 'qr' }, `pairing open for ${minutes} min (${o.pair === 'both' ? 'QR and PIN' : o.pair.toUpperCase()})`)
  }
  if (o.web !== undefined) web = await startMonitorConsole(o, o.web, monitor, approvals, openPairing)
  await openPairing(o.pairMinutes)

  const rl = createInterface({ input: process.stdin, terminal: false })
  // With the web console, requests can still be answered there once stdin has ended.
  rl.on('close', () => {
    if (web === undefined) approvals.inputEnded()
  })
  rl.on('line', (line) => {
    const [cmd, arg] = line.trim().split(/\s+/)
    const prompts = approvals.promptCount
    try {
      const known = cmd !== undefined && MONITOR_COMMANDS.has(cmd)
      // On a terminal, any other line (Enter included) answers the y/N prompt shown.
      if (!known && approvals.awaitingAnswer) return approvals.answerPrompt(line)
      if (cmd === undefined || cmd === '') return
      if (cmd === 'approve' || cmd === 'refuse') {
        if (arg === undefined) throw new UsageError(`usage: ${cmd} <listenerId>`)
        const r = approvals.answer(arg, cmd === 'approve')
        if (!r.ok) warn(new CribcallError('ERR_NOT_FOUND', r.message))
      } else if (cmd === 'noise') {
        const level = Number(arg)
        if (arg === undefined || !/^\d{1,3}$/.test(arg) || level > 100) throw new UsageError('usage: noise <level 0-100>')
        const report = monitor.broadcastNoise({ peakLevel: level })
        web?.noiseSent(level, report)
        const notConnected = report.listeners.filter((l) => l.outcome === 'not-connected').length
        const tooSlow = report.listeners.filter((l) => l.outcome === 'disconnected-too-slow').length
        emit(
          'noise-sent',
          { peakLevel: level, timestamp: report.timestamp, listeners: report.delivered, notConnected, tooSlow },
          `NOISE_EVENT ${level} sent to ${report.delivered} listener(s)` +
            (notConnected > 0 ? `; ${notConnected} paired listener(s) not connected (replayed if back within the replay window)` : '') +
            (tooSlow > 0 ? `; ${tooSlow} disconnected as too slow (caught up when back)` : ''),
        )
      } else if (cmd === 'pair') {
        openPairing(arg === undefined ? o.pairMinutes : parsePositive(arg)).catch((e: unknown) => warn(e))
      } else if (cmd === 'unpair' || cmd === 'close-pairing') {
        monitor.closePairing()
      } else if (cmd === 'revoke' && arg !== undefined) {
        monitor.revoke(arg.toLowerCase()).then(
          (e) => {
            if (e === undefined) warn(new CribcallError('ERR_NOT_FOUND', `no paired device ${arg}`))
          },
          (e: unknown) => warn(e),
        )
      } else {
        throw new UsageError(`unknown command '${cmd}' (noise <level> | pair [minutes] | close-pairing | revoke <deviceId> | approve <listenerId> | refuse <listenerId>)`)
      }
    } catch (e) {
      warn(e)
    }
    // A command ran while a y/N prompt waited: show it again (unless a new one was just shown).
    if (approvals.awaitingAnswer && approvals.promptCount === prompts) approvals.repeatPrompt()
  })
  await new Promise<void>(() => undefined) // runs until interrupted
}

// ---------------------------------------------------------------- monitor --web

/** `--web [HOST:]PORT` (IPv6 in brackets; default host 127.0.0.1). */
function parseWebListen(v: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):)?(\d{1,5})$/.exec(v)
  if (m === null) throw new UsageError(`invalid --web '${v}' (expected [HOST:]PORT, e.g. 8080, 127.0.0.1:8080 or [::1]:8080)`)
  return { host: m[1]?.replace(/^\[|\]$/g, '') ?? '127.0.0.1', port: parsePort(m[2] as string) }
}

/** Starts the web console (a dynamic import: nothing of it loads without --web) and prints its URL once. */
async function startMonitorConsole(
  o: MonitorCmd,
  at: { host: string; port: number },
  monitor: Monitor,
  approvals: Approvals,
  openPairing: (minutes: number) => Promise<void>,
): Promise<WebConsole> {
  const { startWebConsole } = await import('./web/index.js')
  const web = await startWebConsole({
    ...at,
    monitor,
    approvals,
    name: o.name,
    pairMode: o.pair,
    pairMinutes: o.pairMinutes,
    openPairing,
    answered: (info, approved) => {
      if (!out.json && process.stdin.isTTY === true) process.stderr.write(`\n${approved ? 'approved' : 'refused'} "${info.listenerName}" (${info.listenerId}) in the web console\n`)
    },
  }).catch((e: unknown) => {
    throw new CribcallError('ERR_WEB_CONSOLE', `cannot start the web console on ${at.host}:${at.port}: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  })
  emit('web-console', { url: web.url, host: web.host, port: web.port, loopback: web.loopback }, `web console: ${web.url}\n  (open it in a browser; the token in it is the console's only key, shown once)`)
  if (!web.loopback) {
    const elsewhere = web.host === '0.0.0.0' || web.host === '::' ? " (from another device, put this machine's address in place of 127.0.0.1)" : ''
    warn(new CribcallError('ERR_WEB_NOT_LOOPBACK', `the web console listens on ${web.host}:${web.port}${elsewhere}, reachable from the network over plain HTTP: anyone who learns its URL (token) can pair and revoke listeners; bind it to 127.0.0.1 unless you need it elsewhere`))
  }
  return web
}

/** The approve hook's answer, shown in the web console until it settles. */
function webTracked(web: WebConsole | undefined, request: PairingRequestInfo, answer: Promise<boolean>): Promise<boolean> {
  web?.requested(request, answer)
  return answer
}

/** The monitor's stdin commands (any other line answers a y/N prompt on a terminal). */
const MONITOR_COMMANDS: ReadonlySet<string> = new Set(['noise', 'pair', 'close-pairing', 'unpair', 'revoke', 'approve', 'refuse'])

interface PairCmd {
  dir: string
  qr?: string
  host?: string
  port?: number
  fingerprint?: string
  pin?: string
  name: string
  timeoutSeconds: number
}

async function cmdPair(o: PairCmd): Promise<void> {
  if (o.qr === undefined && o.fingerprint === undefined) throw new UsageError('give --qr JSON, or --fingerprint F for PIN pairing')
  if (o.qr !== undefined && o.fingerprint !== undefined) throw new UsageError('--qr and --fingerprint exclude each other')
  if (o.qr !== undefined && o.pin !== undefined) throw new UsageError('--pin is for PIN pairing (--fingerprint), not --qr')
  if (o.host === undefined) throw new UsageError('--host is required (the monitor address; a QR payload carries no address)')
  if (o.pin !== undefined && !PIN_RE.test(o.pin)) throw new UsageError(`invalid PIN '${o.pin}' (expected 6 digits)`)
  if (o.qr !== undefined) {
    try {
      parseQrPayload(o.qr)
    } catch (e) {
      throw new UsageError(`invalid --qr: ${e instanceof Error ? e.message : String(e)}`, e instanceof CribcallError ? e.code : 'ERR_USAGE')
    }
  }
  const { identity, store } = await open(o.dir)
  const listener = new Listener({ identity, trustStore: store, name: o.name })
  const pins = new PinSource()
  const interrupt = new AbortController()
  // Ctrl-C: abandon the pairing (the monitor sees the connection close), exit 130.
  onInterrupt(async () => {
    interrupt.abort(new CribcallError('ERR_INTERRUPTED', 'pairing interrupted'))
    pins.close()
    await listener.close()
  }, EXIT.INTERRUPTED)
  const port = o.port ?? (o.qr === undefined ? DEFAULT_PORT : undefined)
  const where = port === undefined ? o.host : `${o.host}:${port}`
  let pinAsked = false
  try {
    const target = { host: o.host, timeoutMs: Math.round(o.timeoutSeconds * 1000), signal: interrupt.signal, ...(port === undefined ? {} : { port }) }
    const entry =
      o.qr !== undefined
        ? await listener.pairWithQr(o.qr, target)
        : await listener.pairWithPin({ ...target, monitorFingerprint: o.fingerprint as string }, async (info) => {
            pinAsked = true
            if (o.pin !== undefined) {
              if (info.attempt > 1) throw new CribcallError('ERR_PAIRING_REJECTED', 'the monitor rejected the PIN (INVALID_PIN)')
              return o.pin
            }
            return pins.next(info)
          })
    emit('paired', { deviceId: entry.deviceId, name: entry.name, fingerprint: entry.fingerprint }, `paired with ${entry.name} (${entry.deviceId})`)
  } catch (e) {
    if (interrupt.signal.aborted) return new Promise<void>(() => undefined) // the interrupt handler exits
    throw explainPairError(e, where, o.timeoutSeconds, pinAsked)
  } finally {
    pins.close()
    await listener.close()
  }
}

/** Adds what the user needs to know to the errors `pair` typically meets. */
function explainPairError(e: unknown, where: string, timeoutSeconds: number, pinAsked: boolean): unknown {
  if (!(e instanceof CribcallError)) return e
  const timedOut = e.code === 'ABORT_ERR' && e.cause instanceof Error && e.cause.name === 'TimeoutError'
  if (timedOut && !pinAsked) {
    return new CribcallError('ERR_HANDSHAKE_TIMEOUT', `no answer from a monitor at ${where} within ${timeoutSeconds} s (handshake timeout; is the monitor running there?)`, { cause: e })
  }
  if (timedOut) return new CribcallError('ERR_TIMEOUT', `pairing with ${where} did not finish within ${timeoutSeconds} s`, { cause: e })
  switch (e.code) {
    case 'ERR_HANDSHAKE_TIMEOUT':
      return new CribcallError(e.code, `no answer from a monitor at ${where} (handshake timeout; is the monitor running there?)`, { cause: e })
    case 'ERR_PIN_MISMATCH':
      return new CribcallError(e.code, `the monitor at ${where} presented another certificate than the expected fingerprint (${e.message})`, { cause: e })
    case 'ERR_CONNECTION_CLOSED':
      return new CribcallError(e.code, `the connection to the monitor at ${where} was lost during pairing (${e.message})`, { cause: e })
    case 'ERR_PEER_REJECTED':
      return new CribcallError(e.code, `the monitor at ${where} refused this device (is its pairing window open?)`, { cause: e })
    default:
      return e
  }
}

async function cmdWatch(o: { dir: string }): Promise<void> {
  const { identity, store } = await open(o.dir)
  const monitors = store.list().filter((e) => e.role === 'monitor')
  if (monitors.length === 0) throw new CribcallError('ERR_NOT_PAIRED', `no paired monitor in ${o.dir}; run 'cribcall-agent pair' first`)
  const listener = new Listener({ identity, trustStore: store, name: 'cribcall-agent' })
  let stopping = false
  onInterrupt(async () => {
    stopping = true
    await listener.close()
  })
  // watch runs while at least one monitor channel is alive; it exits when the last one
  // ended for good: 3 when every monitor revoked or refused this listener, else 1.
  let remaining = monitors.length
  let allRefused = true
  const ended = (refused: boolean): void => {
    if (!refused) allRefused = false
    if (--remaining > 0 || stopping) return
    stopping = true
    void listener.close().finally(() => process.exit(allRefused ? EXIT.REVOKED : EXIT.FAILURE))
  }
  for (const m of monitors) {
    const ids = { deviceId: m.deviceId, fingerprint: m.fingerprint }
    emit('connecting', { ...ids, name: m.name, address: m.lastAddress ?? null }, `connecting to ${m.name} (${m.deviceId}) at ${m.lastAddress ?? '?'}`)
    let ch: ListenerChannel
    try {
      ch = listener.openChannel(m.deviceId)
    } catch (e) {
      warn(e, ids)
      ended(false)
      continue
    }
    watchChannel(ch, m, () => stopping, ended)
  }
  await new Promise<void>(() => undefined)
}

/**
 * Prints one monitor channel's events. Transient closes (busy, idle timeout, reset,
 * network) print `disconnected` and `reconnecting` and the channel carries on; only a
 * final close prints `disconnected` with `final: true` and calls `ended`.
 */
function watchChannel(ch: ListenerChannel, m: TrustEntry, stopping: () => boolean, ended: (refused: boolean) => void): void {
  const ids = { deviceId: m.deviceId, fingerprint: m.fingerprint }
  ch.on('connected', ({ attempt }) => emit('connected', ids, attempt > 1 ? `reconnected to ${m.name}` : `connected to ${m.name} (${m.deviceId})`))
  ch.on('disconnected', (info) => {
    // A final disconnect is printed once, by 'close' (with final: true).
    if (!info.final) emit('disconnected', { ...ids, code: info.code, reason: info.reason }, `disconnected from ${m.name} (${info.reason || info.code})`)
  })
  ch.on('reconnecting', ({ attempt, delayMs, error }) =>
    emit('reconnecting', { ...ids, attempt, delayMs }, `reconnecting to ${m.name} in ${delayMs} ms (attempt ${attempt})${error === undefined ? '' : `: ${error.message}`}`),
  )
  ch.on('noise', (n) =>
    emit('noise', { monitorId: n.monitorId, timestamp: n.timestamp, peakLevel: n.peakLevel, receivedAt: Date.now() }, `noise from ${m.name}: level ${n.peakLevel} at ${new Date(n.timestamp).toISOString()}`),
  )
  ch.on('error', (e) => warn(e, ids))
  ch.on('close', (info) => {
    if (stopping()) return // closed by us (Ctrl-C)
    // Refused: the monitor's admission turned this listener's certificate away, or the
    // monitor closed with UNAUTHORIZED (revoked). A changed monitor identity is not a refusal.
    const refused = info.errorCode === 'ERR_PEER_REJECTED' || (info.errorCode === undefined && info.byPeer && info.application && info.code === AppErrorCode.UNAUTHORIZED)
    emit('disconnected', { ...ids, code: info.code, reason: info.reason, final: true }, `channel to ${m.name} closed for good: ${info.reason || info.code}${refused ? ' (this listener was revoked or refused)' : ''}`)
    ended(refused)
  })
}

async function cmdTrustList(o: { dir: string }): Promise<void> {
  const store = await FileTrustStore.open(path.join(o.dir, 'trust.json'))
  const entries = store.list()
  if (!out.json && entries.length === 0) process.stdout.write('no paired devices\n')
  for (const e of entries) emit('trust', entryFields(e), `${e.deviceId}  ${e.role.padEnd(8)}  ${e.name}  ${e.fingerprint}`)
}

async function cmdTrustRevoke(deviceId: string, o: { dir: string }): Promise<void> {
  const store = await FileTrustStore.open(path.join(o.dir, 'trust.json'))
  const removed = await store.revoke(deviceId.toLowerCase())
  if (removed === undefined) throw new CribcallError('ERR_NOT_FOUND', `no paired device ${deviceId}`)
  emit('revoked', { deviceId: removed.deviceId, fingerprint: removed.fingerprint }, `revoked ${removed.name} (${removed.deviceId})`)
}

async function cmdDemo(): Promise<void> {
  const root = await mkdtemp(path.join(tmpdir(), 'cribcall-demo-'))
  const log = (s: string, fields: Record<string, unknown> = {}): void => emit('demo', { step: s, ...fields }, s)
  try {
    const monitorId = await loadOrCreateIdentity(path.join(root, 'monitor'), { keyType: 'p256' })
    const monitor = await Monitor.start({
      identity: monitorId,
      trustStore: await FileTrustStore.open(path.join(root, 'monitor', 'trust.json')),
      host: '127.0.0.1',
      port: 0,
      name: 'Nursery',
    })
    const { port } = monitor.address
    log(`monitor Nursery on 127.0.0.1:${port}, fingerprint ${monitorId.fingerprint.slice(0, 16)}…`)
    let shownPin = ''
    monitor.openPairing({ durationMs: 60_000, onPin: (pin) => (shownPin = pin) })

    // Listener A pairs by PIN (CPace).
    const a = new Listener({ identity: generateIdentity({ keyType: 'ed25519' }), trustStore: new MemoryTrustStore(), name: 'Phone A' })
    const ea = await a.pairWithPin({ host: '127.0.0.1', port, monitorFingerprint: monitorId.fingerprint }, () => shownPin)
    log(`Phone A paired by PIN (CPace) with ${ea.deviceId}`)
    // Listener B pairs by QR.
    const b = new Listener({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), name: 'Phone B' })
    const eb = await b.pairWithQr(monitor.pairingQrPayload(), { host: '127.0.0.1', port })
    log(`Phone B paired by QR with ${eb.deviceId}`)
    monitor.closePairing()
    log('pairing closed: unknown devices now fail in the TLS handshake')

    const connected = new Promise<void>((resolve) => {
      let n = 0
      monitor.on('listener-connected', ({ channel }) => {
        if (channel.trust === 'trusted' && ++n === 2) resolve()
      })
    })
    const ca = await a.connect(ea.deviceId)
    const cb = await b.connect(eb.deviceId)
    await connected
    const rtt = await ca.ping()
    log(`both listeners connected (trusted); PING round trip ${rtt.toFixed(2)} ms`)

    const N = 5
    const sentAt = new Map<number, number>()
    const latencies: number[] = []
    const got = (ch: ListenerChannel): Promise<void> =>
      new Promise((resolve) => {
        let n = 0
        ch.on('noise', (ev) => {
          const t0 = sentAt.get(ev.timestamp)
          if (t0 !== undefined) latencies.push(performance.now() - t0)
          if (++n === N) resolve()
        })
      })
    const done = Promise.all([got(ca), got(cb)])
    for (let i = 0; i < N; i++) {
      const t0 = performance.now()
      const report = monitor.broadcastNoise({ peakLevel: 20 + i * 15 })
      sentAt.set(report.timestamp, t0)
      log(`NOISE_EVENT peakLevel ${20 + i * 15} sent to ${report.delivered} listeners`)
      await new Promise((r) => setTimeout(r, 25))
    }
    await done
    latencies.sort((x, y) => x - y)
    const median = latencies[Math.floor(latencies.length / 2)] ?? 0
    const max = latencies.at(-1) ?? 0
    log(`${latencies.length} deliveries; latency median ${median.toFixed(3)} ms, max ${max.toFixed(3)} ms`, {
      deliveries: latencies.length,
      latencyMedianMs: Number(median.toFixed(3)),
      latencyMaxMs: Number(max.toFixed(3)),
    })
    await a.close()
    await b.close()
    await monitor.close()
    log(`done; fingerprint check: ${fingerprintOf(monitorId.certPem) === monitorId.fingerprint ? 'ok' : 'MISMATCH'}`)
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------- wiring

async function main(argv: readonly string[]): Promise<void> {
  const program = new Command()
  program
    .name('cribcall-agent')
    .description('CribCall pairing agent: run a monitor, pair and watch as a listener, manage trust')
    .option('--json', 'print one JSON object per line')
    .option('--debug', 'print stack traces on errors')
    .exitOverride()
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      // Usage errors are one line, like every other error.
      outputError: (s, write) => {
        const message = oneLine(s).replace(/^error: /, '')
        if (jsonRequested(argv)) process.stdout.write(JSON.stringify({ event: 'error', code: 'ERR_USAGE', message }) + '\n')
        write(`cribcall-agent: ${message} (see 'cribcall-agent --help') [ERR_USAGE]\n`)
      },
    })
    .hook('preAction', (cmd) => {
      const g = cmd.optsWithGlobals<{ json?: boolean; debug?: boolean }>()
      out.json = g.json === true
      out.debug = g.debug === true
    })
  const dirOption = (): Option => new Option('--dir <dir>', 'state directory: identity and trust store (env CRIBCALL_AGENT_DIR, else the platform config directory)').default(defaultDir())

  program
    .command('identity')
    .description("create or show this device's identity")
    .addOption(dirOption())
    .addOption(new Option('--key <type>', 'key type for a new identity').choices(['p256', 'ed25519']))
    .action((o: { dir: string; key?: 'p256' | 'ed25519' }) => cmdIdentity(o))

  program
    .command('monitor')
    .description('run as a monitor: pairing window, listeners, NOISE_EVENTs from stdin ("noise <level>")')
    .addOption(dirOption())
    .option('--host <host>', 'address to bind', '0.0.0.0')
    .option('--port <port>', 'UDP port (0: any free port, printed in the listening line)', parsePort, DEFAULT_PORT)
    .option('--name <name>', 'monitor name shown to listeners', 'CribCall monitor')
    .addOption(new Option('--pair <mode>', 'pairing methods to offer').choices(['qr', 'pin', 'both', 'off']).default('both'))
    .option('--pair-minutes <m>', 'pairing window length in minutes', parsePositive, 5)
    .option('--auto-approve', 'pair every listener that passes the checks, without asking (default: ask on the terminal, or an approve-request event answered on stdin)')
    .option('--allow-legacy-qr', 'also accept QR pairing requests without the proof of the QR code secret (listeners that predate it; any device on the LAN can send one)')
    .option('--web <[host:]port>', 'serve the web console (QR code, PIN, approvals, paired listeners, noise chart) on HOST:PORT; host defaults to 127.0.0.1; prints its URL with the access token', parseWebListen)
    .action((o: MonitorCmd) => cmdMonitor(o))

  program
    .command('pair')
    .description('pair with a monitor as a listener (QR payload, or fingerprint + PIN); reads the PIN from stdin when not a terminal')
    .addOption(dirOption())
    .option('--qr <json>', 'the monitor_pair_v1 JSON from the QR code')
    .option('--host <host>', 'monitor address')
    .option('--port <port>', 'monitor UDP port (default: from the QR code, else 48080)', parsePort)
    .option('--fingerprint <hex>', 'monitor certificate fingerprint (PIN pairing)', parseFingerprint)
    .option('--pin <digits>', 'the 6-digit PIN shown on the monitor; without it, prompted on a terminal, or read from stdin (one line per attempt) when not a terminal')
    .option('--name <name>', 'this listener’s name', 'cribcall-agent')
    .option('--timeout <seconds>', 'give up when pairing has not finished after this many seconds (handshake included)', parsePositive, 120)
    .action((o: Omit<PairCmd, 'timeoutSeconds'> & { timeout: number }) => cmdPair({ ...o, timeoutSeconds: o.timeout }))

  program
    .command('watch')
    .description('connect to every paired monitor and print NOISE_EVENTs (reconnects by itself)')
    .addOption(dirOption())
    .action((o: { dir: string }) => cmdWatch(o))

  const trust = program.command('trust').description('list or revoke paired devices')
  trust.command('list').description('list paired devices').addOption(dirOption()).action((o: { dir: string }) => cmdTrustList(o))
  trust
    .command('revoke')
    .description('revoke a paired device (a running monitor using the same directory disconnects it at once)')
    .argument('<deviceId>')
    .addOption(dirOption())
    .action((id: string, o: { dir: string }) => cmdTrustRevoke(id, o))

  program.command('demo').description('pair a monitor and two listeners on loopback (PIN and QR) and deliver NOISE_EVENTs').action(() => cmdDemo())

  try {
    await program.parseAsync([...argv], { from: 'user' })
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0) process.exit(0)
      process.exit(EXIT.USAGE) // commander already printed the line
    }
    fail(e)
  }
}

/** --json before a `--` (usable before commander parsed anything). */
function jsonRequested(argv: readonly string[]): boolean {
  const end = argv.indexOf('--')
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json')
}

// Anything that escapes a command is still one line (the stack only with --debug).
process.on('uncaughtException', (e) => fail(e))
process.on('unhandledRejection', (e) => fail(e))

const args = process.argv.slice(2)
out.json = jsonRequested(args)
out.debug = args.includes('--debug')
main(args).catch(fail)

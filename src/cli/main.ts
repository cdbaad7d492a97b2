#!/usr/bin/env node
// cribcall-agent: the headless pairing agent. Uses only the public API.
import { Command, CommanderError, Option } from 'commander'
import { mkdtemp, rm } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import QRCode from 'qrcode'
import {
  CribcallError,
  FileTrustStore,
  Listener,
  MemoryTrustStore,
  Monitor,
  fingerprintOf,
  generateIdentity,
  loadOrCreateIdentity,
  type Identity,
  type ListenerChannel,
  type TrustEntry,
} from '../index.js'

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

class UsageError extends Error {}

function fail(e: unknown): never {
  const code = e instanceof CribcallError ? e.code : e instanceof UsageError ? 'ERR_USAGE' : 'ERR_FAILED'
  const message = e instanceof Error ? e.message : String(e)
  if (out.json) process.stdout.write(JSON.stringify({ event: 'error', code, message }) + '\n')
  process.stderr.write(`cribcall-agent: ${message}${code.startsWith('ERR_') && code !== 'ERR_FAILED' ? ` [${code}]` : ''}\n`)
  if (out.debug && e instanceof Error && e.stack !== undefined) process.stderr.write(e.stack + '\n')
  process.exit(e instanceof UsageError ? 2 : 1)
}

// ---------------------------------------------------------------- helpers

/** The platform's config location: XDG on Linux, Application Support on macOS, APPDATA on Windows. */
function defaultDir(): string {
  if (process.env.CRIBCALL_AGENT_DIR !== undefined && process.env.CRIBCALL_AGENT_DIR !== '') return process.env.CRIBCALL_AGENT_DIR
  if (process.platform === 'win32') return path.join(process.env.APPDATA ?? path.join(homedir(), 'AppData', 'Roaming'), 'cribcall-agent')
  if (process.platform === 'darwin') return path.join(homedir(), 'Library', 'Application Support', 'cribcall-agent')
  const xdg = process.env.XDG_CONFIG_HOME
  return path.join(xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(homedir(), '.config'), 'cribcall-agent')
}

function parsePort(v: string): number {
  const n = Number(v)
  if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`invalid port '${v}'`)
  return n
}

function parseFingerprint(v: string): string {
  const f = v.replace(/:/g, '').toLowerCase()
  if (!/^[0-9a-f]{64}$/.test(f)) throw new UsageError(`invalid fingerprint '${v}' (expected 64 hex digits, the SHA-256 of the monitor certificate)`)
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

function onInterrupt(close: () => Promise<void>): void {
  let closing = false
  const handler = (): void => {
    if (closing) process.exit(130)
    closing = true
    close().then(
      () => process.exit(0),
      (e: unknown) => fail(e),
    )
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
}

function readPinFromTty(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) return Promise.reject(new UsageError('no --pin given and stdin is not a terminal'))
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true })
  return new Promise((resolve) => {
    rl.question(prompt, (answer) => {
      rl.close()
      resolve(answer.trim())
    })
  })
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
}

async function cmdMonitor(o: MonitorCmd): Promise<void> {
  const { identity, store } = await open(o.dir)
  const monitor = await Monitor.start({ identity, trustStore: store, host: o.host, port: o.port, name: o.name })
  const unwatch = store.watch((e) => emit('error', { code: 'ERR_TRUST_STORE', message: String(e) }, `trust store: ${String(e)}`))
  onInterrupt(async () => {
    unwatch()
    await monitor.close()
  })
  const { host, port } = monitor.address
  emit('listening', { host, port, fingerprint: identity.fingerprint, deviceId: identity.deviceId }, `monitor ${o.name} listening on ${host}:${port}\nfingerprint ${identity.fingerprint}`)

  monitor.on('listener-connected', ({ channel, entry }) =>
    emit('connected', { deviceId: entry?.deviceId ?? null, fingerprint: channel.peerFingerprint, trusted: channel.trust === 'trusted' }, `listener ${entry?.name ?? '(pairing)'} connected (${channel.peerFingerprint.slice(0, 16)}…)`),
  )
  monitor.on('listener-disconnected', ({ channel, entry, code, reason }) =>
    emit('disconnected', { deviceId: entry?.deviceId ?? null, fingerprint: channel.peerFingerprint, code, reason }, `listener ${entry?.name ?? '(pairing)'} disconnected (${code} ${reason})`),
  )
  monitor.on('paired', ({ entry, method }) => emit('paired', { deviceId: entry.deviceId, name: entry.name, fingerprint: entry.fingerprint, method }, `paired ${entry.name} (${entry.deviceId}) by ${method}`))
  monitor.on('pairing-failed', ({ method, reason, fingerprint }) => emit('pairing-failed', { method, reason, fingerprint }, `pairing failed (${method}): ${reason}`))
  monitor.on('revoked', (entry) => emit('revoked', { deviceId: entry.deviceId, fingerprint: entry.fingerprint }, `revoked ${entry.name} (${entry.deviceId})`))
  monitor.on('pairing-closed', ({ reason }) => emit('pairing-closed', { reason }, `pairing closed (${reason})`))
  monitor.on('error', (e) => emit('error', { code: e.code, message: e.message }, `error: ${e.message}`))

  const openPairing = async (minutes: number): Promise<void> => {
    if (o.pair === 'off') return
    monitor.openPairing({
      durationMs: Math.round(minutes * 60_000),
      allowQr: o.pair !== 'pin',
      allowPin: o.pair !== 'qr',
      onPin: (pin, session) =>
        emit('pin', { pin, pairingSessionId: session.pairingSessionId, expiresInSec: session.expiresInSec, listenerName: session.listenerName }, `PIN for ${session.listenerName}: ${pin} (expires in ${session.expiresInSec} s)`),
    })
    const payload = monitor.pairingQrPayload()
    if (o.pair !== 'pin') {
      if (!out.json && process.stdout.isTTY) process.stdout.write(await QRCode.toString(payload, { type: 'terminal', small: true }))
      emit('qr', { payload }, `pairing QR payload: ${payload}`)
    }
    emit('pairing-opened', { minutes, qr: o.pair !== 'pin', pin: o.pair !== 'qr' }, `pairing open for ${minutes} min (${o.pair === 'both' ? 'QR and PIN' : o.pair.toUpperCase()})`)
  }
  await openPairing(o.pairMinutes)

  const rl = createInterface({ input: process.stdin, terminal: false })
  rl.on('line', (line) => {
    const [cmd, arg] = line.trim().split(/\s+/)
    try {
      if (cmd === undefined || cmd === '') return
      if (cmd === 'noise') {
        const level = Number(arg)
        if (!Number.isInteger(level) || level < 0 || level > 100) throw new UsageError('usage: noise <0-100>')
        const timestamp = Date.now()
        const delivered = monitor.broadcastNoise({ peakLevel: level, timestamp })
        emit('noise-sent', { peakLevel: level, timestamp, listeners: delivered }, `NOISE_EVENT ${level} sent to ${delivered} listener(s)`)
      } else if (cmd === 'pair') {
        void openPairing(arg === undefined ? o.pairMinutes : parsePositive(arg))
      } else if (cmd === 'unpair' || cmd === 'close-pairing') {
        monitor.closePairing()
      } else if (cmd === 'revoke' && arg !== undefined) {
        void monitor.revoke(arg).then((e) => {
          if (e === undefined) emit('error', { code: 'ERR_NOT_FOUND', message: `no paired device ${arg}` }, `no paired device ${arg}`)
        })
      } else {
        throw new UsageError(`unknown command '${cmd}' (noise <level> | pair [minutes] | close-pairing | revoke <deviceId>)`)
      }
    } catch (e) {
      emit('error', { code: e instanceof CribcallError ? e.code : 'ERR_USAGE', message: (e as Error).message }, `error: ${(e as Error).message}`)
    }
  })
  await new Promise<void>(() => undefined) // runs until interrupted
}

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
  if (o.host === undefined) throw new UsageError('--host is required (the monitor address)')
  if (o.qr === undefined && o.fingerprint === undefined) throw new UsageError('give --qr JSON, or --fingerprint F for PIN pairing')
  if (o.qr !== undefined && o.fingerprint !== undefined) throw new UsageError('--qr and --fingerprint exclude each other')
  const { identity, store } = await open(o.dir)
  const listener = new Listener({ identity, trustStore: store, name: o.name })
  try {
    const target = { host: o.host, timeoutMs: o.timeoutSeconds * 1000, ...(o.port === undefined ? {} : { port: o.port }) }
    const entry =
      o.qr !== undefined
        ? await listener.pairWithQr(o.qr, target)
        : await listener.pairWithPin({ ...target, monitorFingerprint: o.fingerprint as string }, async ({ attempt, maxAttempts }) => {
            if (o.pin !== undefined) {
              if (attempt > 1) throw new CribcallError('ERR_PAIRING_REJECTED', 'the monitor rejected the PIN (INVALID_PIN)')
              return o.pin
            }
            return readPinFromTty(`PIN shown on the monitor (attempt ${attempt}/${maxAttempts}): `)
          })
    emit('paired', { deviceId: entry.deviceId, name: entry.name, fingerprint: entry.fingerprint }, `paired with ${entry.name} (${entry.deviceId})`)
  } finally {
    await listener.close()
  }
}

async function cmdWatch(o: { dir: string }): Promise<void> {
  const { identity, store } = await open(o.dir)
  const monitors = store.list().filter((e) => e.role === 'monitor')
  if (monitors.length === 0) throw new CribcallError('ERR_NOT_PAIRED', `no paired monitor in ${o.dir}; run 'cribcall-agent pair' first`)
  const listener = new Listener({ identity, trustStore: store, name: 'cribcall-agent' })
  onInterrupt(() => listener.close())
  const channels: ListenerChannel[] = []
  await Promise.all(
    monitors.map(async (m) => {
      const ch = await listener.connect(m.deviceId)
      channels.push(ch)
      emit('connected', { deviceId: m.deviceId, fingerprint: m.fingerprint }, `connected to ${m.name} (${m.deviceId})`)
      ch.on('connected', ({ attempt }) => {
        if (attempt > 1) emit('connected', { deviceId: m.deviceId, fingerprint: m.fingerprint }, `reconnected to ${m.name}`)
      })
      ch.on('disconnected', (info) => emit('disconnected', { deviceId: m.deviceId, fingerprint: m.fingerprint, code: info.code, reason: info.reason }, `disconnected from ${m.name} (${info.reason})`))
      ch.on('noise', (n) =>
        emit('noise', { monitorId: n.monitorId, timestamp: n.timestamp, peakLevel: n.peakLevel, receivedAt: Date.now() }, `noise from ${m.name}: level ${n.peakLevel} at ${new Date(n.timestamp).toISOString()}`),
      )
      ch.on('close', (info) => {
        emit('disconnected', { deviceId: m.deviceId, fingerprint: m.fingerprint, code: info.code, reason: info.reason, final: true }, `channel to ${m.name} closed: ${info.reason}`)
        if (channels.every((c) => c.isClosed)) void listener.close().then(() => process.exit(info.code === 2 ? 3 : 0))
      })
    }),
  )
  await new Promise<void>(() => undefined)
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
  const log = (s: string): void => emit('demo', { step: s }, s)
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
      const timestamp = Date.now()
      sentAt.set(timestamp, performance.now())
      const delivered = monitor.broadcastNoise({ peakLevel: 20 + i * 15, timestamp })
      log(`NOISE_EVENT peakLevel ${20 + i * 15} sent to ${delivered} listeners`)
      await new Promise((r) => setTimeout(r, 25))
    }
    await done
    latencies.sort((x, y) => x - y)
    const median = latencies[Math.floor(latencies.length / 2)] ?? 0
    log(`${latencies.length} deliveries; latency median ${median.toFixed(3)} ms, max ${(latencies.at(-1) ?? 0).toFixed(3)} ms`)
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
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .hook('preAction', (cmd) => {
      const g = cmd.optsWithGlobals<{ json?: boolean; debug?: boolean }>()
      out.json = g.json === true
      out.debug = g.debug === true
    })
  const dirOption = (): Option => new Option('--dir <dir>', 'state directory (identity and trust store)').default(defaultDir())

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
    .option('--port <port>', 'UDP port', parsePort, 48080)
    .option('--name <name>', 'monitor name shown to listeners', 'CribCall monitor')
    .addOption(new Option('--pair <mode>', 'pairing methods to offer').choices(['qr', 'pin', 'both', 'off']).default('both'))
    .option('--pair-minutes <m>', 'pairing window length in minutes', parsePositive, 5)
    .action((o: MonitorCmd) => cmdMonitor(o))

  program
    .command('pair')
    .description('pair with a monitor as a listener (QR payload, or fingerprint + PIN)')
    .addOption(dirOption())
    .option('--qr <json>', 'the monitor_pair_v1 JSON from the QR code')
    .option('--host <host>', 'monitor address')
    .option('--port <port>', 'monitor UDP port (default: from the QR code, else 48080)', parsePort)
    .option('--fingerprint <hex>', 'monitor certificate fingerprint (PIN pairing)', parseFingerprint)
    .option('--pin <digits>', 'the 6-digit PIN shown on the monitor (prompted on a terminal otherwise)')
    .option('--name <name>', 'this listener’s name', 'cribcall-agent')
    .option('--timeout <seconds>', 'give up after', parsePositive, 120)
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
      process.exit(2) // commander already printed one line (and the help hint)
    }
    fail(e)
  }
}

main(process.argv.slice(2)).catch(fail)

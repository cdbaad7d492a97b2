// Restart detection (issue 8, "Done when"): a `cribcall-agent monitor` child process is
// SIGKILLed and restarted on the same port, with the same state directory, 20 times,
// while an in-process Listener is connected to it. The restarted monitor answers the old
// connection's packets with a stateless reset (its token key is derived from the
// identity), so the listener's connection closes with ERR_CONNECTION_RESET — "notice" —
// and the ListenerChannel redials — "reconnect". Both are measured from the moment the
// restarted monitor printed `listening`. Issue targets: notice within 1 s in 20/20,
// reconnect p95 within 1 s; asserted as they are, and the measured numbers are printed.
import { existsSync, promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'

import {
  FileTrustStore,
  Listener,
  MemoryTrustStore,
  generateIdentity,
  loadOrCreateIdentity,
  type DisconnectInfo,
  type Identity,
  type ListenerChannel,
  type NoiseEventMessage,
} from '../src/index.js'
import { AgentProcess, CLI, quantile } from './agent-process.js'
import { LOOPBACK, freeUdpPort, sleep, waitUntil } from './helpers.js'

const RESTARTS = 20
const TARGET_MS = 1000
/** The targets, asserted as they are. */
const BOUND_MS = TARGET_MS
/**
 * How long each connection stays up before the monitor is killed. The listener counts a
 * connection that closed before `healthyAfterMs` as a failure and backs off further on
 * the next one (by design: a flapping monitor must not be hammered). With 20 restarts in a
 * row the test sets healthyAfterMs to 2 s and keeps every connection up 3 s, so each
 * restart is met exactly as by a default listener whose connection was healthy (10 s):
 * failure count 0, first redial after 125–250 ms.
 */
const UP_MS = 3000
const HEALTHY_AFTER_MS = 2000

let root = ''
const agents: AgentProcess[] = []

beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} is missing: run 'npm run build:ts' first`).toBe(true)
  root = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-restart-'))
})
afterAll(async () => {
  await Promise.all(agents.map((a) => a.kill()))
  if (root !== '') await fs.rm(root, { recursive: true, force: true })
})

/** The paired state: the monitor's identity and trust store in `dir` (CLI layout), a listener identity and its store pointing at `port`. */
async function pairedState(dir: string, port: number): Promise<{ monitorId: Identity; listenerId: Identity; store: MemoryTrustStore }> {
  const monitorId = await loadOrCreateIdentity(path.join(dir, 'identity'))
  const listenerId = generateIdentity()
  const monitorStore = await FileTrustStore.open(path.join(dir, 'trust.json'))
  await monitorStore.put({ deviceId: listenerId.deviceId, name: 'Phone', fingerprint: listenerId.fingerprint, publicKey: listenerId.publicKey, role: 'listener', pairedAt: Date.now() })
  const store = new MemoryTrustStore()
  await store.put({
    deviceId: monitorId.deviceId,
    name: 'Nursery',
    fingerprint: monitorId.fingerprint,
    publicKey: monitorId.publicKey,
    role: 'monitor',
    pairedAt: Date.now(),
    lastAddress: `${LOOPBACK}:${port}`,
  })
  return { monitorId, listenerId, store }
}

interface RunningMonitor {
  agent: AgentProcess
  listeningAt: number
}

/** Starts `cribcall-agent monitor` on `port` and waits for its `listening` line. */
async function startMonitor(dir: string, port: number, monitorId: Identity): Promise<RunningMonitor> {
  const agent = new AgentProcess(['monitor', '--dir', dir, '--host', LOOPBACK, '--port', String(port), '--pair', 'off', '--json'])
  agents.push(agent)
  const listening = await agent.waitFor('listening', () => true, 20_000)
  expect(listening).toMatchObject({ port, deviceId: monitorId.deviceId, fingerprint: monitorId.fingerprint })
  return { agent, listeningAt: listening.at }
}

type Stamped<T> = T & { at: number }

/** The listener's channel events, stamped on arrival. */
interface ChannelLog {
  disconnects: Array<Stamped<DisconnectInfo>>
  connects: Array<Stamped<{ attempt: number }>>
  reconnecting: Array<Stamped<{ attempt: number; delayMs: number; failures: number; error?: string }>>
  noise: NoiseEventMessage[]
  errors: string[]
}

function recordChannel(channel: ListenerChannel): ChannelLog {
  const log: ChannelLog = { disconnects: [], connects: [], reconnecting: [], noise: [], errors: [] }
  const { disconnects, connects, reconnecting, noise, errors } = log
  channel.on('disconnected', (d) => disconnects.push({ ...d, at: performance.now() }))
  channel.on('connected', (c) => connects.push({ ...c, at: performance.now() }))
  channel.on('reconnecting', (r) => reconnecting.push({ attempt: r.attempt, delayMs: r.delayMs, failures: r.failures, ...(r.error ? { error: r.error.code } : {}), at: performance.now() }))
  channel.on('noise', (n) => noise.push(n))
  channel.on('error', (e) => errors.push(`${e.code}: ${e.message}`))
  return log
}

interface RestartResult {
  notice: number
  reconnect: number
  sinceKill: number
  errorCode: string | undefined
  redialDelay: number | undefined
}

/**
 * Restart `i`: the connection is up and carries one NOISE_EVENT, stays up UP_MS, then the
 * monitor is killed and restarted; returns the new monitor and when the listener noticed
 * and reconnected.
 */
async function restartCycle(
  i: number,
  monitor: RunningMonitor,
  restart: () => Promise<RunningMonitor>,
  log: ChannelLog,
  listenerDeviceId: string,
): Promise<{ monitor: RunningMonitor; result: RestartResult }> {
  const { disconnects, connects, reconnecting, noise } = log
  // The connection is up and carries events: one NOISE_EVENT per cycle, delivered.
  await monitor.agent.waitFor('connected', (e) => e.deviceId === listenerDeviceId, 10_000)
  const before = noise.length
  const sentFrom = monitor.agent.events.length
  monitor.agent.write(`noise ${i}`)
  const sent = await monitor.agent.waitFor('noise-sent', () => true, 5000, sentFrom)
  await waitUntil(() => noise.length > before, 5000, `NOISE_EVENT ${i} at the listener`)
  expect(noise.at(-1)).toMatchObject({ peakLevel: i, timestamp: sent.timestamp })
  const upSince = connects.at(-1)!.at
  await sleep(Math.max(0, upSince + UP_MS - performance.now()))

  const nDisc = disconnects.length
  const nConn = connects.length
  const nRec = reconnecting.length
  const killAt = performance.now()
  await monitor.agent.kill()
  monitor = await restart()
  await waitUntil(() => disconnects.length > nDisc, 10_000, `restart ${i}: the listener noticing`)
  await waitUntil(() => connects.length > nConn, 10_000, `restart ${i}: the listener reconnecting`)
  const d = disconnects[nDisc]!
  const c = connects[nConn]!
  const result = {
    notice: d.at - monitor.listeningAt,
    reconnect: c.at - monitor.listeningAt,
    sinceKill: d.at - killAt,
    errorCode: d.errorCode,
    redialDelay: reconnecting[nRec]?.delayMs,
  }
  // One disconnect and one reconnect per restart, nothing final.
  expect(disconnects.length, `restart ${i}`).toBe(nDisc + 1)
  expect(connects.length, `restart ${i}`).toBe(nConn + 1)
  expect(d.final).toBe(false)
  return { monitor, result }
}

function printReport(results: readonly RestartResult[], notices: readonly number[], reconnects: readonly number[]): void {
  const fmt = (v: number): string => v.toFixed(0)
  console.log(
    [
      `restart: ${RESTARTS} restarts, times from the restarted monitor's 'listening' line`,
      `  notice (disconnected, ERR_CONNECTION_RESET): ${notices.map(fmt).join(' ')} ms; p50 ${fmt(quantile(notices, 0.5))}, worst ${fmt(Math.max(...notices))} ms; within 1 s: ${notices.filter((n) => n < TARGET_MS).length}/${RESTARTS}`,
      `  reconnect (connected): ${reconnects.map(fmt).join(' ')} ms; p50 ${fmt(quantile(reconnects, 0.5))}, p95 ${fmt(quantile(reconnects, 0.95))}, worst ${fmt(Math.max(...reconnects))} ms; within 1 s: ${reconnects.filter((n) => n < TARGET_MS).length}/${RESTARTS}`,
      `  redial delays: ${results.map((r) => r.redialDelay).join(' ')} ms; kill→notice ${results.map((r) => fmt(r.sinceKill)).join(' ')} ms`,
      `  issue targets (notice < 1 s in 20/20, reconnect p95 < 1 s): ${Math.max(...notices) < TARGET_MS && quantile(reconnects, 0.95) < TARGET_MS ? 'met' : 'NOT met'}`,
    ].join('\n'),
  )
}

it(`a monitor killed and restarted ${RESTARTS} times on the same port: the listener notices (stateless reset) and reconnects`, async () => {
  const dir = path.join(root, 'monitor')
  const port = await freeUdpPort()
  const { monitorId, listenerId, store } = await pairedState(dir, port)
  const restart = (): Promise<RunningMonitor> => startMonitor(dir, port, monitorId)

  let monitor = await restart()
  const listener = new Listener({ identity: listenerId, trustStore: store, name: 'Phone', reconnect: { healthyAfterMs: HEALTHY_AFTER_MS } })
  try {
    const channel = listener.openChannel(monitorId.deviceId)
    const log = recordChannel(channel)
    await waitUntil(() => log.connects.length === 1, 20_000, 'the first connection')

    const results: RestartResult[] = []
    for (let i = 1; i <= RESTARTS; i++) {
      const cycle = await restartCycle(i, monitor, restart, log, listenerId.deviceId)
      monitor = cycle.monitor
      results.push(cycle.result)
    }

    const notices = results.map((r) => r.notice)
    const reconnects = results.map((r) => r.reconnect)
    printReport(results, notices, reconnects)
    for (const [i, r] of results.entries()) expect(r.errorCode, `restart ${i + 1}`).toBe('ERR_CONNECTION_RESET')
    expect(Math.max(...notices)).toBeLessThan(BOUND_MS)
    expect(quantile(reconnects, 0.95)).toBeLessThan(BOUND_MS)
    expect(log.noise.map((n) => n.peakLevel)).toEqual(Array.from({ length: RESTARTS }, (_, k) => k + 1))
    expect(channel.duplicatesDropped).toBe(0)
    expect(log.errors).toEqual([])
  } finally {
    await listener.close()
  }
}, 300_000)

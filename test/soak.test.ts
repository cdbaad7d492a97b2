// The dependability soak (issue 8, "Done when"): one `cribcall-agent monitor` child
// process and 5 `cribcall-agent watch` child processes, each listener reaching the
// monitor through its own seeded UDP fault proxy (written here with node:dgram): 5 % loss,
// reordering (a datagram held back and released after the next one), 2 % duplication,
// and the listener's NAT mapping rebinding every 5 s — a new port and a new address
// (127.0.0.2, 127.0.0.3, …) alternately; datagrams in flight to the old mapping are lost.
// Over the run: 2,000 `noise <level>` lines at seeded random times, the monitor SIGKILLed
// and restarted (same directory, same port) twice, one listener SIGSTOPped for 5 s, and
// a 60 s stretch without events in the middle.
//
// The scenario runs once (beforeAll) and prints its report; four tests judge it:
//  1. every NOISE_EVENT the monitor reported (`noise-sent`) reaches every listener exactly
//     once and in order — except events broadcast less than 1 s before a SIGKILL of the
//     monitor, which may die with it (counted and printed separately); 0 duplicates;
//  2. every fault happened on every proxy (each one counted);
//  3. every listener keeps running and reconnects after each restart;
//  4. and never disconnects otherwise (NAT rebinding, loss and the SIGSTOP are ridden out
//     on the same connection).
// p50/p99 delivery latency (receivedAt − timestamp) and the proxy counters are printed.
//
// About 3 minutes by default. CRIBCALL_SOAK_SCALE=N multiplies the phase durations
// (active phases, silence) and the event count; CRIBCALL_SOAK_SEED changes the seed.
// CRIBCALL_SOAK_LOG_DIR=D runs the children with CRIBCALL_LOG=debug (stderr kept in
// D/<name>.log) and QLOGDIR=D/qlog, for diagnosis. Pairing is replaced by pre-created
// state (identities and trust stores in the CLI's directory layout). Runs
// `node dist/cli/main.js` (build first).
import { existsSync, promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { FileTrustStore, loadOrCreateIdentity, type Identity } from '../src/index.js'
import { AgentProcess, CLI, quantile } from './agent-process.js'
import { FaultProxy, rng, type Faults } from './fault-proxy.js'
import { LOOPBACK, freeUdpPort, sleep } from './helpers.js'
import { analyzeListener, noiseOf, type Kill, type Sent, type SoakResult } from './soak-analysis.js'

const SCALE = Number(process.env.CRIBCALL_SOAK_SCALE ?? '1')
if (!Number.isFinite(SCALE) || SCALE <= 0) throw new Error(`CRIBCALL_SOAK_SCALE must be a positive number, got ${process.env.CRIBCALL_SOAK_SCALE}`)
const SEED = Number(process.env.CRIBCALL_SOAK_SEED ?? '20240508') >>> 0
const LOG_DIR = process.env.CRIBCALL_SOAK_LOG_DIR
/** Debug logging of a child, when asked for. */
function logging(name: string): { env?: NodeJS.ProcessEnv; stderrFile?: string } {
  if (LOG_DIR === undefined || LOG_DIR === '') return {}
  return { env: { CRIBCALL_LOG: 'debug', QLOGDIR: path.join(LOG_DIR, 'qlog') }, stderrFile: path.join(LOG_DIR, `${name}.log`) }
}

const LISTENERS = 5
const EVENTS = Math.round(2000 * SCALE)
/** Two phases with events, and the silence between them. */
const ACTIVE_MS = Math.round(60_000 * SCALE)
const SILENCE_MS = Math.round(60_000 * SCALE)
const LOSS = 0.05
const REORDER = 0.03
const DUPLICATE = 0.02
const REBIND_EVERY_MS = 5000
const STOP_MS = 5000
/** Events broadcast this shortly before a SIGKILL of the monitor may be lost with it. */
const AT_RISK_MS = 1000
/** After the last event: how long every listener may take to get everything. */
const SETTLE_MS = 45_000
const FAULTS: Faults = { loss: LOSS, reorder: REORDER, duplicate: DUPLICATE, rebindEveryMs: REBIND_EVERY_MS }

let root = ''
const agents: AgentProcess[] = []
const proxies: FaultProxy[] = []

type Action =
  | { at: number; kind: 'noise'; level: number }
  | { at: number; kind: 'kill' }
  | { at: number; kind: 'stop'; listener: number }

const STOPPED = 2
let result: SoakResult | undefined

/**
 * State: the monitor's identity and trust store, each listener's (CLI layout: <dir>/identity,
 * <dir>/trust.json), and each listener's fault proxy in front of the monitor's `port`.
 */
async function prepareState(port: number): Promise<{ monitorDir: string; monitorId: Identity; listenerDirs: string[] }> {
  const monitorDir = path.join(root, 'monitor')
  const monitorId = await loadOrCreateIdentity(path.join(monitorDir, 'identity'))
  const monitorStore = await FileTrustStore.open(path.join(monitorDir, 'trust.json'))
  let octet = 1
  const nextAddress = (): string => `127.0.0.${(octet = (octet % 250) + 2)}`
  const listenerDirs: string[] = []
  for (let i = 0; i < LISTENERS; i++) {
    const proxy = new FaultProxy(i, port, (SEED + 1000 * (i + 1)) >>> 0, nextAddress, FAULTS)
    await proxy.start()
    proxies.push(proxy)
    const dir = path.join(root, `listener-${i}`)
    const id = await loadOrCreateIdentity(path.join(dir, 'identity'))
    const store = await FileTrustStore.open(path.join(dir, 'trust.json'))
    await store.put({
      deviceId: monitorId.deviceId,
      name: 'Nursery',
      fingerprint: monitorId.fingerprint,
      publicKey: monitorId.publicKey,
      role: 'monitor',
      pairedAt: Date.now() - 1000,
      lastAddress: `${LOOPBACK}:${proxy.port}`,
    })
    await monitorStore.put({ deviceId: id.deviceId, name: `Phone ${i}`, fingerprint: id.fingerprint, publicKey: id.publicKey, role: 'listener', pairedAt: Date.now() - 1000 })
    listenerDirs.push(dir)
  }
  return { monitorDir, monitorId, listenerDirs }
}

type StartMonitor = () => Promise<{ agent: AgentProcess; listeningAt: number }>

/** Starts monitor processes 0, 1, 2, … on `port`; every event one reports sending goes into `sent`. */
function monitorStarter(monitorDir: string, port: number, monitorId: Identity, sent: Sent[]): StartMonitor {
  let monitorIndex = 0
  return async () => {
    const index = monitorIndex++
    const agent = new AgentProcess(['monitor', '--dir', monitorDir, '--host', LOOPBACK, '--port', String(port), '--pair', 'off', '--json'], {
      ...logging(`monitor-${index}`),
      onEvent: (e) => {
        if (e.event === 'noise-sent') sent.push({ timestamp: e.timestamp as number, peakLevel: e.peakLevel as number, monitor: index, listeners: e.listeners as number })
      },
    })
    agents.push(agent)
    const listening = await agent.waitFor('listening', () => true, 30_000)
    if (listening.port !== port || listening.deviceId !== monitorId.deviceId) throw new Error(`unexpected 'listening': ${JSON.stringify(listening)}`)
    return { agent, listeningAt: listening.at }
  }
}

/** Events at seeded random times over the two active phases, the silence between; the kills and the stop. */
function schedule(rand: () => number): Action[] {
  const phaseB = ACTIVE_MS + SILENCE_MS
  const actions: Action[] = []
  for (let k = 0; k < EVENTS; k++) {
    const u = rand() * 2 * ACTIVE_MS
    actions.push({ at: u < ACTIVE_MS ? u : phaseB + (u - ACTIVE_MS), kind: 'noise', level: Math.floor(rand() * 101) })
  }
  // The kills fall half-way between two rebindings. A listener whose mapping changed
  // reveals its new address with its next packet, its keep-alive up to 1 s later; until
  // then the monitor's packets go to the old mapping. A kill just over 1 s after a
  // rebinding could thus take with it an event broadcast just over 1 s before it (one
  // lost just before the rebinding, whose retransmission was stranded) — at the very edge
  // of the issue's 1 s allowance. Half-way, the last rebinding before a kill is 0.5 s
  // earlier (what it strands is within the allowance) and the one before 1.5 s earlier.
  const midway = (ms: number): number => Math.round(ms / 1000) * 1000 + 500
  actions.push({ at: midway(0.3 * ACTIVE_MS), kind: 'kill' }, { at: 0.6 * ACTIVE_MS, kind: 'stop', listener: STOPPED }, { at: midway(phaseB + 0.5 * ACTIVE_MS), kind: 'kill' })
  actions.sort((a, b) => a.at - b.at)
  return actions
}

/** Performs the actions at t0 + their time; returns the largest schedule lag and when the stopped listener was stopped. */
async function play(
  actions: readonly Action[],
  t0: number,
  firstMonitor: AgentProcess,
  startMonitor: StartMonitor,
  watchers: readonly AgentProcess[],
  kills: Kill[],
): Promise<{ lag: number; stop: { at: number; contAt: number } | undefined }> {
  let monitor = firstMonitor
  let stop: { at: number; contAt: number } | undefined
  let contTimer: NodeJS.Timeout | undefined
  let lag = 0
  try {
    for (const action of actions) {
      const wait = t0 + action.at - performance.now()
      if (wait > 0) await sleep(wait)
      else lag = Math.max(lag, -wait)
      if (action.kind === 'noise') {
        // One line at a time, each answered by `noise-sent` before the next: a kill never
        // lands between a line and its broadcast, so the monitor reports every event it sent.
        const from = monitor.events.length
        monitor.write(`noise ${action.level}`)
        const e = await monitor.waitFor('noise-sent', () => true, 10_000, from)
        if (e.peakLevel !== action.level) throw new Error(`noise-sent for level ${String(e.peakLevel)}, expected ${action.level}`)
      } else if (action.kind === 'kill') {
        const wall = Date.now()
        const at = performance.now()
        await monitor.kill()
        const next = await startMonitor()
        monitor = next.agent
        kills.push({ wall, at, restartedAt: next.listeningAt })
      } else {
        const w = watchers[action.listener]!
        w.signal('SIGSTOP')
        const at = performance.now()
        contTimer = setTimeout(() => {
          w.signal('SIGCONT')
          stop = { at, contAt: performance.now() }
        }, STOP_MS)
      }
    }
  } finally {
    clearTimeout(contTimer)
    for (const w of watchers) w.signal('SIGCONT')
  }
  return { lag, stop }
}

/** Waits until every listener has every event in `mustHave` (at most SETTLE_MS); returns how long after `lastEventAt` that was. */
async function settle(watchers: readonly AgentProcess[], mustHave: readonly Sent[], lastEventAt: number): Promise<number> {
  const complete = (w: AgentProcess): boolean => {
    const got = new Set(noiseOf(w).map((e) => e.timestamp as number))
    return mustHave.every((s) => got.has(s.timestamp))
  }
  const settleDeadline = performance.now() + SETTLE_MS
  while (!watchers.every(complete) && performance.now() < settleDeadline) await sleep(100)
  const settledIn = performance.now() - lastEventAt
  await sleep(1000) // a moment more for stray duplicates to show up, were there any
  return settledIn
}

/** When a sent event left, for the report: before which kill, or after the first event. */
function whenSent(x: Sent, sent: readonly Sent[], kills: readonly Kill[]): string {
  const k = kills.findIndex((kill) => kill.wall >= x.timestamp)
  return k >= 0 ? `${kills[k]!.wall - x.timestamp} ms before kill ${k + 1}` : `${x.timestamp - sent[0]!.timestamp} ms after the first event`
}

function printReport(soak: SoakResult, atRisk: (s: Sent) => boolean, lag: number, settledIn: number): void {
  const { sent, kills, stop, t0, runS, listeners } = soak
  const end = ACTIVE_MS + SILENCE_MS + ACTIVE_MS
  const s = (ms: number): string => `${((ms - t0) / 1000).toFixed(1)} s`
  const all = listeners.flatMap((r) => r.latencies)
  const lines = [
    `soak (seed ${SEED}, scale ${SCALE}): ${sent.length} events over ${runS.toFixed(0)} s (scenario ${(end / 1000).toFixed(0)} s, ${SILENCE_MS / 1000} s of silence from ${(ACTIVE_MS / 1000).toFixed(0)} s, ` +
      `schedule lag ≤ ${lag.toFixed(0)} ms); monitor killed at ${kills.map((k) => s(k.at)).join(' and ')}, back (listening) after ${kills.map((k) => `${(k.restartedAt - k.at).toFixed(0)} ms`).join(' and ')}; ` +
      `listener ${STOPPED} stopped ${stop ? `${s(stop.at)}–${s(stop.contAt)}` : '?'}; all delivered ${settledIn.toFixed(0)} ms after the last event`,
    `delivery latency (receivedAt − timestamp), all listeners: p50 ${quantile(all, 0.5)} ms, p99 ${quantile(all, 0.99)} ms, max ${Math.max(...all)} ms`,
  ]
  for (const r of listeners) {
    const c = proxies[r.i]!.counters
    lines.push(
      `  listener ${r.i}${r.i === STOPPED ? ' (stopped 5 s)' : ''}: ${r.ts.length}/${sent.length} delivered, ${r.duplicates} duplicates, ${r.extra.length} unknown, in order: ${r.inOrder}, ` +
        `missing ${r.missing.length}${r.missing.length ? ` [${r.missing.map((x) => whenSent(x, sent, kills)).join(', ')}]` : ''}, lost at a kill ${r.lost.length}${r.lost.length ? ` [${r.lost.map((x) => `${kills[x.monitor]!.wall - x.timestamp} ms before kill ${x.monitor + 1}`).join(', ')}]` : ''}; ` +
        `latency p50 ${quantile(r.latencies, 0.5)} ms, p99 ${quantile(r.latencies, 0.99)} ms (slowest ${r.slowest.map((x) => `${x.ms} ms at ${s(x.at)}`).join(', ')}); connected ×${r.connected.length}; ` +
        `disconnected ×${r.disconnected.length}${r.disconnected.length ? ` [${r.disconnected.map((d) => `${s(d.at)} code ${String(d.code)} ${String(d.reason).slice(0, 40)}`).join('; ')}]` : ''}; errors ×${r.errors.length}`,
      `    proxy: forwarded ${c.forwarded} (→monitor ${c.toMonitor}, →listener ${c.toListener}), dropped ${c.dropped}, reordered ${c.reordered}, duplicated ${c.duplicated}, ` +
        `rebinds ${c.rebindsPort} port + ${c.rebindsAddress} address`,
    )
  }
  lines.push(`events broadcast < ${AT_RISK_MS} ms before a kill: ${sent.filter(atRisk).length}; of those lost with the monitor, summed over listeners: ${listeners.reduce((n, r) => n + r.lost.length, 0)}`)
  console.log(lines.join('\n'))
}

/** Runs the whole scenario and gathers what every process printed; prints the report. */
async function runSoak(): Promise<SoakResult> {
  const rand = rng(SEED)
  const port = await freeUdpPort()
  const { monitorDir, monitorId, listenerDirs } = await prepareState(port)

  // ---- processes
  const sent: Sent[] = []
  const kills: Kill[] = []
  const startMonitor = monitorStarter(monitorDir, port, monitorId, sent)
  const monitor = (await startMonitor()).agent
  const watchers = listenerDirs.map((dir, i) => {
    const a = new AgentProcess(['watch', '--dir', dir, '--json'], logging(`listener-${i}`))
    agents.push(a)
    return a
  })
  await Promise.all(watchers.map((w) => w.waitFor('connected', () => true, 60_000)))
  // ---- the scenario: events at seeded random times over the two active phases, the silence between
  const t0 = performance.now()
  // Some proxy rebinds every whole second (t0 + 5 s + i s, then every 5 s each).
  for (const [i, p] of proxies.entries()) p.startRebinding(t0, REBIND_EVERY_MS + (i * REBIND_EVERY_MS) / LISTENERS)
  const actions = schedule(rand)
  const { lag, stop } = await play(actions, t0, monitor, startMonitor, watchers, kills)
  const lastEventAt = performance.now()

  // ---- settle: every listener has every event that was not at risk
  const atRisk = (s: Sent): boolean => kills.some((k) => s.timestamp > k.wall - AT_RISK_MS && s.timestamp <= k.wall)
  const settledIn = await settle(watchers, sent.filter((s) => !atRisk(s)), lastEventAt)
  const runS = (performance.now() - t0) / 1000

  // ---- per listener, and the report
  const listeners = watchers.map((watcher, i) => analyzeListener(watcher, i, sent, kills, atRisk))
  const soak: SoakResult = { sent, kills, stop, t0, runS, listeners }
  printReport(soak, atRisk, lag, settledIn)
  return soak
}

beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} is missing: run 'npm run build:ts' first`).toBe(true)
  root = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-soak-'))
  if (LOG_DIR !== undefined && LOG_DIR !== '') await fs.mkdir(path.join(LOG_DIR, 'qlog'), { recursive: true })
  result = await runSoak()
}, 3 * 60_000 * SCALE + 120_000)

afterAll(async () => {
  for (const a of agents) a.signal('SIGCONT')
  await Promise.all(agents.map((a) => a.kill()))
  for (const p of proxies) p.close()
  if (root !== '') await fs.rm(root, { recursive: true, force: true })
})

describe(`soak: ${EVENTS} NOISE_EVENTs to ${LISTENERS} listeners through loss, reordering, duplication and NAT rebinding; 2 monitor restarts, a stopped listener, ${SILENCE_MS / 1000} s of silence`, () => {
  it('every NOISE_EVENT the monitor sent reaches every listener exactly once and in order (except events broadcast < 1 s before a kill)', () => {
    const r = result!
    expect(r.sent).toHaveLength(EVENTS)
    expect(r.kills).toHaveLength(2)
    expect(r.stop, 'the stopped listener was resumed').toBeDefined()
    // Timestamps strictly increase, also across the monitor's restarts (the dedup rule rests on it).
    for (let k = 1; k < r.sent.length; k++) expect(r.sent[k]!.timestamp).toBeGreaterThan(r.sent[k - 1]!.timestamp)
    for (const l of r.listeners) {
      const who = `listener ${l.i}\n${l.watcher.describe()}`
      expect(l.extra, who).toEqual([])
      expect(l.duplicates, who).toBe(0)
      expect(l.inOrder, who).toBe(true)
      expect(l.missing.map((x) => x.timestamp), `${who}\nevents never delivered that were not at risk`).toEqual([])
      expect(l.ts.length + l.lost.length, who).toBe(r.sent.length)
    }
  })

  it('every fault happened on every proxy: loss, reordering, duplication, port and address rebindings', () => {
    const r = result!
    const rebindsEach = Math.floor((r.runS * 1000) / REBIND_EVERY_MS / 2) - 2
    for (const p of proxies) {
      const c = p.counters
      const who = `proxy ${p.index}: ${JSON.stringify(c)}`
      expect(c.dropped, who).toBeGreaterThan(0)
      expect(c.reordered, who).toBeGreaterThan(0)
      expect(c.duplicated, who).toBeGreaterThan(0)
      expect(c.rebindsPort, who).toBeGreaterThanOrEqual(rebindsEach)
      expect(c.rebindsAddress, who).toBeGreaterThanOrEqual(rebindsEach)
      expect(c.dropped / (c.forwarded + c.dropped), who).toBeGreaterThan(0.02)
    }
  })

  it('the listeners keep running and reconnect after each monitor restart', () => {
    const r = result!
    for (const l of r.listeners) {
      const who = `listener ${l.i}\n${l.watcher.describe()}`
      expect(l.watcher.running, who).toBe(true)
      expect(l.finals, who).toEqual([])
      expect(l.errors.map((e) => `${String(e.code)} ${String(e.message)}`), who).toEqual([])
      for (const [k, c] of l.reconnectAfter.entries()) expect(c, `${who}\nno connection after restart ${k + 1}`).toBeDefined()
    }
  })

  it('NAT rebinding, loss and the 5 s SIGSTOP never cost a listener its connection: no disconnect but those of the restarts', () => {
    const r = result!
    for (const l of r.listeners) {
      expect(
        l.unexplained.map((d) => `${((d.at - r.t0) / 1000).toFixed(1)} s: code ${String(d.code)} ${String(d.reason)}`),
        `listener ${l.i}: disconnects not caused by a monitor restart`,
      ).toEqual([])
      expect(l.connected, `listener ${l.i}`).toHaveLength(1 + r.kills.length)
      expect(l.disconnected, `listener ${l.i}`).toHaveLength(r.kills.length)
    }
  })
})

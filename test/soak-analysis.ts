// The soak test's records and their judgement per listener: what the monitor reported
// sending, the kills, and what each `watch` process printed.
import type { AgentEvent, AgentProcess } from './agent-process.js'

export interface Sent {
  timestamp: number
  peakLevel: number
  /** Which monitor process (0, 1, 2) broadcast it. */
  monitor: number
  listeners: number
}

export interface Kill {
  /** Date.now() just before the SIGKILL. */
  wall: number
  /** performance.now() just before the SIGKILL, and when the restarted monitor printed `listening`. */
  at: number
  restartedAt: number
}

export interface ListenerResult {
  i: number
  watcher: AgentProcess
  /** Timestamps of the NOISE_EVENTs it printed, in the order printed. */
  ts: number[]
  /** Timestamps it printed that the monitor never reported sending. */
  extra: number[]
  duplicates: number
  inOrder: boolean
  /** Sent events it never printed: `lost` those at risk (< 1 s before a kill), `missing` the others. */
  lost: Sent[]
  missing: Sent[]
  latencies: number[]
  /** The slowest deliveries: latency and when (performance.now()) the event was printed. */
  slowest: Array<{ ms: number; at: number }>
  connected: AgentEvent[]
  disconnected: AgentEvent[]
  /** Disconnects outside [kill, monitor back + 10 s]. */
  unexplained: AgentEvent[]
  /** For each kill, the first `connected` after the monitor was back. */
  reconnectAfter: Array<AgentEvent | undefined>
  errors: AgentEvent[]
  finals: AgentEvent[]
}

export interface SoakResult {
  sent: Sent[]
  kills: Kill[]
  stop: { at: number; contAt: number } | undefined
  t0: number
  runS: number
  listeners: ListenerResult[]
}

/** The `noise` events a watcher printed, in the order printed. */
export function noiseOf(w: AgentProcess): AgentEvent[] {
  return w.events.filter((e) => e.event === 'noise')
}

/** Judges what listener `i` printed against what was sent (`atRisk`: broadcast < 1 s before a kill). */
export function analyzeListener(watcher: AgentProcess, i: number, sent: readonly Sent[], kills: readonly Kill[], atRisk: (s: Sent) => boolean): ListenerResult {
  const sentTs = new Set(sent.map((s) => s.timestamp))
  const got = noiseOf(watcher)
  const ts = got.map((e) => e.timestamp as number)
  const gotTs = new Set(ts)
  const notGot = sent.filter((s) => !gotTs.has(s.timestamp))
  const connected = watcher.events.filter((e) => e.event === 'connected')
  const disconnected = watcher.events.filter((e) => e.event === 'disconnected')
  return {
    i,
    watcher,
    ts,
    extra: ts.filter((t) => !sentTs.has(t)),
    duplicates: ts.length - gotTs.size,
    inOrder: ts.every((t, k) => k === 0 || t > ts[k - 1]!),
    lost: notGot.filter(atRisk),
    missing: notGot.filter((s) => !atRisk(s)),
    latencies: got.map((e) => (e.receivedAt as number) - (e.timestamp as number)),
    slowest: got
      .map((e) => ({ ms: (e.receivedAt as number) - (e.timestamp as number), at: e.at }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 3),
    connected,
    disconnected,
    unexplained: disconnected.filter((d) => !kills.some((k) => d.at >= k.at && d.at <= k.restartedAt + 10_000)),
    reconnectAfter: kills.map((k) => connected.find((c) => c.at >= k.restartedAt - 50)),
    errors: watcher.events.filter((e) => e.event === 'error'),
    finals: disconnected.filter((d) => d.final === true),
  }
}

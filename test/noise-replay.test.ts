// No lost NOISE_EVENT, over real loopback QUIC: the monitor's replay window (a listener
// that comes back within it gets what it missed, in order, before live events; outside
// it, or from before its pairing, nothing), strictly increasing timestamps, the
// broadcastNoise report, and slow listeners (closed with code 5 once their queue passes
// maxListenerQueueBytes, then caught up by the replay). Raw ControlChannel listeners show
// exactly what the monitor sends; real Listener channels show what an application sees
// (replays dropped by the listener's timestamp rule).
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import {
  ControlChannel,
  ErrorCode,
  InvalidArgumentError,
  InvalidMessageError,
  Listener,
  MemoryTrustStore,
  Monitor,
  TOO_SLOW_REASON,
  canonicalBytes,
  generateIdentity,
  type CloseInfo,
  type Connection,
  type Endpoint,
  type Identity,
  type MonitorOptions,
  type NoiseBroadcastReport,
  type NoiseEventMessage,
  type TrustEntry,
} from '../src/index.js'
import { Harness, LOOPBACK, sleep, waitUntil, withTimeout } from './helpers.js'

let h: Harness
let cleanups: Array<() => Promise<unknown>>

beforeEach(() => {
  h = new Harness()
  cleanups = []
})
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined)
  await h.closeAll()
})

async function startMonitor(options: Partial<MonitorOptions> = {}): Promise<Monitor> {
  const monitor = await Monitor.start({
    host: LOOPBACK,
    port: 0,
    name: 'Nursery',
    identity: generateIdentity(),
    trustStore: new MemoryTrustStore(),
    ...options,
  })
  monitor.on('error', () => undefined)
  cleanups.push(() => monitor.close())
  return monitor
}

/** Stores `id` as a paired listener of the monitor (what pairing would have stored). */
async function pairListener(monitor: Monitor, id: Identity, pairedAt = Date.now()): Promise<void> {
  await monitor.trustStore.put({
    deviceId: id.deviceId,
    name: `listener ${id.deviceId.slice(0, 4)}`,
    fingerprint: id.fingerprint,
    publicKey: id.publicKey,
    role: 'listener',
    pairedAt,
  })
}

function once<A extends unknown[]>(emitter: { once: (event: never, fn: (...args: A) => unknown) => unknown }, event: string, ms = 5000): Promise<A> {
  return withTimeout(
    new Promise<A>((resolve) => (emitter.once as (e: string, l: (...args: A) => unknown) => unknown)(event, (...args: A) => resolve(args))),
    ms,
    `'${event}'`,
  )
}

/** A real Listener paired by QR; resolves once the monitor saw its pairing connection go. */
async function pairRealListener(monitor: Monitor, id: Identity): Promise<{ listener: Listener; entry: TrustEntry }> {
  const listener = new Listener({ identity: id, trustStore: new MemoryTrustStore(), name: 'Phone', reconnect: { minDelayMs: 20, maxDelayMs: 200 } })
  cleanups.push(() => listener.close())
  monitor.openPairing({ durationMs: 30_000 })
  const entry = await listener.pairWithQr(monitor.pairingQrPayload(), { host: LOOPBACK, port: monitor.address.port })
  monitor.closePairing()
  await waitUntil(() => monitor.channels.length === 0, 5000, 'the end of the pairing connection')
  return { listener, entry }
}

interface RawListener {
  channel: ControlChannel
  /** Every NOISE_EVENT received, replays included. */
  noise: NoiseEventMessage[]
  /** The raw payloads of those NOISE_EVENTs. */
  frames: string[]
}

/** A raw listener: a ControlChannel that records every NOISE_EVENT it receives. */
async function rawConnect(ep: Endpoint, monitor: Monitor): Promise<RawListener> {
  const connected = once(monitor, 'listener-connected')
  const channel = await ControlChannel.connect(ep, { host: LOOPBACK, port: monitor.address.port, serverFingerprint: monitor.fingerprint })
  const r: RawListener = { channel, noise: [], frames: [] }
  channel.on('noise', (n) => r.noise.push(n))
  channel.on('error', () => undefined)
  channel.connection.on('frame', (f) => {
    if (f.includes('"NOISE_EVENT"')) r.frames.push(f.toString())
  })
  await connected
  return r
}

/** The listener's dedup rule: deliver a NOISE_EVENT only when newer than the last delivered. */
function dedup(events: NoiseEventMessage[], last = -1): NoiseEventMessage[] {
  const out: NoiseEventMessage[] = []
  for (const e of events) {
    if (e.timestamp <= last) continue
    out.push(e)
    last = e.timestamp
  }
  return out
}

const levels = (events: NoiseEventMessage[]): number[] => events.map((e) => e.peakLevel)

function outcomeOf(report: NoiseBroadcastReport, deviceId: string): string | undefined {
  return report.listeners.find((l) => l.deviceId === deviceId)?.outcome
}

describe('replay window', () => {
  it('a listener back within the window gets every event it missed, in order, before live ones; replays are byte-identical', async () => {
    const monitor = await startMonitor()
    const lid = generateIdentity()
    await pairListener(monitor, lid)
    const ep = await h.bind(lid)

    const first = await rawConnect(ep, monitor)
    for (const level of [1, 2]) expect(monitor.broadcastNoise({ peakLevel: level }).delivered).toBe(1)
    await waitUntil(() => first.noise.length === 2, 5000, 'events 1 and 2')
    const gone = once(monitor, 'listener-disconnected')
    await first.channel.close()
    await gone

    for (const level of [3, 4, 5]) {
      const report = monitor.broadcastNoise({ peakLevel: level })
      expect(report).toMatchObject({ delivered: 0, listeners: [{ deviceId: lid.deviceId, outcome: 'not-connected' }] })
    }
    // A live event broadcast the moment the listener is back still comes after the replay.
    let live: NoiseBroadcastReport | undefined
    monitor.once('listener-connected', () => (live = monitor.broadcastNoise({ peakLevel: 6 })))
    const second = await rawConnect(ep, monitor)
    expect(live?.listeners).toEqual([{ deviceId: lid.deviceId, outcome: 'queued' }])
    await waitUntil(() => second.noise.length >= 6, 5000, 'the replay and event 6')
    monitor.broadcastNoise({ peakLevel: 7 })
    await waitUntil(() => second.noise.length >= 7, 5000, 'event 7')
    await sleep(50)

    // The whole window went out again (the monitor cannot know what the lost connection
    // delivered), in broadcast order, then the live events.
    expect(levels(second.noise)).toEqual([1, 2, 3, 4, 5, 6, 7])
    const ts = second.noise.map((e) => e.timestamp)
    for (let i = 1; i < ts.length; i++) expect(ts[i]).toBeGreaterThan(ts[i - 1]!)
    // What the application sees with the dedup rule: each event once, in order.
    expect(levels(dedup(second.noise, first.noise.at(-1)!.timestamp))).toEqual([3, 4, 5, 6, 7])
    // Replays are the original bytes: canonical JSON, ordinary NOISE_EVENT messages.
    expect(second.frames.slice(0, 2)).toEqual(first.frames)
    for (const [i, f] of second.frames.entries()) expect(f).toBe(Buffer.from(canonicalBytes(second.noise[i])).toString())
  })

  it('real Listener: events broadcast while it is away arrive after its reconnect, each exactly once, in order', async () => {
    const monitor = await startMonitor()
    const id = generateIdentity()
    const { listener, entry } = await pairRealListener(monitor, id)

    const up = once<[{ channel: ControlChannel }]>(monitor, 'listener-connected')
    const ch = await listener.connect(entry.deviceId)
    const [{ channel: atMonitor }] = await up
    const got: NoiseEventMessage[] = []
    ch.on('noise', (n) => got.push(n))
    ch.on('error', () => undefined)
    monitor.broadcastNoise({ peakLevel: 1 })
    await waitUntil(() => got.length === 1, 5000, 'event 1')

    // Away: the events go out while the monitor knows it has no channel.
    const reports: NoiseBroadcastReport[] = []
    monitor.once('listener-disconnected', () => {
      reports.push(monitor.broadcastNoise({ peakLevel: 2 }), monitor.broadcastNoise({ peakLevel: 3 }))
    })
    monitor.once('listener-connected', () => reports.push(monitor.broadcastNoise({ peakLevel: 4 })))
    await atMonitor.close(ErrorCode.INTERNAL_ERROR, 'test: dropped')
    await waitUntil(() => got.length >= 4, 10_000, 'events 2-4 after the reconnect')
    monitor.broadcastNoise({ peakLevel: 5 })
    await waitUntil(() => got.length >= 5, 5000, 'event 5')
    await sleep(50)

    expect(reports.map((r) => outcomeOf(r, id.deviceId))).toEqual(['not-connected', 'not-connected', 'queued'])
    expect(levels(got)).toEqual([1, 2, 3, 4, 5])
  })

  it('a listener away longer than the window gets only the events still in it', async () => {
    const monitor = await startMonitor({ replayWindowMs: 1000 })
    const lid = generateIdentity()
    await pairListener(monitor, lid, Date.now() - 10_000)
    const ep = await h.bind(lid)
    monitor.broadcastNoise({ peakLevel: 10 }) // will be 1.5 s old: outside the window
    await sleep(1500)
    monitor.broadcastNoise({ peakLevel: 11 })
    const r = await rawConnect(ep, monitor)
    monitor.broadcastNoise({ peakLevel: 12 })
    await waitUntil(() => r.noise.length >= 2, 5000, 'events 11 and 12')
    await sleep(50)
    expect(levels(r.noise)).toEqual([11, 12])
  })

  it('replayWindowMs 0 disables the replay', async () => {
    const monitor = await startMonitor({ replayWindowMs: 0 })
    expect(monitor.noiseSettings.replayWindowMs).toBe(0)
    const lid = generateIdentity()
    await pairListener(monitor, lid, Date.now() - 10_000)
    const ep = await h.bind(lid)
    expect(outcomeOf(monitor.broadcastNoise({ peakLevel: 20 }), lid.deviceId)).toBe('not-connected')
    const r = await rawConnect(ep, monitor)
    monitor.broadcastNoise({ peakLevel: 21 })
    await waitUntil(() => r.noise.length >= 1, 5000, 'event 21')
    await sleep(50)
    expect(levels(r.noise)).toEqual([21])
  })

  it('a listener gets no event broadcast before it was paired', async () => {
    const monitor = await startMonitor()
    monitor.broadcastNoise({ peakLevel: 30 })
    await sleep(5)
    const lid = generateIdentity()
    await pairListener(monitor, lid)
    const ep = await h.bind(lid)
    expect(outcomeOf(monitor.broadcastNoise({ peakLevel: 31 }), lid.deviceId)).toBe('not-connected')
    const r = await rawConnect(ep, monitor)
    monitor.broadcastNoise({ peakLevel: 32 })
    await waitUntil(() => r.noise.length >= 2, 5000, 'events 31 and 32')
    await sleep(50)
    expect(levels(r.noise)).toEqual([31, 32])
  })
})

describe('timestamps, options and the broadcast report', () => {
  it('timestamps strictly increase even when the caller passes equal or older ones; invalid events are refused', async () => {
    const monitor = await startMonitor()
    const lid = generateIdentity()
    await pairListener(monitor, lid)
    const r = await rawConnect(await h.bind(lid), monitor)
    const t0 = 1_700_000_000_000
    const sent = [
      monitor.broadcastNoise({ peakLevel: 1, timestamp: t0 }),
      monitor.broadcastNoise({ peakLevel: 2, timestamp: t0 }),
      monitor.broadcastNoise({ peakLevel: 3, timestamp: t0 - 60_000 }),
      monitor.broadcastNoise({ peakLevel: 4, timestamp: t0 + 100 }),
      monitor.broadcastNoise({ peakLevel: 5 }), // now: far later than t0
    ].map((x) => x.timestamp)
    expect(sent.slice(0, 4)).toEqual([t0, t0 + 1, t0 + 2, t0 + 100])
    expect(sent[4]).toBeGreaterThanOrEqual(Date.now() - 1000)
    expect(() => monitor.broadcastNoise({ peakLevel: 101 })).toThrow(InvalidMessageError)
    expect(() => monitor.broadcastNoise({ peakLevel: 1, timestamp: -1 })).toThrow(InvalidMessageError)
    expect(() => monitor.broadcastNoise({ peakLevel: 1, timestamp: 1.5 })).toThrow(InvalidMessageError)
    const after = monitor.broadcastNoise({ peakLevel: 6, timestamp: 0 })
    expect(after.timestamp).toBe(sent[4]! + 1) // the refused events used no timestamp
    await waitUntil(() => r.noise.length >= 6, 5000, 'six events')
    expect(r.noise.map((e) => e.timestamp)).toEqual([...sent, after.timestamp])
  })

  it('options are validated before anything is bound', async () => {
    const base = { host: LOOPBACK, port: 0, name: 'N', identity: generateIdentity(), trustStore: new MemoryTrustStore() }
    for (const bad of [{ replayWindowMs: -1 }, { replayWindowMs: 1.5 }, { replayWindowMs: Number.NaN }, { maxListenerQueueBytes: 0 }, { maxListenerQueueBytes: 2.5 }]) {
      await expect(Monitor.start({ ...base, ...bad })).rejects.toThrow(InvalidArgumentError)
    }
    const m = await startMonitor()
    expect(m.noiseSettings).toEqual({ replayWindowMs: 60_000, maxListenerQueueBytes: 1024 * 1024 })
  })

  it('reports per paired listener: queued, disconnected-too-slow (a listener whose queue never drains), not-connected', async () => {
    const monitor = await startMonitor({ maxListenerQueueBytes: 600 })
    const [a, b, s] = [generateIdentity(), generateIdentity(), generateIdentity()]
    for (const id of [a, b, s]) await pairListener(monitor, id)
    const fast = await rawConnect(await h.bind(a), monitor)
    // S completes the handshake but never sends: its control stream never opens, so
    // nothing the monitor queues for it can leave.
    const sEp = await h.bind(s)
    const sUp = once(monitor, 'listener-connected')
    const slow: Connection = await sEp.connect({ host: LOOPBACK, port: monitor.address.port, serverFingerprint: monitor.fingerprint })
    await sUp
    const slowFrames: NoiseEventMessage[] = []
    slow.on('frame', (f) => slowFrames.push(JSON.parse(f.toString()) as NoiseEventMessage))
    const slowGone = once<[{ entry: TrustEntry | undefined; code: number; reason: string }]>(monitor, 'listener-disconnected')

    const reports: NoiseBroadcastReport[] = []
    for (let k = 1; k <= 10; k++) {
      reports.push(monitor.broadcastNoise({ peakLevel: k }))
      await waitUntil(() => fast.noise.length === k, 5000, `event ${k} at the fast listener`)
    }
    // A NOISE_EVENT frame is ~118 bytes: 5 fit in 600, the 6th would not.
    expect(reports.map((r) => outcomeOf(r, s.deviceId))).toEqual([
      ...Array<string>(5).fill('queued'),
      'disconnected-too-slow',
      ...Array<string>(4).fill('not-connected'),
    ])
    expect(reports.map((r) => outcomeOf(r, a.deviceId))).toEqual(Array<string>(10).fill('queued'))
    expect(reports.map((r) => outcomeOf(r, b.deviceId))).toEqual(Array<string>(10).fill('not-connected'))
    expect(reports.map((r) => r.delivered)).toEqual([2, 2, 2, 2, 2, 1, 1, 1, 1, 1])
    expect(reports.every((r) => r.listeners.length === 3)).toBe(true)

    // S starts reading (opens its stream): what was queued arrives, then the close.
    slow.send(Buffer.from(canonicalBytes({ type: 'PING', timestamp: 1 })))
    const info: CloseInfo = await withTimeout(slow.closed, 5000, "the slow listener's close")
    expect(info).toMatchObject({ code: ErrorCode.INTERNAL_ERROR, reason: TOO_SLOW_REASON, byPeer: true, application: true })
    const [gone] = await slowGone
    expect(gone).toMatchObject({ code: ErrorCode.INTERNAL_ERROR, reason: TOO_SLOW_REASON })
    expect(gone.entry?.deviceId).toBe(s.deviceId)
    const delivered = slowFrames.filter((m) => m.type === 'NOISE_EVENT')
    // The events queued before the bound was reached (the 6th too when the transport
    // can only tell the queue's size after a send), in order.
    expect(delivered.length).toBeLessThanOrEqual(6)
    expect(levels(delivered)).toEqual([1, 2, 3, 4, 5, 6].slice(0, delivered.length))

    // It comes back and is caught up by the replay: with the dedup rule, every event once, in order.
    const back = await rawConnect(sEp, monitor)
    await waitUntil(() => back.noise.length >= 10, 5000, 'the replay of 10 events')
    expect(levels(back.noise)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    const seen = [...delivered, ...dedup(back.noise, delivered.at(-1)?.timestamp ?? -1)]
    expect(levels(seen)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  })

  it('real Listener and a burst past a tiny queue bound: closed as too slow, reconnects, every event exactly once, in order', async () => {
    const monitor = await startMonitor({ maxListenerQueueBytes: 1000 })
    const id = generateIdentity()
    const { listener, entry } = await pairRealListener(monitor, id)
    const up = once(monitor, 'listener-connected')
    const ch = await listener.connect(entry.deviceId)
    await up
    const got: NoiseEventMessage[] = []
    ch.on('noise', (n) => got.push(n))
    ch.on('error', () => undefined)
    const closes: Array<{ code: number; reason: string }> = []
    monitor.on('listener-disconnected', (i) => closes.push({ code: i.code, reason: i.reason }))

    // Bursts of 500 in one tick until one outruns the transport (the first almost always does).
    const reports: NoiseBroadcastReport[] = []
    for (let burst = 0; burst < 10 && !reports.some((r) => outcomeOf(r, id.deviceId) === 'disconnected-too-slow'); burst++) {
      if (burst > 0) await waitUntil(() => got.length === reports.length, 5000, `burst ${burst}`)
      for (let k = 0; k < 500; k++) reports.push(monitor.broadcastNoise({ peakLevel: k % 101 }))
    }
    const N = reports.length
    const outcomes = reports.map((r) => outcomeOf(r, id.deviceId))
    const cut = outcomes.indexOf('disconnected-too-slow')
    console.log(`${N} events in bursts of 500: queued ${cut} before the queue passed 1000 bytes`)
    expect(cut).toBeGreaterThan(0)
    expect(outcomes.slice(cut + 1).every((o) => o === 'not-connected')).toBe(true)

    await waitUntil(() => got.length >= N, 20_000, `all ${N} events`)
    await sleep(100)
    expect(got.map((e) => e.timestamp)).toEqual(reports.map((r) => r.timestamp))
    expect(closes.filter((c) => c.code !== 0)).toEqual([{ code: ErrorCode.INTERNAL_ERROR, reason: TOO_SLOW_REASON }])
  }, 30_000)
})

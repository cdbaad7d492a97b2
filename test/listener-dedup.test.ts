// Replayed NOISE_EVENTs are delivered at most once: a ListenerChannel delivers a
// NOISE_EVENT only if its timestamp is greater than the last one it delivered from that
// monitor (across reconnects), and counts the others in duplicatesDropped. Checked for
// 'noise', 'message' and the messages() iterator against a fake monitor that replays.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { InvalidArgumentError, generateIdentity, type Message, type NoiseEventMessage } from '../src/index.js'
import { channelMonitor, pairedListener } from './fake-monitor.js'
import { Harness, waitUntil, withTimeout } from './helpers.js'

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

const T = 1_700_000_000_000

describe('NOISE_EVENT replays', () => {
  it('each timestamp is delivered once, in order, across a reconnect; replays and stale events are dropped and counted', async () => {
    const id = generateIdentity()
    // What the fake monitor sends on each connection (timestamps minus T), once the listener spoke.
    const script: Record<number, number[]> = {
      1: [0, 1, 2, 1, 3], // 1 again: a duplicate within one connection
      2: [1, 2, 3, 4, 5, 4, 6], // 1–3 replayed after the reconnect; 4 again, stale
      3: [5, 6, 7], // a second replay window after another reconnect
    }
    let monitorId = ''
    const fake = await channelMonitor(h, id.fingerprint, (ch, n) => {
      for (const t of script[n] ?? []) ch.send({ type: 'NOISE_EVENT', monitorId, timestamp: T + t, peakLevel: (t * 7) % 101 })
      // Close (transient: 5 busy) after what was sent; the last connection stays up.
      if (n < 3) setTimeout(() => void ch.close(5, 'busy'), 50)
    })
    monitorId = fake.identity.deviceId
    const { listener } = await pairedListener(fake, id, { reconnect: { minDelayMs: 20, maxDelayMs: 100 } })
    cleanups.push(() => listener.close())

    const ch = listener.openChannel(fake.identity.deviceId)
    const noise: NoiseEventMessage[] = []
    const messages: Message[] = []
    const iterated: Message[] = []
    ch.on('noise', (n) => void noise.push(n))
    ch.on('message', (m) => void messages.push(m))
    const iterating = (async () => {
      for await (const m of ch.messages()) iterated.push(m)
    })()

    // 15 sent, 8 distinct timestamps: 8 delivered, 7 dropped.
    await waitUntil(() => ch.duplicatesDropped === 7 && noise.length === 8, 10_000, 'all scripted NOISE_EVENTs')
    expect(noise.map((n) => n.timestamp - T)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    expect(messages.filter((m) => m.type === 'NOISE_EVENT')).toEqual(noise)
    expect(ch.lastNoiseTimestamp).toBe(T + 7)
    await ch.close()
    await withTimeout(iterating, 2000, 'the iterator to end')
    expect(iterated.filter((m) => m.type === 'NOISE_EVENT')).toEqual(noise)
    expect(fake.connections()).toBe(3)
    expect(ch.duplicatesDropped).toBe(7)
  })

  it('lastNoiseTimestamp seeds the rule (an app that persisted it across a restart); an invalid one is refused', async () => {
    const id = generateIdentity()
    let monitorId = ''
    const fake = await channelMonitor(h, id.fingerprint, (ch) => {
      for (const t of [0, 1, 2, 3, 4]) ch.send({ type: 'NOISE_EVENT', monitorId, timestamp: T + t, peakLevel: t })
    })
    monitorId = fake.identity.deviceId
    const { listener } = await pairedListener(fake, id)
    cleanups.push(() => listener.close())
    expect(() => listener.openChannel(monitorId, { lastNoiseTimestamp: -1 })).toThrow(InvalidArgumentError)
    const ch = listener.openChannel(monitorId, { lastNoiseTimestamp: T + 2 })
    const noise: number[] = []
    ch.on('noise', (n) => void noise.push(n.timestamp - T))
    await waitUntil(() => noise.length === 2 && ch.duplicatesDropped === 3, 5000, 'the events after the seed')
    expect(noise).toEqual([3, 4])
  })
})

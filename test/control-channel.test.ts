// ControlChannel behaviour over real loopback QUIC: failing handlers and fan-out
// broadcast. Liveness and readiness are in control-channel-liveness.test.ts, async
// iteration and send-side checks in control-channel-iteration.test.ts.
import { describe, expect, it, vi } from 'vitest'

import {
  ControlChannel,
  HandlerError,
  NotAllowedError,
  generateIdentity,
  type CribcallError,
  type Message,
  type NoiseEventMessage,
} from '../src/index.js'
import { LOOPBACK, sleep } from './helpers.js'
import { MONITOR_ID, validMessages, waitFor } from './protocol-helpers.js'
import { useChannelTestContext } from './control-channel-helpers.js'

const { h, uncaught, monitorWithChannels } = useChannelTestContext()

/**
 * Handlers that fail, on both ends of channel A: the monitor's first 'message' handler
 * throws (sdp 'throw') or rejects (sdp 'reject') and a second one records every message;
 * the listener's 'noise' handler throws. Returns what they record.
 */
function failingHandlers(
  monitorA: ControlChannel,
  listenerA: ControlChannel,
): { errorsA: CribcallError[]; seenBySecondListener: Message[]; listenerErrors: CribcallError[]; listenerAMessages: Message[] } {
  const errorsA: CribcallError[] = []
  monitorA.on('error', (e) => {
    errorsA.push(e)
  })
  const seenBySecondListener: Message[] = []
  monitorA.on('message', (m) => {
    if (m.type === 'WEBRTC_OFFER' && m.sdp === 'throw') throw new Error('boom sync')
    if (m.type === 'WEBRTC_OFFER' && m.sdp === 'reject') return Promise.reject(new Error('boom async'))
    return undefined
  })
  monitorA.on('message', (m) => {
    seenBySecondListener.push(m)
  })
  // A 'noise' handler that throws on the listener side.
  const listenerErrors: CribcallError[] = []
  listenerA.on('error', (e) => {
    listenerErrors.push(e)
  })
  listenerA.on('noise', () => {
    throw new Error('noise handler broken')
  })
  const listenerAMessages: Message[] = []
  listenerA.on('message', (m) => {
    listenerAMessages.push(m)
  })
  return { errorsA, seenBySecondListener, listenerErrors, listenerAMessages }
}

/** Channel B exchanges messages in both directions (a stream request and its response), and a ping. */
async function exchangeBothWays(listenerB: ControlChannel, monitorB: ControlChannel): Promise<void> {
  const atMonitorB: Message[] = []
  monitorB.on('message', (m) => {
    atMonitorB.push(m)
  })
  const atListenerB: Message[] = []
  listenerB.on('message', (m) => {
    atListenerB.push(m)
  })
  listenerB.send({ type: 'START_STREAM_REQUEST', sessionId: 'b-1', mediaType: 'audio' })
  await waitFor(() => atMonitorB.some((m) => m.type === 'START_STREAM_REQUEST'), 5000, 'the request at monitor B')
  monitorB.send({ type: 'START_STREAM_RESPONSE', sessionId: 'b-1', accepted: true })
  await waitFor(() => atListenerB.some((m) => m.type === 'START_STREAM_RESPONSE'), 5000, 'the response at listener B')
  expect(typeof (await monitorB.ping())).toBe('number')
}

describe('handlers that fail', () => {
  it('sync throws and async rejections become HandlerError on the channel; nothing crashes; other channels keep working', async () => {
    const a = generateIdentity()
    const b = generateIdentity({ keyType: 'ed25519' })
    const { monitor, id, next } = await monitorWithChannels({ known: [a, b] })
    const target = { host: LOOPBACK, port: monitor.address.port, serverFingerprint: id.fingerprint }

    const nextA = next()
    const listenerA = await ControlChannel.connect(await h.bind(a), target)
    const monitorA = await nextA
    const nextB = next()
    const listenerB = await ControlChannel.connect(await h.bind(b), target)
    const monitorB = await nextB
    expect(monitorA.trust).toBe('trusted')
    expect(monitorA.peerFingerprint).toBe(a.fingerprint)
    expect(monitorB.peerFingerprint).toBe(b.fingerprint)

    const { errorsA, seenBySecondListener, listenerErrors, listenerAMessages } = failingHandlers(monitorA, listenerA)

    listenerA.send({ type: 'WEBRTC_OFFER', sessionId: 's', sdp: 'throw' })
    listenerA.send({ type: 'WEBRTC_OFFER', sessionId: 's', sdp: 'reject' })
    listenerA.send({ type: 'WEBRTC_OFFER', sessionId: 's', sdp: 'fine' })
    await waitFor(() => errorsA.length === 2 && seenBySecondListener.length >= 3, 5000, 'two handler errors')
    expect(errorsA.every((e) => e instanceof HandlerError)).toBe(true)
    expect(errorsA.map((e) => (e as HandlerError).event)).toEqual(['message', 'message'])
    expect(errorsA.map((e) => e.code)).toEqual(['ERR_HANDLER', 'ERR_HANDLER'])
    expect(errorsA.map((e) => (e.cause as Error).message)).toEqual(['boom sync', 'boom async'])
    // The other listener of the same event still saw every message.
    expect(seenBySecondListener.filter((m) => m.type === 'WEBRTC_OFFER').map((m) => (m as { sdp: string }).sdp)).toEqual([
      'throw',
      'reject',
      'fine',
    ])

    monitorA.send({ ...validMessages().NOISE_EVENT, timestamp: 1 })
    await waitFor(() => listenerErrors.length === 1, 5000, "the listener's handler error")
    expect(listenerErrors[0]).toBeInstanceOf(HandlerError)
    expect((listenerErrors[0] as HandlerError).event).toBe('noise')
    expect(listenerAMessages.filter((m) => m.type === 'NOISE_EVENT')).toHaveLength(1)

    // A handler failure is local: no ERROR frame went to the peer, the channel stays open.
    expect(listenerAMessages.filter((m) => m.type === 'ERROR')).toEqual([])
    expect(typeof (await listenerA.ping())).toBe('number')
    expect(monitorA.isClosed).toBe(false)

    // The other channel exchanges messages in both directions afterwards.
    await exchangeBothWays(listenerB, monitorB)
    expect(uncaught).toEqual([])
  })

  it("without an 'error' listener a HandlerError becomes a process warning, never an exception", async () => {
    const a = generateIdentity()
    const { monitor, id, next } = await monitorWithChannels({ known: [a] })
    const nextA = next()
    const listener = await ControlChannel.connect(await h.bind(a), { host: LOOPBACK, port: monitor.address.port, serverFingerprint: id.fingerprint })
    const channel = await nextA
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
    channel.on('message', () => {
      throw new Error('nobody listens for this')
    })
    listener.send({ type: 'PING', timestamp: 5 })
    await waitFor(() => warn.mock.calls.length >= 1, 5000, 'a process warning')
    expect(String(warn.mock.calls[0]![0])).toContain('nobody listens for this')
    expect(await listener.ping()).toBeGreaterThanOrEqual(0)
    expect(uncaught).toEqual([])
  })
})

describe('fan-out with ControlChannel.broadcast', () => {
  // 100 listener channels on 20 listener endpoints (5 connections each): 100 endpoints
  // work too, but their 100 busy IO threads starve the test files running in parallel
  // (Linux schedules threads, not processes, fairly) and make their latency checks flaky.
  it('100 trusted listener channels × 1,000 NOISE_EVENTs: all delivered, in order', async () => {
    const LISTENERS = 100
    const ENDPOINTS = 20
    const EVENTS = 1000
    const ids = Array.from({ length: ENDPOINTS }, (_, i) => generateIdentity({ keyType: i % 4 === 0 ? 'ed25519' : 'p256' }))
    const { monitor, id, channels } = await monitorWithChannels({ known: ids })
    const target = { host: LOOPBACK, port: monitor.address.port, serverFingerprint: id.fingerprint }
    const setupStarted = performance.now()
    const endpoints = await Promise.all(ids.map((lid) => h.bind(lid)))
    const listeners = await Promise.all(
      Array.from({ length: LISTENERS }, (_, i) => ControlChannel.connect(endpoints[i % ENDPOINTS]!, target)),
    )
    await waitFor(() => channels.length === LISTENERS, 10_000, '100 monitor channels')
    // Every control stream is open (the listener's first PING arrived and was answered).
    await waitFor(() => channels.every((c) => c.stats.accepted >= 1), 10_000, 'the opening PINGs')
    expect(channels.every((c) => c.trust === 'trusted')).toBe(true)
    const setupMs = performance.now() - setupStarted

    const counts = new Array<number>(LISTENERS).fill(0)
    const last = new Array<number>(LISTENERS).fill(-1)
    const disorder: string[] = []
    listeners.forEach((ch, i) => {
      ch.on('noise', (e: NoiseEventMessage) => {
        if (e.timestamp <= last[i]!) disorder.push(`listener ${i}: ${e.timestamp} after ${last[i]}`)
        last[i] = e.timestamp
        counts[i]!++
      })
    })
    const base = 1_700_000_000_000
    const started = performance.now()
    for (let i = 0; i < EVENTS; i++) {
      const sent = ControlChannel.broadcast({ type: 'NOISE_EVENT', monitorId: MONITOR_ID, timestamp: base + i, peakLevel: i % 101 }, channels)
      expect(sent).toBe(LISTENERS)
    }
    const queuedMs = performance.now() - started
    await waitFor(() => counts.every((n) => n >= EVENTS), 30_000, 'all events at all listeners')
    const elapsed = performance.now() - started
    await sleep(50)
    expect(disorder).toEqual([])
    expect(counts).toEqual(new Array<number>(LISTENERS).fill(EVENTS))
    expect(last).toEqual(new Array<number>(LISTENERS).fill(base + EVENTS - 1))
    const total = LISTENERS * EVENTS
    console.log(
      `fan-out: ${total} events to ${LISTENERS} listener channels on ${ENDPOINTS} endpoints in ${elapsed.toFixed(0)} ms ` +
        `(${Math.round(total / (elapsed / 1000))} events/s; broadcast calls took ${queuedMs.toFixed(0)} ms; setup ${setupMs.toFixed(0)} ms)`,
    )
    expect(monitor.stats().framesSent).toBeGreaterThanOrEqual(total)
    expect(uncaught).toEqual([])
  }, 60_000)

  it('broadcast checks every channel first: a pairing-only channel among them means nothing is sent', async () => {
    const known = generateIdentity()
    const { monitor, id, channels } = await monitorWithChannels({ known: [known], acceptUnknown: true })
    const target = { host: LOOPBACK, port: monitor.address.port, serverFingerprint: id.fingerprint }
    const trusted = await ControlChannel.connect(await h.bind(known), target)
    const pairing = await ControlChannel.connect(await h.bind(generateIdentity()), { ...target, trust: 'pairing-only' })
    pairing.send({ ...validMessages().PAIR_REQUEST })
    await waitFor(() => channels.length === 2 && channels.every((c) => c.stats.accepted >= 1), 5000, 'both monitor channels')
    const got: Message[] = []
    trusted.on('noise', (m) => {
      got.push(m)
    })
    const noise = { type: 'NOISE_EVENT', monitorId: MONITOR_ID, timestamp: 1, peakLevel: 1 } as const
    const error = (() => {
      try {
        ControlChannel.broadcast(noise, channels)
        return undefined
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(NotAllowedError)
    expect((error as NotAllowedError).rule).toBe('trust')
    expect(ControlChannel.broadcast(noise, channels.filter((c) => c.trust === 'trusted'))).toBe(1)
    await waitFor(() => got.length === 1, 5000, 'the noise event')
    await sleep(50)
    expect(got).toEqual([noise])
  })
})

// ControlChannel behaviour over real loopback QUIC: failing handlers, fan-out
// broadcast, liveness (idle timeout, ping), readiness, async iteration, send-side checks.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import {
  AbortError,
  ConnectionClosedError,
  ControlChannel,
  HandlerError,
  InvalidMessageError,
  NotAllowedError,
  PeerRejectedError,
  SessionConflictError,
  generateIdentity,
  type CloseInfo,
  type CribcallError,
  type Endpoint,
  type Identity,
  type Message,
  type NoiseEventMessage,
} from '../src/index.js'
import { Harness, LOOPBACK, rejectionOf, sleep, withTimeout } from './helpers.js'
import { HAS_INJECT_PANIC, MONITOR_ID, RawPeer, bytesOf, parseFrame, validMessages, waitFor } from './protocol-helpers.js'

let h: Harness
let uncaught: unknown[]
const onUncaught = (e: unknown): void => {
  uncaught.push(e)
}
beforeEach(() => {
  h = new Harness()
  uncaught = []
  process.on('uncaughtException', onUncaught)
  process.on('unhandledRejection', onUncaught)
})
afterEach(async () => {
  process.off('uncaughtException', onUncaught)
  process.off('unhandledRejection', onUncaught)
  vi.restoreAllMocks()
  await h.closeAll()
})

/** A monitor endpoint that wraps every accepted connection in a ControlChannel. */
async function monitorWithChannels(
  options: { known?: Identity[]; acceptUnknown?: boolean; idleTimeoutMs?: number } = {},
): Promise<{ monitor: Endpoint; id: Identity; channels: ControlChannel[]; next: () => Promise<ControlChannel> }> {
  const id = generateIdentity()
  const monitor = await h.bind(id, options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs })
  monitor.setKnownPeers((options.known ?? []).map((k) => k.fingerprint))
  monitor.listen({ acceptUnknown: options.acceptUnknown ?? false })
  const channels: ControlChannel[] = []
  let waiting: Array<(c: ControlChannel) => void> = []
  monitor.on('connection', (c) => {
    const ch = ControlChannel.accept(c)
    channels.push(ch)
    const w = waiting
    waiting = []
    for (const f of w) f(ch)
  })
  const next = (): Promise<ControlChannel> =>
    withTimeout(new Promise<ControlChannel>((resolve) => waiting.push(resolve)), 5000, 'a monitor channel')
  return { monitor, id, channels, next }
}

function closeEvent(channel: ControlChannel, ms: number): Promise<{ info: CloseInfo; at: number }> {
  return withTimeout(
    new Promise<{ info: CloseInfo; at: number }>((resolve) => {
      channel.once('close', (info) => resolve({ info, at: performance.now() }))
    }),
    ms,
    "the channel's 'close'",
  )
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

describe('liveness', () => {
  it.skipIf(!HAS_INJECT_PANIC)('a listener that vanishes closes the monitor channel within the idle timeout (ERR_IDLE_TIMEOUT)', async () => {
    const peerId = generateIdentity()
    const { monitor, id, next } = await monitorWithChannels({ known: [peerId], idleTimeoutMs: 500 })
    const peer = new RawPeer(peerId, { idleTimeoutMs: 500 })
    try {
      const incoming = next()
      const connId = await peer.connect(monitor.address.port, id.fingerprint)
      const channel = await incoming
      expect(channel.trust).toBe('trusted')
      channel.on('error', () => undefined)
      peer.send(connId, bytesOf({ type: 'PING', timestamp: 9 }))
      await waitFor(() => peer.framesOf(connId).length === 1, 5000, 'the PONG at the raw peer')
      expect(parseFrame(peer.framesOf(connId)[0]!)).toEqual({ type: 'PONG', timestamp: 9 })

      const closing = closeEvent(channel, 5000)
      const vanishedAt = performance.now()
      peer.injectPanic() // its IO thread dies: no packet, no CONNECTION_CLOSE, ever
      const pending = rejectionOf(channel.ping({ timeoutMs: 5000 }))
      const { info, at } = await closing
      const after = at - vanishedAt
      console.log(`idle close after ${after.toFixed(0)} ms (idleTimeoutMs 500):`, info)
      expect(info.errorCode).toBe('ERR_IDLE_TIMEOUT')
      expect(info.reason).toMatch(/idle/i)
      expect(info.application).toBe(false)
      expect(after).toBeGreaterThanOrEqual(400)
      expect(after).toBeLessThan(1500)
      // A ping in flight fails with the close, not with its own timeout.
      expect(await pending).toBeInstanceOf(ConnectionClosedError)
      expect(channel.isClosed).toBe(true)
    } finally {
      await peer.close()
    }
  })

  it.skipIf(!HAS_INJECT_PANIC)('a monitor that vanishes closes the listener channel within the idle timeout', async () => {
    const monitorId = generateIdentity()
    const peer = new RawPeer(monitorId, { idleTimeoutMs: 500 })
    try {
      peer.listen(true)
      const endpoint = await h.bind(generateIdentity(), { idleTimeoutMs: 500 })
      const channel = await ControlChannel.connect(endpoint, { host: LOOPBACK, port: peer.port, serverFingerprint: monitorId.fingerprint })
      await waitFor(() => peer.connections.length === 1 && peer.framesOf(peer.connections[0]!).length === 1, 5000, 'the opening PING')
      expect(parseFrame(peer.framesOf(peer.connections[0]!)[0]!).type).toBe('PING')
      const closing = closeEvent(channel, 5000)
      const vanishedAt = performance.now()
      peer.injectPanic()
      const { info, at } = await closing
      expect(info.errorCode).toBe('ERR_IDLE_TIMEOUT')
      expect(info.reason).toMatch(/idle/i)
      expect(at - vanishedAt).toBeGreaterThanOrEqual(400)
      expect(at - vanishedAt).toBeLessThan(1500)
    } finally {
      await peer.close()
    }
  })

  it('ping() measures a round trip on trusted channels, both directions', async () => {
    const a = generateIdentity()
    const { monitor, id, next } = await monitorWithChannels({ known: [a] })
    const incoming = next()
    const listener = await ControlChannel.connect(await h.bind(a), { host: LOOPBACK, port: monitor.address.port, serverFingerprint: id.fingerprint })
    const channel = await incoming
    const pongs: Message[] = []
    listener.on('message', (m) => {
      if (m.type === 'PONG') pongs.push(m)
    })
    const rtts = [await listener.ping(), await channel.ping(), await listener.ping()]
    for (const rtt of rtts) {
      expect(typeof rtt).toBe('number')
      expect(rtt).toBeGreaterThanOrEqual(0)
      expect(rtt).toBeLessThan(1000)
    }
    // Concurrent pings resolve separately.
    const many = await Promise.all(Array.from({ length: 10 }, () => listener.ping()))
    expect(many).toHaveLength(10)
    await waitFor(() => pongs.length >= 12, 2000, 'the PONGs')
    // PONGs echo the PING timestamps, which never repeat.
    const stamps = pongs.map((p) => (p as { timestamp: number }).timestamp)
    expect(new Set(stamps).size).toBe(stamps.length)
    // An aborted ping rejects with AbortError.
    const aborted = await rejectionOf(listener.ping({ signal: AbortSignal.abort('stop') }))
    expect(aborted).toBeInstanceOf(AbortError)
  })

  it('ping() on a pairing-only channel rejects with NotAllowedError and sends nothing', async () => {
    const { monitor, id, next } = await monitorWithChannels({ acceptUnknown: true })
    const incoming = next()
    const listener = await ControlChannel.connect(await h.bind(generateIdentity()), {
      host: LOOPBACK,
      port: monitor.address.port,
      serverFingerprint: id.fingerprint,
      trust: 'pairing-only',
    })
    const channel = await incoming
    expect(channel.trust).toBe('pairing-only')
    expect(listener.trust).toBe('pairing-only')
    for (const c of [listener, channel]) {
      const error = await rejectionOf(c.ping())
      expect(error).toBeInstanceOf(NotAllowedError)
      expect((error as NotAllowedError).rule).toBe('trust')
      expect((error as NotAllowedError).code).toBe('ERR_UNAUTHORIZED')
    }
    await sleep(50)
    expect(monitor.stats().framesReceived).toBe(0)
    expect(channel.isClosed).toBe(false)
    // Pairing upgrades the channel in place; then ping works.
    const trustEvents: string[] = []
    listener.on('trust', (t) => {
      trustEvents.push(t)
    })
    listener.send({ ...validMessages().PAIR_REQUEST })
    await waitFor(() => channel.stats.accepted === 1, 5000, 'the PAIR_REQUEST')
    channel.send({ type: 'PAIR_ACCEPTED', monitorId: MONITOR_ID })
    channel.upgradeTrust()
    listener.upgradeTrust()
    expect(trustEvents).toEqual(['trusted'])
    expect(await listener.ping()).toBeGreaterThanOrEqual(0)
    expect(await channel.ping()).toBeGreaterThanOrEqual(0)
  })

  it('pingIntervalMs keeps an otherwise idle trusted channel alive past the idle timeout', async () => {
    const a = generateIdentity()
    const { monitor, id, next } = await monitorWithChannels({ known: [a], idleTimeoutMs: 400 })
    const incoming = next()
    const endpoint = await h.bind(a, { idleTimeoutMs: 400 })
    const listener = await ControlChannel.connect(endpoint, {
      host: LOOPBACK,
      port: monitor.address.port,
      serverFingerprint: id.fingerprint,
      pingIntervalMs: 100,
    })
    const channel = await incoming
    await sleep(1200)
    expect(listener.isClosed).toBe(false)
    expect(channel.isClosed).toBe(false)
    expect(channel.stats.accepted).toBeGreaterThanOrEqual(8) // the opening PING and the periodic ones
  })
})

describe('readiness', () => {
  it('a listener unknown to a monitor that does not accept unknown peers gets ERR_PEER_REJECTED, never a channel', async () => {
    const { monitor, id, channels } = await monitorWithChannels({ acceptUnknown: false })
    const endpoint = await h.bind(generateIdentity())
    const target = { host: LOOPBACK, port: monitor.address.port, serverFingerprint: id.fingerprint }
    for (const trust of ['trusted', 'pairing-only'] as const) {
      const error = await rejectionOf(ControlChannel.connect(endpoint, { ...target, trust }))
      expect(error).toBeInstanceOf(PeerRejectedError)
      expect((error as PeerRejectedError).code).toBe('ERR_PEER_REJECTED')
    }
    await sleep(100)
    expect(channels).toHaveLength(0)
    expect(monitor.stats().handshakesRejected).toBeGreaterThanOrEqual(2)
    expect(monitor.stats().framesReceived).toBe(0)
    // Once known, the same listener connects and its channel is trusted on both sides.
    const known = generateIdentity()
    monitor.setKnownPeers([known.fingerprint])
    const listener = await ControlChannel.connect(await h.bind(known), target)
    expect(listener.trust).toBe('trusted')
    await waitFor(() => channels.length === 1, 5000, 'the monitor channel')
    expect(channels[0]!.trust).toBe('trusted')
  })
})

describe('async iteration', () => {
  async function trustedPair(): Promise<{ listener: ControlChannel; monitor: ControlChannel }> {
    const a = generateIdentity()
    const m = await monitorWithChannels({ known: [a] })
    const incoming = m.next()
    const listener = await ControlChannel.connect(await h.bind(a), { host: LOOPBACK, port: m.monitor.address.port, serverFingerprint: m.id.fingerprint })
    const monitor = await incoming
    // Wait for the opening PING's PONG so that it is not in the iterations below.
    await waitFor(() => monitor.stats.accepted === 1, 5000, 'the opening PING')
    await sleep(20)
    return { listener, monitor }
  }
  const noise = (i: number): NoiseEventMessage => ({ type: 'NOISE_EVENT', monitorId: MONITOR_ID, timestamp: 1000 + i, peakLevel: i % 101 })

  it('for await receives messages in order and ends when the channel closes', async () => {
    const { listener, monitor } = await trustedPair()
    const controller = new AbortController()
    const received: Message[] = []
    const loop = (async () => {
      for await (const m of listener.messages({ signal: controller.signal })) received.push(m)
      return 'ended'
    })()
    for (let i = 0; i < 50; i++) monitor.send(noise(i))
    await waitFor(() => received.length === 50, 5000, '50 messages')
    await monitor.close(0, 'bye')
    expect(await withTimeout(loop, 5000, 'the loop to end')).toBe('ended')
    expect(received).toEqual(Array.from({ length: 50 }, (_, i) => noise(i)))
  })

  it('messages that arrived before the close are still yielded, then the iteration ends', async () => {
    const { listener, monitor } = await trustedPair()
    const it1 = listener.messages()
    const it2 = listener[Symbol.asyncIterator]()
    let delivered = 0
    listener.on('message', () => {
      delivered++
    })
    for (let i = 0; i < 20; i++) monitor.send(noise(i))
    await waitFor(() => delivered === 20, 5000, '20 deliveries')
    await listener.close()
    for (const iterator of [it1, it2]) {
      const got: Message[] = []
      for await (const m of { [Symbol.asyncIterator]: () => iterator }) got.push(m)
      expect(got).toEqual(Array.from({ length: 20 }, (_, i) => noise(i)))
    }
    // A new iterator on a closed channel ends at once.
    const late = await listener.messages().next()
    expect(late.done).toBe(true)
  })

  it('aborting the signal rejects the iteration with AbortError (waiting or not), and detaches it', async () => {
    const { listener, monitor } = await trustedPair()
    // Aborted while waiting for the next message.
    const controller = new AbortController()
    const reason = new Error('user left')
    const received: Message[] = []
    const loop = (async () => {
      for await (const m of listener.messages({ signal: controller.signal })) {
        received.push(m)
        if (received.length === 3) setTimeout(() => controller.abort(reason), 20)
      }
    })()
    for (let i = 0; i < 3; i++) monitor.send(noise(i))
    const error = await withTimeout(rejectionOf(loop), 5000, 'the aborted loop')
    expect(error).toBeInstanceOf(AbortError)
    expect((error as AbortError).cause).toBe(reason)
    expect(received).toEqual([noise(0), noise(1), noise(2)])

    // Aborted while messages are queued: the next next() rejects.
    const c2 = new AbortController()
    const it2 = listener.messages({ signal: c2.signal })
    let delivered = 0
    listener.on('message', () => {
      delivered++
    })
    monitor.send(noise(10))
    monitor.send(noise(11))
    await waitFor(() => delivered === 2, 5000, 'two deliveries')
    c2.abort()
    expect(await rejectionOf(it2.next())).toBeInstanceOf(AbortError)
    expect((await it2.next()).done).toBe(true)

    // Already aborted: the first next() rejects; nothing is thrown synchronously.
    const it3 = listener.messages({ signal: AbortSignal.abort('early') })
    const early = await rejectionOf(it3.next())
    expect(early).toBeInstanceOf(AbortError)
    expect((early as AbortError).cause).toBe('early')

    // break detaches the iterator; the channel keeps working.
    const got: Message[] = []
    const loop4 = (async () => {
      for await (const m of listener.messages()) {
        got.push(m)
        break
      }
    })()
    monitor.send(noise(20))
    await withTimeout(loop4, 5000, 'the loop with break')
    expect(got).toEqual([noise(20)])
    expect(await listener.ping()).toBeGreaterThanOrEqual(0)
    expect(uncaught).toEqual([])
  })

  it('an iterator that falls more than iteratorBuffer behind fails with IteratorOverflowError', async () => {
    const a = generateIdentity()
    const m = await monitorWithChannels({ known: [a] })
    const incoming = m.next()
    const conn = await (await h.bind(a)).connect({ host: LOOPBACK, port: m.monitor.address.port, serverFingerprint: m.id.fingerprint })
    const listener = new ControlChannel(conn, { role: 'listener', trust: 'trusted', iteratorBuffer: 5 })
    listener.send({ type: 'PING', timestamp: 1 })
    const monitor = await incoming
    const it = listener.messages()
    let delivered = 0
    listener.on('message', () => {
      delivered++
    })
    await waitFor(() => delivered === 1, 5000, 'the PONG')
    for (let i = 0; i < 5; i++) monitor.send(noise(i))
    await waitFor(() => delivered === 6, 5000, 'six deliveries')
    const error = await rejectionOf(it.next())
    expect((error as CribcallError).code).toBe('ERR_ITERATOR_OVERFLOW')
    expect(listener.isClosed).toBe(false)
  })
})

describe('send-side checks', () => {
  it('role, trust, schema, serializability and session conflicts are refused before anything is sent', async () => {
    const a = generateIdentity()
    const { monitor, id, next } = await monitorWithChannels({ known: [a] })
    const incoming = next()
    const listener = await ControlChannel.connect(await h.bind(a), { host: LOOPBACK, port: monitor.address.port, serverFingerprint: id.fingerprint })
    const channel = await incoming
    await waitFor(() => channel.stats.accepted === 1, 5000, 'the opening PING')
    const framesBefore = monitor.stats().framesReceived

    const role = (() => {
      try {
        listener.send(validMessages().NOISE_EVENT)
      } catch (e) {
        return e
      }
      return undefined
    })()
    expect(role).toBeInstanceOf(NotAllowedError)
    expect((role as NotAllowedError).rule).toBe('role')
    expect((role as NotAllowedError).code).toBe('ERR_NOT_ALLOWED')
    expect(() => listener.send({ type: 'PING', timestamp: -1 })).toThrow(InvalidMessageError)
    expect(() => listener.send({ type: 'PING', timestamp: 1, extra: true } as unknown as Message)).toThrow(InvalidMessageError)
    expect(() => listener.send({ type: 'NOPE' } as unknown as Message)).toThrow(InvalidMessageError)
    expect(() => listener.send(null as unknown as Message)).toThrow(InvalidMessageError)
    // A lone surrogate passes the schema but is not serializable: InvalidMessageError too.
    expect(() => listener.send({ ...validMessages().PAIR_REQUEST, listenerName: 'a\ud800' })).toThrow(InvalidMessageError)
    listener.send({ type: 'START_STREAM_REQUEST', sessionId: 'x', mediaType: 'audio' })
    expect(() => listener.send({ type: 'START_STREAM_REQUEST', sessionId: 'x', mediaType: 'audio' })).toThrow(SessionConflictError)
    listener.send({ type: 'END_STREAM', sessionId: 'x' })
    listener.send({ type: 'START_STREAM_REQUEST', sessionId: 'x', mediaType: 'audio_video' })
    await waitFor(() => monitor.stats().framesReceived === framesBefore + 3, 5000, 'the three valid frames')
    await sleep(50)
    expect(monitor.stats().framesReceived).toBe(framesBefore + 3)
    expect(channel.stats).toEqual({ accepted: 4, rejected: 0 })
    await listener.close()
    expect(() => listener.send({ type: 'PING', timestamp: 1 })).toThrow(ConnectionClosedError)
  })
})

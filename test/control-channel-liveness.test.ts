// ControlChannel behaviour over real loopback QUIC: liveness (idle timeout when a peer
// vanishes, ping, pingIntervalMs) and readiness.
import { describe, expect, it } from 'vitest'

import {
  AbortError,
  ConnectionClosedError,
  ControlChannel,
  NotAllowedError,
  PeerRejectedError,
  generateIdentity,
  type CloseInfo,
  type Message,
} from '../src/index.js'
import { LOOPBACK, rejectionOf, sleep, withTimeout } from './helpers.js'
import { MONITOR_ID, RawPeer, bytesOf, parseFrame, validMessages, waitFor } from './protocol-helpers.js'
import { useChannelTestContext } from './control-channel-helpers.js'

const { h, monitorWithChannels } = useChannelTestContext()

function closeEvent(channel: ControlChannel, ms: number): Promise<{ info: CloseInfo; at: number }> {
  return withTimeout(
    new Promise<{ info: CloseInfo; at: number }>((resolve) => {
      channel.once('close', (info) => resolve({ info, at: performance.now() }))
    }),
    ms,
    "the channel's 'close'",
  )
}

describe('liveness', () => {
  it('a listener that vanishes closes the monitor channel within the idle timeout (ERR_IDLE_TIMEOUT)', async () => {
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

  it('a monitor that vanishes closes the listener channel within the idle timeout', async () => {
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

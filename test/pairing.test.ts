// Pairing end to end over real loopback QUIC: QR and CPace PIN pairing succeed, what
// trust means after pairing (closed window, unknown devices, revocation) and NOISE_EVENT
// delivery across reconnects. The PIN session rules, the monitor's checks and the
// transcript are in pairing-pin-session, pairing-monitor-checks and pairing-transcript.
import { describe, expect, it } from 'vitest'

import {
  ControlChannel,
  ListenerChannel,
  Monitor,
  PeerRejectedError,
  generateIdentity,
  type CloseInfo,
  type NoiseEventMessage,
  type TrustEntry,
} from '../src/index.js'
import { LOOPBACK, rejectionOf, sleep, waitUntil, withTimeout } from './helpers.js'
import {
  nextEvent,
  pinRecorder,
  usePairingHarness,
  wrongPin,
  type ListenerSetup,
  type MonitorSetup,
} from './pairing-helpers.js'

const { h, startMonitor, newListener, pairByQr } = usePairingHarness()

// ---------------------------------------------------------------------------
// QR and PIN pairing succeed
// ---------------------------------------------------------------------------

describe('pairing end to end', () => {
  it('QR: both stores get the other device, the monitor-side channel is upgraded to trusted', async () => {
    const m = await startMonitor()
    const l = newListener('Kitchen tablet')
    const paired = nextEvent<[{ entry: TrustEntry; method: 'qr' | 'pin'; channel: ControlChannel }]>(m.monitor, 'paired')
    m.monitor.openPairing()
    const qr = m.monitor.pairingQrPayload()
    const entry = await l.listener.pairWithQr(qr, { host: LOOPBACK })

    // Listener's store: the monitor, pinned to the certificate seen in TLS.
    expect(entry).toMatchObject({
      deviceId: m.identity.deviceId,
      name: 'Nursery',
      fingerprint: m.identity.fingerprint,
      publicKey: m.identity.publicKey,
      role: 'monitor',
      lastAddress: `${LOOPBACK}:${m.monitor.address.port}`,
    })
    expect(l.store.list()).toEqual([entry])

    // Monitor's store: the listener.
    const [info] = await paired
    expect(info.method).toBe('qr')
    expect(info.channel.trust).toBe('trusted')
    expect(info.channel.peerFingerprint).toBe(l.identity.fingerprint)
    expect(m.store.list()).toHaveLength(1)
    expect(m.store.get(l.identity.deviceId)).toMatchObject({
      deviceId: l.identity.deviceId,
      name: 'Kitchen tablet',
      fingerprint: l.identity.fingerprint,
      publicKey: l.identity.publicKey,
      role: 'listener',
    })
  })

  it('PIN: the PIN from openPairing({ onPin }) pairs Listener.pairWithPin; both stores filled, monitor channel trusted', async () => {
    const m = await startMonitor()
    const l = newListener()
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin })
    const paired = nextEvent<[{ entry: TrustEntry; method: 'qr' | 'pin'; channel: ControlChannel }]>(m.monitor, 'paired')
    const prompts: number[] = []
    const entry = await l.listener.pairWithPin(
      { host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint, monitorName: 'Nursery' },
      (info) => {
        prompts.push(info.attempt)
        expect(info.maxAttempts).toBe(3)
        expect(info.expiresInSec).toBe(60)
        return rec.last()
      },
    )
    expect(prompts).toEqual([1])
    expect(rec.pins).toHaveLength(1)
    expect(rec.pins[0]).toMatch(/^\d{6}$/)
    expect(rec.sessions[0]).toMatchObject({ listenerFingerprint: l.identity.fingerprint, listenerId: l.identity.deviceId })
    expect(rec.sessions[0]).not.toHaveProperty('pin')
    expect(entry).toMatchObject({ deviceId: m.identity.deviceId, fingerprint: m.identity.fingerprint, role: 'monitor' })
    expect(l.store.list()).toEqual([entry])

    const [info] = await paired
    expect(info.method).toBe('pin')
    expect(info.channel.trust).toBe('trusted')
    expect(m.store.list()).toHaveLength(1)
    expect(m.store.get(l.identity.deviceId)).toMatchObject({ fingerprint: l.identity.fingerprint, role: 'listener' })
  })

  it('PIN: a monitor that goes away while the user is typing aborts the prompt at once', async () => {
    const m = await startMonitor()
    const l = newListener()
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin })
    let promptSignal: AbortSignal | undefined
    const started = Date.now()
    const result = l.listener
      .pairWithPin({ host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint }, (info) => {
        promptSignal = info.signal
        // The user never finishes typing; the monitor shuts down meanwhile.
        setTimeout(() => void m.monitor.close(), 50)
        return new Promise<string>(() => undefined)
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    const err = await withTimeout(result, 5_000, 'pairWithPin should fail once the monitor is gone')
    expect(err).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
    expect(promptSignal?.aborted).toBe(true)
    expect(Date.now() - started).toBeLessThan(3_000)
    expect(l.store.list()).toEqual([])
  })

  it('PIN: a wrong PIN then the right one pairs within the same session (attempts 1 and 2)', async () => {
    const m = await startMonitor()
    const l = newListener()
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin })
    const prompts: number[] = []
    await l.listener.pairWithPin({ host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint }, (info) => {
      prompts.push(info.attempt)
      return info.attempt === 1 ? wrongPin(rec.last()) : rec.last()
    })
    expect(prompts).toEqual([1, 2])
    expect(rec.pins).toHaveLength(1) // one session, one PIN
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([l.identity.fingerprint])
  })
})

// ---------------------------------------------------------------------------
// After pairing: trust, unknown devices, revocation
// ---------------------------------------------------------------------------

describe('after pairing', () => {
  it('the paired listener connects as trusted while pairing is closed; an unpaired device fails in the handshake', async () => {
    const m = await startMonitor()
    const l = await pairByQr(m)
    m.monitor.closePairing()
    expect(m.monitor.isPairingOpen).toBe(false)

    const connected = nextEvent<[{ channel: ControlChannel; entry: TrustEntry | undefined }]>(m.monitor, 'listener-connected')
    const ch = await l.listener.connect(m.identity.deviceId)
    expect(ch).toBeInstanceOf(ListenerChannel)
    expect(ch.isConnected).toBe(true)
    expect(ch.current?.trust).toBe('trusted')
    const [info] = await connected
    expect(info.channel.trust).toBe('trusted')
    expect(info.entry?.deviceId).toBe(l.identity.deviceId)
    expect(await ch.ping()).toBeGreaterThanOrEqual(0) // PING needs a trusted channel on both sides

    // An unpaired device: refused inside the handshake, by Endpoint.connect and ControlChannel.connect.
    const strangerId = generateIdentity()
    const ep = await h.bind(strangerId)
    const e1 = await rejectionOf(ep.connect({ host: LOOPBACK, port: m.monitor.address.port, serverFingerprint: m.identity.fingerprint }))
    expect(e1).toBeInstanceOf(PeerRejectedError)
    expect((e1 as PeerRejectedError).code).toBe('ERR_PEER_REJECTED')
    const e2 = await rejectionOf(
      ControlChannel.connect(ep, { host: LOOPBACK, port: m.monitor.address.port, serverFingerprint: m.identity.fingerprint, trust: 'pairing-only' }),
    )
    expect(e2).toBeInstanceOf(PeerRejectedError)
    expect((e2 as PeerRejectedError).code).toBe('ERR_PEER_REJECTED')
    expect(m.monitor.channels.map((c) => c.peerFingerprint)).toEqual([l.identity.fingerprint])
  })

  for (const how of ['monitor.revoke', 'trustStore.revoke'] as const) {
    it(`${how}: the live channel closes within 100 ms and the revoked listener cannot reconnect`, async () => {
      const m = await startMonitor()
      const l = await pairByQr(m)
      m.monitor.closePairing()
      const connected = nextEvent(m.monitor, 'listener-connected')
      const ch = await l.listener.connect(m.identity.deviceId)
      await connected
      await ch.ping()

      let disconnectedAt = 0
      let closedAt = 0
      let closeInfo: CloseInfo | undefined
      const reconnects: number[] = []
      ch.on('disconnected', () => (disconnectedAt = performance.now()))
      ch.on('reconnecting', (i) => reconnects.push(i.attempt))
      ch.on('close', (i) => {
        closedAt = performance.now()
        closeInfo = i
      })
      const revokedEvent = nextEvent<[TrustEntry]>(m.monitor, 'revoked')
      const t0 = performance.now()
      const removed = how === 'monitor.revoke' ? await m.monitor.revoke(l.identity.deviceId) : await m.store.revoke(l.identity.deviceId)
      expect(removed?.fingerprint).toBe(l.identity.fingerprint)
      await waitUntil(() => closedAt > 0, 2000, "the listener channel's 'close'")
      const ms = disconnectedAt - t0
      console.log(`${how}: revoke → listener 'disconnected' in ${ms.toFixed(1)} ms, 'close' in ${(closedAt - t0).toFixed(1)} ms`)
      expect(disconnectedAt).toBeGreaterThan(0)
      expect(ms).toBeLessThan(100)
      expect(closeInfo).toMatchObject({ code: 2, byPeer: true, application: true })
      expect(ch.isClosed).toBe(true)
      expect((await revokedEvent)[0].deviceId).toBe(l.identity.deviceId)
      expect(m.store.list()).toEqual([])

      // No automatic retry, and a new attempt fails in the handshake.
      await sleep(300)
      expect(reconnects).toEqual([])
      const err = await rejectionOf(l.listener.connect(m.identity.deviceId))
      expect(err).toBeInstanceOf(PeerRejectedError)
      expect(m.monitor.channels).toEqual([])
    })
  }
})

// ---------------------------------------------------------------------------
// NOISE_EVENT reaches 'noise' subscribers, also after a reconnect
// ---------------------------------------------------------------------------

describe('NOISE_EVENT across reconnects', () => {
  async function pairedAndConnected(m: MonitorSetup): Promise<{ ch: ListenerChannel; got: NoiseEventMessage[]; l: ListenerSetup }> {
    const l = await pairByQr(m)
    m.monitor.closePairing()
    const connected = nextEvent(m.monitor, 'listener-connected')
    const ch = await l.listener.connect(m.identity.deviceId)
    await connected
    expect(m.monitor.channels.map((c) => c.peerFingerprint)).toEqual([l.identity.fingerprint])
    const got: NoiseEventMessage[] = []
    ch.on('noise', (n) => got.push(n))
    return { ch, got, l }
  }

  async function broadcastUntilDelivered(m: Monitor, peakLevel: number, got: NoiseEventMessage[]): Promise<void> {
    const before = got.length
    expect(m.broadcastNoise({ peakLevel, timestamp: 1_700_000_000_000 + peakLevel }).delivered).toBe(1)
    await waitUntil(() => got.length > before, 3000, `NOISE_EVENT ${peakLevel}`)
  }

  it('the same handler gets events before and after the monitor closed the connection with code 0', async () => {
    const m = await startMonitor()
    const { ch, got } = await pairedAndConnected(m)
    await broadcastUntilDelivered(m.monitor, 17, got)

    const disconnected = nextEvent<[CloseInfo]>(ch, 'disconnected')
    const reconnected = nextEvent<[{ attempt: number }]>(ch, 'connected')
    const back = nextEvent(m.monitor, 'listener-connected')
    const [mch] = m.monitor.channels
    await mch?.close(0, 'bye')
    expect((await disconnected)[0]).toMatchObject({ code: 0, byPeer: true, application: true })
    expect((await reconnected)[0].attempt).toBe(2)
    await back
    await broadcastUntilDelivered(m.monitor, 42, got)

    expect(got).toEqual([
      { type: 'NOISE_EVENT', monitorId: m.identity.deviceId, timestamp: 1_700_000_000_017, peakLevel: 17 },
      { type: 'NOISE_EVENT', monitorId: m.identity.deviceId, timestamp: 1_700_000_000_042, peakLevel: 42 },
    ])
    expect(ch.isClosed).toBe(false)
  })

  it('the same handler gets events after the monitor restarted on the same port (same identity and trust store)', async () => {
    const m = await startMonitor()
    const { ch, got } = await pairedAndConnected(m)
    await broadcastUntilDelivered(m.monitor, 5, got)

    const port = m.monitor.address.port
    const disconnected = nextEvent<[CloseInfo]>(ch, 'disconnected')
    await m.monitor.close()
    const info = (await disconnected)[0]
    expect(ch.isClosed).toBe(false) // a monitor going away is not a revocation
    const m2 = await startMonitor({ identity: m.identity, trustStore: m.store, port })
    const back = nextEvent(m2.monitor, 'listener-connected', 15_000)
    await withTimeout(waitUntil(() => ch.isConnected, 15_000, 'the reconnect'), 16_000, 'the reconnect')
    await back
    await broadcastUntilDelivered(m2.monitor, 6, got)
    expect(got.map((n) => n.peakLevel)).toEqual([5, 6])
    expect(info.byPeer).toBe(true)
  })
})

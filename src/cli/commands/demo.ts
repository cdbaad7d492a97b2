// `cribcall-agent demo`: a monitor and two listeners on loopback, paired by PIN and by
// QR, NOISE_EVENTs delivered to both, the delivery latency printed.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import {
  FileTrustStore,
  Listener,
  MemoryTrustStore,
  Monitor,
  fingerprintOf,
  generateIdentity,
  loadOrCreateIdentity,
  type ListenerChannel,
} from '../../index.js'
import { emit } from '../output.js'

export async function cmdDemo(): Promise<void> {
  const root = await mkdtemp(path.join(tmpdir(), 'cribcall-demo-'))
  const log = (s: string, fields: Record<string, unknown> = {}): void => emit('demo', { step: s, ...fields }, s)
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
      const t0 = performance.now()
      const report = monitor.broadcastNoise({ peakLevel: 20 + i * 15 })
      sentAt.set(report.timestamp, t0)
      log(`NOISE_EVENT peakLevel ${20 + i * 15} sent to ${report.delivered} listeners`)
      await new Promise((r) => setTimeout(r, 25))
    }
    await done
    latencies.sort((x, y) => x - y)
    const median = latencies[Math.floor(latencies.length / 2)] ?? 0
    const max = latencies.at(-1) ?? 0
    log(`${latencies.length} deliveries; latency median ${median.toFixed(3)} ms, max ${max.toFixed(3)} ms`, {
      deliveries: latencies.length,
      latencyMedianMs: Number(median.toFixed(3)),
      latencyMaxMs: Number(max.toFixed(3)),
    })
    await a.close()
    await b.close()
    await monitor.close()
    log(`done; fingerprint check: ${fingerprintOf(monitorId.certPem) === monitorId.fingerprint ? 'ok' : 'MISMATCH'}`)
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

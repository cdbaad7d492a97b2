// Silence (issue 8, "Done when"), with default settings everywhere (QUIC idle timeout
// 30 s; keep-alive 5 s on the monitor, 1 s on the listener; PIN session 60 s):
//  (a) a paired listener idle for 120 s — four idle timeouts — never disconnects, keeps the
//      very same connection, and a NOISE_EVENT broadcast after the silence reaches it;
//  (b) a PIN typed 55 s after the prompt appeared still pairs (the prompt lasts the
//      pairing session's 60 s expiry, not the idle timeout).
// Both run concurrently (about two minutes in all).
import { describe, expect, it } from 'vitest'

import { Listener, MemoryTrustStore, Monitor, generateIdentity, type DisconnectInfo, type NoiseEventMessage, type PinPromptInfo } from '../src/index.js'
import { LOOPBACK, sleep, waitUntil, withTimeout } from './helpers.js'

const IDLE_MS = 120_000
const PIN_DELAY_MS = 55_000

describe.concurrent('silence', () => {
  it('a paired listener with default settings idle for 120 s: 0 disconnects, same connection, and a NOISE_EVENT after the silence arrives', async () => {
    const monitor = await Monitor.start({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), host: LOOPBACK, port: 0, name: 'Nursery' })
    const listener = new Listener({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), name: 'Phone' })
    const errors: unknown[] = []
    monitor.on('error', (e) => errors.push(e))
    try {
      monitor.openPairing({ durationMs: 30_000 })
      const entry = await listener.pairWithQr(monitor.pairingQrPayload(), { host: LOOPBACK, port: monitor.address.port })
      monitor.closePairing()
      await waitUntil(() => monitor.channels.length === 0, 5000, 'the end of the pairing connection')

      const monitorSide: Array<{ code: number; reason: string }> = []
      monitor.on('listener-disconnected', ({ code, reason }) => monitorSide.push({ code, reason }))
      const channel = await listener.connect(entry.deviceId)
      const disconnects: DisconnectInfo[] = []
      const reconnects: number[] = []
      const noise: NoiseEventMessage[] = []
      channel.on('disconnected', (d) => disconnects.push(d))
      channel.on('reconnecting', ({ attempt }) => reconnects.push(attempt))
      channel.on('noise', (n) => noise.push(n))
      channel.on('error', (e) => errors.push(e))
      await waitUntil(() => monitor.channels.length === 1, 5000, "the monitor's side of the channel")
      const connection = channel.current
      const monitorChannel = monitor.channels[0]
      expect(connection).toBeDefined()

      const t0 = performance.now()
      // Idle: nothing is sent by either application. Look every 10 s so a failure names the moment.
      while (performance.now() - t0 < IDLE_MS) {
        await sleep(Math.min(10_000, IDLE_MS - (performance.now() - t0)))
        expect(disconnects, `disconnected after ${((performance.now() - t0) / 1000).toFixed(0)} s of silence`).toEqual([])
      }
      const idleS = (performance.now() - t0) / 1000
      expect(disconnects).toEqual([])
      expect(reconnects).toEqual([])
      expect(monitorSide).toEqual([])
      expect(channel.current).toBe(connection) // the very same QUIC connection
      expect(monitor.channels).toEqual([monitorChannel])

      const report = monitor.broadcastNoise({ peakLevel: 61 })
      expect(report.delivered).toBe(1)
      await withTimeout(
        (async () => {
          while (noise.length === 0) await sleep(5)
        })(),
        5000,
        'the NOISE_EVENT after the silence',
      )
      expect(noise).toEqual([{ type: 'NOISE_EVENT', monitorId: monitor.deviceId, timestamp: report.timestamp, peakLevel: 61 }])
      expect(errors).toEqual([])
      console.log(`silence: ${idleS.toFixed(1)} s idle, 0 disconnects, same connection; NOISE_EVENT after it delivered (${Date.now() - report.timestamp} ms ago)`)
    } finally {
      await listener.close()
      await monitor.close()
    }
  }, IDLE_MS + 60_000)

  it('PIN pairing with default settings: a PIN typed 55 s after the prompt pairs', async () => {
    const monitor = await Monitor.start({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), host: LOOPBACK, port: 0, name: 'Nursery' })
    monitor.on('error', () => undefined)
    const listener = new Listener({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), name: 'Phone' })
    try {
      let pin = ''
      monitor.openPairing({ onPin: (p) => (pin = p) }) // default window: 120 s
      const prompts: PinPromptInfo[] = []
      let aborted = false
      let waitedMs = 0
      const entry = await listener.pairWithPin({ host: LOOPBACK, port: monitor.address.port, monitorFingerprint: monitor.fingerprint }, async (info) => {
        prompts.push(info)
        info.signal.addEventListener('abort', () => (aborted = true))
        const t = performance.now()
        await sleep(PIN_DELAY_MS)
        waitedMs = performance.now() - t
        return pin
      })
      expect(entry).toMatchObject({ deviceId: monitor.deviceId, fingerprint: monitor.fingerprint, role: 'monitor' })
      expect(prompts).toHaveLength(1) // the first PIN was accepted
      expect(prompts[0]!.expiresInSec).toBeGreaterThanOrEqual(60) // the default session expiry
      expect(waitedMs).toBeGreaterThanOrEqual(PIN_DELAY_MS - 5)
      expect(aborted).toBe(false)
      expect(monitor.trustStore.findByFingerprint(listener.identity.fingerprint)).toMatchObject({ role: 'listener' })
      console.log(`silence: PIN typed after ${(waitedMs / 1000).toFixed(1)} s (session expiry ${prompts[0]!.expiresInSec} s) paired`)
    } finally {
      await listener.close()
      await monitor.close()
    }
  }, PIN_DELAY_MS + 60_000)
})

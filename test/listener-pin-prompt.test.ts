// The PIN prompt lasts the pairing session's expiry (PIN_REQUIRED's expiresInSec), not
// the QUIC idle timeout: with keep-alive a PIN typed after several idle timeouts pairs,
// and at the session's expiry the prompt's AbortSignal aborts and pairing fails EXPIRED.
import { randomBytes } from 'node:crypto'

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import {
  ControlChannel,
  Listener,
  MemoryTrustStore,
  Monitor,
  PairingRejectedError,
  PinInitiator,
  generateIdentity,
  type PinPromptInfo,
} from '../src/index.js'
import { Harness, LOOPBACK, rejectionOf, withTimeout } from './helpers.js'

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

/** Short idle timeouts on both sides, kept alive by QUIC PINGs. */
const LIVELY = { idleTimeoutMs: 1000, keepAliveMs: 200 }

describe('the PIN prompt', () => {
  it('outlives the idle timeout: a PIN typed after 2.5 idle timeouts pairs (keep-alive on)', async () => {
    const monitor = await Monitor.start({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), host: LOOPBACK, port: 0, name: 'Nursery', endpoint: LIVELY })
    monitor.on('error', () => undefined)
    cleanups.push(() => monitor.close())
    let pin = ''
    monitor.openPairing({ durationMs: 60_000, onPin: (p) => (pin = p) })
    const listener = new Listener({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), name: 'Phone', endpoint: LIVELY })
    cleanups.push(() => listener.close())
    let aborted = false
    const entry = await listener.pairWithPin({ host: LOOPBACK, port: monitor.address.port, monitorFingerprint: monitor.fingerprint }, (info) => {
      info.signal.addEventListener('abort', () => (aborted = true))
      return new Promise<string>((resolve) => setTimeout(() => resolve(pin), 2500))
    })
    expect(entry.deviceId).toBe(monitor.deviceId)
    expect(aborted).toBe(false)
  })

  it("is abandoned at the session's expiry: getPin's signal aborts and pairing fails with EXPIRED", async () => {
    // A fake monitor announcing a 1 s session that never answers anything else.
    const identity = generateIdentity()
    const endpoint = await h.bind(identity)
    endpoint.listen({ acceptUnknown: true })
    endpoint.on('connection', (conn) => {
      const ch = ControlChannel.accept(conn, { trust: 'pairing-only' })
      ch.on('error', () => undefined)
      ch.on('message', (m) => {
        if (m.type !== 'PIN_PAIRING_INIT') return
        const sid = randomBytes(12).toString('base64url')
        const initiator = new PinInitiator('482913', sid, identity.fingerprint, ch.peerFingerprint)
        ch.send({ type: 'PIN_REQUIRED', monitorId: identity.deviceId, pairingSessionId: sid, pakeMsgA: initiator.share.toString('base64'), expiresInSec: 1, maxAttempts: 3 })
      })
    })
    const listener = new Listener({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), name: 'Phone' })
    cleanups.push(() => listener.close())
    let prompt: PinPromptInfo | undefined
    let promptedAt = 0
    let abortedAt = 0
    const pairing = listener.pairWithPin({ host: LOOPBACK, port: endpoint.address.port, monitorFingerprint: identity.fingerprint }, (info) => {
      prompt = info
      promptedAt = performance.now()
      info.signal.addEventListener('abort', () => (abortedAt = performance.now()))
      return new Promise<string>(() => undefined) // the user never types
    })
    const err = await withTimeout(rejectionOf(pairing), 5000, 'pairing to fail')
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('EXPIRED')
    expect(prompt?.expiresInSec).toBe(1)
    expect(prompt?.signal.aborted).toBe(true)
    expect(prompt?.signal.reason).toBe(err)
    // Measured from the receipt of PIN_REQUIRED (just before the prompt), never earlier.
    expect(abortedAt - promptedAt).toBeGreaterThanOrEqual(950)
    expect(abortedAt - promptedAt).toBeLessThan(2000)
  })
})

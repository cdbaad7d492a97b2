// QR pairing bound to the pairing window's one-time secret (SPEC.md §7.1), over real
// loopback QUIC: a device that learnt the monitor's fingerprint but never saw the QR code
// is refused and nothing is stored; the listener that scanned it pairs; wrong secrets,
// secrets of an earlier window and proofs bound to other identities are refused; legacy
// requests (no proof) only with the application's opt-in; the approve hook's signal. The
// SPEC's test vectors are in qr-pairing-vectors.test.ts.
import { randomBytes } from 'node:crypto'

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import {
  ControlChannel,
  Listener,
  MemoryTrustStore,
  Monitor,
  PairingRejectedError,
  PinMismatchError,
  generateIdentity,
  generateQrPairingSecret,
  parseQrPayload,
  qrPairingProof,
  type Identity,
  type Message,
  type MonitorOptions,
  type OpenPairingOptions,
  type PairingRequestInfo,
  type QrPairingClaims,
  type TrustEntry,
} from '../src/index.js'
import { Harness, LOOPBACK, rejectionOf, waitUntil, withTimeout } from './helpers.js'

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

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/** A paired listener the monitor already knows, so "nothing stored" is checked against a non-empty store. */
function knownEntry(): TrustEntry {
  const id = generateIdentity()
  return { deviceId: id.deviceId, name: 'Known phone', fingerprint: id.fingerprint, publicKey: id.publicKey, role: 'listener', pairedAt: 1, lastSeenAt: 1 }
}

async function startMonitor(options: Partial<MonitorOptions> = {}): Promise<{
  monitor: Monitor
  store: MemoryTrustStore
  failures: Array<{ method: string; reason: string; fingerprint: string }>
}> {
  const identity = generateIdentity()
  const store = new MemoryTrustStore()
  await store.put(knownEntry())
  const monitor = await Monitor.start({ host: LOOPBACK, port: 0, name: 'Nursery', ...options, identity, trustStore: store })
  monitor.on('error', () => undefined)
  const failures: Array<{ method: string; reason: string; fingerprint: string }> = []
  monitor.on('pairing-failed', (f) => failures.push(f))
  cleanups.push(() => monitor.close())
  return { monitor, store, failures }
}

function newListener(name = 'Parent phone', identity: Identity = generateIdentity()): { listener: Listener; identity: Identity; store: MemoryTrustStore } {
  const store = new MemoryTrustStore()
  const listener = new Listener({ identity, trustStore: store, name, endpoint: { handshakeTimeoutMs: 3000 } })
  cleanups.push(() => listener.close())
  return { listener, identity, store }
}

/** Opens pairing with an approve hook that records what it was asked. */
function openWithRecorder(monitor: Monitor, options: OpenPairingOptions = {}): PairingRequestInfo[] {
  const asked: PairingRequestInfo[] = []
  monitor.openPairing({
    ...options,
    approve: (r) => {
      asked.push(r)
      return options.approve === undefined ? true : options.approve(r)
    },
  })
  return asked
}

/** A raw pairing-only channel to the monitor, as a device on the LAN would open it. */
async function rawChannel(monitor: Monitor, monitorFingerprint = monitor.fingerprint, identity: Identity = generateIdentity()) {
  const endpoint = await h.bind(identity)
  const ch = await ControlChannel.connect(endpoint, { host: LOOPBACK, port: monitor.address.port, serverFingerprint: monitorFingerprint, trust: 'pairing-only' })
  ch.on('error', () => undefined)
  const all: Message[] = []
  let wake: (() => void) | undefined
  ch.on('message', (m) => {
    all.push(m)
    wake?.()
  })
  let read = 0
  const next = (ms = 5000): Promise<Message> =>
    withTimeout(
      (async () => {
        while (read >= all.length) await new Promise<void>((r) => (wake = r))
        return all[read++] as Message
      })(),
      ms,
      'the next message',
    )
  return { ch, identity, next }
}

function claimsFor(identity: Identity, monitor: Monitor, name: string, over: Partial<QrPairingClaims> = {}): QrPairingClaims {
  return {
    monitorCertFingerprint: monitor.fingerprint,
    listenerCertFingerprint: identity.fingerprint,
    monitorId: monitor.deviceId,
    listenerId: identity.deviceId,
    listenerName: name,
    listenerPublicKey: identity.publicKey,
    ...over,
  }
}

function pairRequest(identity: Identity, name: string, pairingProof?: string): Message {
  return {
    type: 'PAIR_REQUEST',
    listenerId: identity.deviceId,
    listenerName: name,
    listenerPublicKey: identity.publicKey,
    listenerCertFingerprint: identity.fingerprint,
    ...(pairingProof === undefined ? {} : { pairingProof }),
  }
}

const snapshot = (store: MemoryTrustStore): string => JSON.stringify(store.list())

// ---------------------------------------------------------------------------
// The QR payload
// ---------------------------------------------------------------------------

describe('the QR payload carries the window secret', () => {
  it('a new secret each time the window opens; none while closed or without QR pairing', async () => {
    const { monitor } = await startMonitor()
    expect(parseQrPayload(monitor.pairingQrPayload()).pairingSecret).toBeUndefined()
    monitor.openPairing()
    const first = parseQrPayload(monitor.pairingQrPayload()).pairingSecret as string
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(parseQrPayload(monitor.pairingQrPayload()).pairingSecret).toBe(first) // stable within the window
    monitor.openPairing() // reopened while open: a new window, a new secret
    const second = parseQrPayload(monitor.pairingQrPayload()).pairingSecret as string
    expect(second).not.toBe(first)
    monitor.closePairing()
    expect(parseQrPayload(monitor.pairingQrPayload()).pairingSecret).toBeUndefined()
    monitor.openPairing({ allowQr: false, onPin: () => undefined })
    expect(parseQrPayload(monitor.pairingQrPayload()).pairingSecret).toBeUndefined()
    monitor.openPairing()
    const third = parseQrPayload(monitor.pairingQrPayload()).pairingSecret as string
    expect([first, second]).not.toContain(third)
  })

  it('parseQrPayload accepts only a canonical 32-byte unpadded base64url secret', async () => {
    const { monitor } = await startMonitor()
    monitor.openPairing()
    const payload = JSON.parse(monitor.pairingQrPayload()) as Record<string, unknown>
    const secret = payload.pairingSecret as string
    for (const bad of [`${secret}=`, secret.slice(1), `${secret}A`, `${secret.slice(0, 42)}B`, Buffer.from(secret, 'base64url').toString('base64'), 42]) {
      const text = JSON.stringify({ ...payload, pairingSecret: bad })
      let err: unknown
      try {
        parseQrPayload(text)
      } catch (e) {
        err = e
      }
      expect(err, String(bad)).toMatchObject({ code: 'ERR_BAD_QR' })
      expect((err as Error).message).toMatch(/pairingSecret/)
      if (typeof bad === 'string') expect((err as Error).message).not.toContain(bad)
    }
  })
})

// ---------------------------------------------------------------------------
// The monitor's check
// ---------------------------------------------------------------------------

describe('PAIR_REQUEST must prove the window secret', () => {
  it('a device that knows the fingerprint (from any handshake) but not the secret: PAIR_REJECTED, nothing stored, never asked', async () => {
    const { monitor, store, failures } = await startMonitor()
    const asked = openWithRecorder(monitor)
    const before = snapshot(store)

    // The attacker learns the fingerprint the way the issue describes: PinMismatchError.actual.
    const probe = await h.bind(generateIdentity())
    const mismatch = await rejectionOf(probe.connect({ host: LOOPBACK, port: monitor.address.port, serverFingerprint: 'ab'.repeat(32) }))
    expect(mismatch).toBeInstanceOf(PinMismatchError)
    const learnt = (mismatch as PinMismatchError).actual
    expect(learnt).toBe(monitor.fingerprint)

    // Without a proof (what v0.2 listeners send), and with a guessed proof.
    const a = await rawChannel(monitor, learnt)
    a.ch.send(pairRequest(a.identity, 'Intruder'))
    expect(await a.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
    const b = await rawChannel(monitor, learnt)
    b.ch.send(pairRequest(b.identity, 'Intruder', randomBytes(32).toString('base64url').replace(/.$/, 'A')))
    expect(await b.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
    // And through the Listener API with the public part of the QR code only.
    const c = newListener('Intruder')
    const stripped = JSON.parse(monitor.pairingQrPayload()) as Record<string, unknown>
    delete stripped.pairingSecret
    const err = await rejectionOf(c.listener.pairWithQr(JSON.stringify(stripped), { host: LOOPBACK, port: monitor.address.port, timeoutMs: 5000 }))
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('NOT_PAIRING')

    expect(snapshot(store)).toBe(before) // trust store unchanged
    expect(c.store.list()).toEqual([])
    expect(asked).toEqual([]) // the operator is never bothered
    expect(failures.map((f) => f.reason)).toEqual([
      expect.stringMatching(/without pairingProof/),
      expect.stringMatching(/wrong pairingProof/),
      expect.stringMatching(/without pairingProof/),
    ])
    expect(failures.map((f) => f.fingerprint)).toEqual([a.identity.fingerprint, b.identity.fingerprint, c.identity.fingerprint])
    // The refused channels stay usable: the device that did scan the QR code may still pair on them.
    a.ch.send(pairRequest(a.identity, 'Intruder', qrPairingProof(parseQrPayload(monitor.pairingQrPayload()).pairingSecret as string, claimsFor(a.identity, monitor, 'Intruder'))))
    expect(await a.next()).toEqual({ type: 'PAIR_ACCEPTED', monitorId: monitor.deviceId })
  })

  it('the listener that scanned the QR code pairs (Listener.pairWithQr sends the proof)', async () => {
    const { monitor, store } = await startMonitor()
    const asked = openWithRecorder(monitor)
    const l = newListener('Kitchen tablet')
    const entry = await l.listener.pairWithQr(monitor.pairingQrPayload(), { host: LOOPBACK, timeoutMs: 5000 })
    expect(entry).toMatchObject({ deviceId: monitor.deviceId, fingerprint: monitor.fingerprint, role: 'monitor' })
    expect(store.get(l.identity.deviceId)).toMatchObject({ fingerprint: l.identity.fingerprint, name: 'Kitchen tablet' })
    expect(asked).toHaveLength(1)
    expect(asked[0]).toMatchObject({ method: 'qr', legacyQr: false, listenerId: l.identity.deviceId, fingerprint: l.identity.fingerprint })
    expect(asked[0]?.signal).toBeInstanceOf(AbortSignal)

    // A raw request with the proof computed from the QR text (what other implementations do).
    const secret = parseQrPayload(monitor.pairingQrPayload()).pairingSecret as string
    const r = await rawChannel(monitor)
    r.ch.send(pairRequest(r.identity, 'Raw', qrPairingProof(secret, claimsFor(r.identity, monitor, 'Raw'))))
    expect(await r.next()).toEqual({ type: 'PAIR_ACCEPTED', monitorId: monitor.deviceId })
    expect(store.get(r.identity.deviceId)).toMatchObject({ fingerprint: r.identity.fingerprint })
  })

  it('refused: a wrong secret, the secret of an earlier window, a proof bound to other identities', async () => {
    const { monitor, store, failures } = await startMonitor()
    const asked = openWithRecorder(monitor)
    const oldQr = monitor.pairingQrPayload()
    const oldSecret = parseQrPayload(oldQr).pairingSecret as string
    monitor.closePairing()
    openWithRecorder(monitor, { approve: (r) => (asked.push(r), true) })
    const secret = parseQrPayload(monitor.pairingQrPayload()).pairingSecret as string
    expect(secret).not.toBe(oldSecret)
    const before = snapshot(store)

    // A listener holding the QR code of the earlier window.
    const stale = newListener('Stale')
    const err = await rejectionOf(stale.listener.pairWithQr(oldQr, { host: LOOPBACK, timeoutMs: 5000 }))
    expect((err as PairingRejectedError).reason).toBe('NOT_PAIRING')

    const other = generateIdentity()
    const otherMonitor = generateIdentity()
    const cases: Array<{ what: string; proof: (id: Identity) => string }> = [
      { what: 'a random secret', proof: (id) => qrPairingProof(generateQrPairingSecret(), claimsFor(id, monitor, 'Raw')) },
      { what: 'the earlier window secret', proof: (id) => qrPairingProof(oldSecret, claimsFor(id, monitor, 'Raw')) },
      // E.g. a proof the attacker captured from the device that scanned the code: bound to that device's certificate.
      { what: "another listener's fingerprint", proof: (id) => qrPairingProof(secret, claimsFor(id, monitor, 'Raw', { listenerCertFingerprint: other.fingerprint })) },
      { what: "another listener's key", proof: (id) => qrPairingProof(secret, claimsFor(id, monitor, 'Raw', { listenerPublicKey: other.publicKey })) },
      { what: 'another listenerId', proof: (id) => qrPairingProof(secret, claimsFor(id, monitor, 'Raw', { listenerId: other.deviceId })) },
      { what: 'another name', proof: (id) => qrPairingProof(secret, claimsFor(id, monitor, 'Raw', { listenerName: 'Someone else' })) },
      { what: "another monitor's fingerprint", proof: (id) => qrPairingProof(secret, claimsFor(id, monitor, 'Raw', { monitorCertFingerprint: otherMonitor.fingerprint })) },
      { what: 'another monitorId', proof: (id) => qrPairingProof(secret, claimsFor(id, monitor, 'Raw', { monitorId: otherMonitor.deviceId })) },
    ]
    for (const c of cases) {
      const r = await rawChannel(monitor)
      r.ch.send(pairRequest(r.identity, 'Raw', c.proof(r.identity)))
      expect(await r.next(), c.what).toEqual({ type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      await r.ch.close()
    }
    // A proof made for listener A's certificate, replayed by B which presents its own (else
    // the identity check refuses it first): bound to A's fingerprint, so refused.
    const victim = generateIdentity()
    const replay = await rawChannel(monitor)
    replay.ch.send(pairRequest(replay.identity, 'Raw', qrPairingProof(secret, claimsFor(victim, monitor, 'Raw'))))
    expect(await replay.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })

    expect(snapshot(store)).toBe(before)
    expect(stale.store.list()).toEqual([])
    expect(asked).toEqual([])
    expect(failures).toHaveLength(cases.length + 2)
    for (const f of failures) expect(f).toMatchObject({ method: 'qr', reason: expect.stringMatching(/wrong pairingProof/) })
  })

  it('legacy requests (no proof): refused by default, accepted with allowLegacyQr (approve sees legacyQr); a wrong proof stays refused', async () => {
    const { monitor, store } = await startMonitor()
    openWithRecorder(monitor)
    const legacyQr = JSON.parse(monitor.pairingQrPayload()) as Record<string, unknown>
    delete legacyQr.pairingSecret // what a listener predating the secret uses
    const l = newListener('Old phone')
    expect(((await rejectionOf(l.listener.pairWithQr(JSON.stringify(legacyQr), { host: LOOPBACK, timeoutMs: 5000 }))) as PairingRejectedError).reason).toBe('NOT_PAIRING')
    expect(store.get(l.identity.deviceId)).toBeUndefined()

    const asked = openWithRecorder(monitor, { allowLegacyQr: true })
    const entry = await l.listener.pairWithQr(JSON.stringify(legacyQr), { host: LOOPBACK, timeoutMs: 5000 })
    expect(entry.fingerprint).toBe(monitor.fingerprint)
    expect(store.get(l.identity.deviceId)).toMatchObject({ fingerprint: l.identity.fingerprint })
    expect(asked).toMatchObject([{ method: 'qr', legacyQr: true, listenerId: l.identity.deviceId }])

    // The opt-in admits requests without a proof, never requests with a wrong one.
    const r = await rawChannel(monitor)
    r.ch.send(pairRequest(r.identity, 'Raw', qrPairingProof(generateQrPairingSecret(), claimsFor(r.identity, monitor, 'Raw'))))
    expect(await r.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
    // …and a new listener with the real QR code still pairs with its proof (legacyQr false).
    const modern = newListener('New phone')
    await modern.listener.pairWithQr(monitor.pairingQrPayload(), { host: LOOPBACK, timeoutMs: 5000 })
    expect(asked.at(-1)).toMatchObject({ legacyQr: false, listenerId: modern.identity.deviceId })
    expect(() => monitor.openPairing({ allowLegacyQr: 'yes' as unknown as boolean })).toThrow(/allowLegacyQr/)
  })

  it("approve's signal aborts when the requesting connection closes, and when pairing closes", async () => {
    const { monitor, store } = await startMonitor()
    const pending: PairingRequestInfo[] = []
    monitor.openPairing({ approve: (r) => (pending.push(r), new Promise<boolean>(() => undefined)) })
    const secret = parseQrPayload(monitor.pairingQrPayload()).pairingSecret as string

    const a = await rawChannel(monitor)
    a.ch.send(pairRequest(a.identity, 'A', qrPairingProof(secret, claimsFor(a.identity, monitor, 'A'))))
    await waitUntil(() => pending.length === 1, 5000, 'the approve call')
    expect(pending[0]?.signal.aborted).toBe(false)
    await a.ch.close()
    await waitUntil(() => pending[0]?.signal.aborted === true, 5000, 'the abort on close')

    const b = await rawChannel(monitor)
    b.ch.send(pairRequest(b.identity, 'B', qrPairingProof(secret, claimsFor(b.identity, monitor, 'B'))))
    await waitUntil(() => pending.length === 2, 5000, 'the second approve call')
    monitor.openPairing({ approve: () => true }) // reopening an open window does not make it moot
    expect(pending[1]?.signal.aborted).toBe(false)
    monitor.closePairing()
    expect(pending[1]?.signal.aborted).toBe(true)
    expect((pending[1]?.signal.reason as Error).message).toMatch(/pairing window closed/)
    expect(await b.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
    expect(store.list()).toHaveLength(1) // only the entry that was there before
  })
})

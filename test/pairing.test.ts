// Pairing end to end over real loopback QUIC: QR and CPace PIN pairing, the PIN session
// rules (attempts, expiry with an injected clock, one session at a time, lockout), the
// monitor's transcript checks, a fake monitor that lacks the PIN, what trust means after
// pairing (closed window, unknown devices, revocation) and NOISE_EVENT delivery across
// reconnects. Plus the TS/Rust transcript canonicalization cross-check.
import { randomBytes } from 'node:crypto'

import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import {
  ControlChannel,
  Endpoint,
  Listener,
  ListenerChannel,
  MemoryTrustStore,
  Monitor,
  PairingFailedError,
  PairingRejectedError,
  PeerRejectedError,
  PinInitiator,
  ProtocolError,
  generateIdentity,
  respondPin,
  transcriptBytes,
  type CloseInfo,
  type Connection,
  type Identity,
  type Message,
  type MonitorOptions,
  type NoiseEventMessage,
  type PinRequiredMessage,
  type PinSessionInfo,
  type PinTranscriptObject,
  type TrustEntry,
} from '../src/index.js'
import { canonicalStringObject } from '../src/transport/native.js'
import { Harness, LOOPBACK, rejectionOf, sleep, waitUntil, withTimeout } from './helpers.js'

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

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

interface MonitorSetup {
  monitor: Monitor
  identity: Identity
  store: MemoryTrustStore
}

async function startMonitor(options: Partial<MonitorOptions> = {}): Promise<MonitorSetup> {
  const identity = options.identity ?? generateIdentity()
  const store = (options.trustStore as MemoryTrustStore | undefined) ?? new MemoryTrustStore()
  const monitor = await Monitor.start({ host: LOOPBACK, port: 0, name: 'Nursery', ...options, identity, trustStore: store })
  // Errors the monitor reports are expected in several tests (failed attempts); keep them off stderr.
  monitor.on('error', () => undefined)
  cleanups.push(() => monitor.close())
  return { monitor, identity, store }
}

interface ListenerSetup {
  listener: Listener
  identity: Identity
  store: MemoryTrustStore
}

function newListener(name = 'Parent phone'): ListenerSetup {
  const identity = generateIdentity()
  const store = new MemoryTrustStore()
  const listener = new Listener({
    identity,
    trustStore: store,
    name,
    reconnect: { minDelayMs: 20, maxDelayMs: 200 },
    endpoint: { handshakeTimeoutMs: 3000 },
  })
  cleanups.push(() => listener.close())
  return { listener, identity, store }
}

/** Records the PINs the monitor shows (onPin) and the public session info. */
function pinRecorder(): {
  onPin: (pin: string, session: Omit<PinSessionInfo, 'pin'>) => void
  pins: string[]
  sessions: Array<Omit<PinSessionInfo, 'pin'>>
  last: () => string
} {
  const pins: string[] = []
  const sessions: Array<Omit<PinSessionInfo, 'pin'>> = []
  return {
    onPin: (pin, session) => {
      pins.push(pin)
      sessions.push(session)
    },
    pins,
    sessions,
    last: () => {
      const p = pins.at(-1)
      if (p === undefined) throw new Error('the monitor showed no PIN yet')
      return p
    },
  }
}

/** A different 6-digit PIN. */
function wrongPin(pin: string, k = 1): string {
  return String((Number(pin) + k) % 1_000_000).padStart(6, '0')
}

/** Collects every accepted message of a channel; next() waits for the next unread one. */
function inbox(ch: ControlChannel): { next: (ms?: number) => Promise<Message>; all: Message[] } {
  const all: Message[] = []
  let read = 0
  let wake: (() => void) | undefined
  ch.on('message', (m) => {
    all.push(m)
    wake?.()
  })
  ch.on('error', () => undefined)
  return {
    all,
    next: (ms = 5000) =>
      withTimeout(
        (async () => {
          while (read >= all.length) await new Promise<void>((r) => (wake = r))
          return all[read++] as Message
        })(),
        ms,
        'the next message',
      ),
  }
}

/** A raw pairing-only channel to the monitor with a fresh (or given) identity. */
async function rawPairingChannel(
  monitor: Monitor,
  identity: Identity = generateIdentity(),
): Promise<{ ch: ControlChannel; identity: Identity; box: ReturnType<typeof inbox>; endpoint: Endpoint }> {
  const endpoint = await h.bind(identity)
  const ch = await ControlChannel.connect(endpoint, {
    host: LOOPBACK,
    port: monitor.address.port,
    serverFingerprint: monitor.fingerprint,
    trust: 'pairing-only',
  })
  return { ch, identity, box: inbox(ch), endpoint }
}

async function pinInit(ch: ControlChannel, box: ReturnType<typeof inbox>, identity: Identity): Promise<Message> {
  ch.send({
    type: 'PIN_PAIRING_INIT',
    listenerId: identity.deviceId,
    listenerName: 'raw listener',
    protocolVersion: 1,
    listenerCertFingerprint: identity.fingerprint,
  })
  return box.next()
}

function honestTranscript(ch: ControlChannel, req: PinRequiredMessage, identity: Identity): PinTranscriptObject {
  return {
    monitorId: req.monitorId,
    listenerId: identity.deviceId,
    listenerPublicKey: identity.publicKey,
    listenerCertFingerprint: identity.fingerprint,
    monitorCertFingerprint: ch.peerFingerprint,
    pairingSessionId: req.pairingSessionId,
  }
}

/** Sends a PIN_SUBMIT computed honestly with `pin` (CPace with the TLS-observed fingerprints). */
function submitPin(
  ch: ControlChannel,
  req: PinRequiredMessage,
  identity: Identity,
  pin: string,
  transcript: PinTranscriptObject = honestTranscript(ch, req, identity),
): { monitorTag: Buffer } {
  const r = respondPin(
    pin,
    req.pairingSessionId,
    ch.peerFingerprint,
    identity.fingerprint,
    Buffer.from(req.pakeMsgA, 'base64'),
    transcriptBytes(transcript),
  )
  ch.send({
    type: 'PIN_SUBMIT',
    pairingSessionId: req.pairingSessionId,
    pakeMsgB: r.share.toString('base64'),
    transcript,
    authTag: r.listenerTag.toString('base64'),
  })
  return { monitorTag: r.monitorTag }
}

function asPinRequired(m: Message): PinRequiredMessage {
  if (m.type !== 'PIN_REQUIRED') throw new Error(`expected PIN_REQUIRED, got ${JSON.stringify(m)}`)
  return m
}

function nextEvent<A extends unknown[]>(
  emitter: { once: (event: never, listener: (...args: A) => unknown) => unknown },
  event: string,
  ms = 5000,
): Promise<A> {
  return withTimeout(
    new Promise<A>((resolve) => {
      ;(emitter.once as (e: string, l: (...args: A) => unknown) => unknown)(event, (...args: A) => resolve(args))
    }),
    ms,
    `'${event}'`,
  )
}

/** Pairs a fresh listener by QR; returns both sides. */
async function pairByQr(m: MonitorSetup): Promise<ListenerSetup & { entry: TrustEntry }> {
  const l = newListener()
  m.monitor.openPairing()
  const entry = await l.listener.pairWithQr(m.monitor.pairingQrPayload(), { host: LOOPBACK })
  // The listener hangs up the pairing channel afterwards; let the monitor see that.
  await waitUntil(() => m.monitor.channels.length === 0, 3000, 'the monitor to drop the pairing channel')
  return { ...l, entry }
}

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
// PIN session rules
// ---------------------------------------------------------------------------

describe('PIN session rules', () => {
  it('3 wrong PINs: PAIR_REJECTED, and the session is dead — a 4th submit with the right PIN gets EXPIRED', async () => {
    const m = await startMonitor()
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin })
    const failures: string[] = []
    m.monitor.on('pairing-failed', (f) => failures.push(f.reason))

    // Through the Listener API: three prompts, then PairingRejectedError(INVALID_PIN).
    const l = newListener()
    const prompts: number[] = []
    const err = await rejectionOf(
      l.listener.pairWithPin({ host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint }, (info) => {
        prompts.push(info.attempt)
        return wrongPin(rec.last(), info.attempt)
      }),
    )
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('INVALID_PIN')
    expect(prompts).toEqual([1, 2, 3])
    expect(failures).toHaveLength(3)

    // On one raw channel: three wrong PINs, then the right (old) PIN of the same session.
    const { ch, identity, box } = await rawPairingChannel(m.monitor)
    const req = asPinRequired(await pinInit(ch, box, identity))
    const pin = rec.last()
    for (let k = 1; k <= 3; k++) {
      submitPin(ch, req, identity, wrongPin(pin, k))
      expect(await box.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'INVALID_PIN' })
    }
    submitPin(ch, req, identity, pin)
    expect(await box.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'EXPIRED' })
    expect(ch.trust).toBe('pairing-only')
    expect(failures).toHaveLength(6) // the 4th (dead-session) submit is not counted as a failure
    expect(m.store.list()).toEqual([])
    expect(l.store.list()).toEqual([])

    // Control: the same channel can start a new session, and its PIN works.
    const req2 = asPinRequired(await pinInit(ch, box, identity))
    expect(req2.pairingSessionId).not.toBe(req.pairingSessionId)
    const { monitorTag } = submitPin(ch, req2, identity, rec.last())
    expect(await box.next()).toEqual({ type: 'PAIR_ACCEPTED', monitorId: m.identity.deviceId, authTag: monitorTag.toString('base64') })
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([identity.fingerprint])
  })

  it('expiry (injected clock): a submit 59.9 s after the session start is accepted', async () => {
    const t0 = 1_700_000_000_000
    let fakeNow = t0
    const m = await startMonitor({ pin: { now: () => fakeNow } })
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin })
    const l = newListener()
    const entry = await l.listener.pairWithPin(
      { host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint },
      () => {
        fakeNow = t0 + 59_900
        return rec.last()
      },
    )
    expect(rec.sessions[0]?.expiresAt).toBe(t0 + 60_000)
    expect(rec.sessions[0]?.expiresInSec).toBe(60)
    expect(entry.fingerprint).toBe(m.identity.fingerprint)
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([l.identity.fingerprint])
  })

  it('expiry (injected clock): a submit 60.1 s after the session start is rejected with EXPIRED', async () => {
    const t0 = 1_700_000_000_000
    let fakeNow = t0
    const m = await startMonitor({ pin: { now: () => fakeNow } })
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin })
    const l = newListener()
    const prompts: number[] = []
    const err = await rejectionOf(
      l.listener.pairWithPin({ host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint }, (info) => {
        prompts.push(info.attempt)
        fakeNow = t0 + 60_100
        return rec.last()
      }),
    )
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('EXPIRED')
    expect(prompts).toEqual([1])
    expect(m.store.list()).toEqual([])
    expect(l.store.list()).toEqual([])
  })

  it('a second concurrent PIN session gets ERROR 4 CONFLICT; the first session is unaffected', async () => {
    const m = await startMonitor()
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin })

    // Session A is live while its listener "types" the PIN.
    const a = newListener('A')
    let release!: () => void
    const typed = new Promise<void>((r) => (release = r))
    let prompted!: () => void
    const promptedP = new Promise<void>((r) => (prompted = r))
    const pairingA = a.listener.pairWithPin(
      { host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint },
      async () => {
        prompted()
        await typed
        return rec.last()
      },
    )
    await withTimeout(promptedP, 5000, 'the PIN prompt of A')

    // Raw channel B: the exact answer.
    const { ch, identity, box } = await rawPairingChannel(m.monitor)
    const answer = await pinInit(ch, box, identity)
    expect(answer).toEqual({
      type: 'ERROR',
      code: 4,
      error: 'CONFLICT',
      message: 'another PIN pairing session is in progress',
      inReplyTo: 'PIN_PAIRING_INIT',
    })
    expect(ch.isClosed).toBe(false)

    // Listener C through the API: a ProtocolError carrying code 4.
    const c = newListener('C')
    const err = await rejectionOf(
      c.listener.pairWithPin({ host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint }, () => '135790'),
    )
    expect(err).toBeInstanceOf(ProtocolError)
    expect((err as ProtocolError).protocolCode).toBe(4)
    expect((err as ProtocolError).errorName).toBe('CONFLICT')
    expect(rec.pins).toHaveLength(1) // no second PIN was generated

    release()
    const entry = await pairingA
    expect(entry.fingerprint).toBe(m.identity.fingerprint)
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([a.identity.fingerprint])
    expect(c.store.list()).toEqual([])
  })

  async function failSession(m: MonitorSetup, rec: ReturnType<typeof pinRecorder>, wrongs: number): Promise<{ err: unknown; prompts: number }> {
    const l = newListener()
    let prompts = 0
    const err = await rejectionOf(
      l.listener.pairWithPin({ host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint }, (info) => {
        prompts = info.attempt
        if (info.attempt > wrongs) throw new Error('more prompts than planned')
        return wrongPin(rec.last(), info.attempt)
      }),
    )
    await l.listener.close()
    return { err, prompts }
  }

  it('20 failures within 15 minutes: the 20th is answered LOCKED and pairing closes until openPairing() again', async () => {
    const t0 = 1_700_000_000_000
    let fakeNow = t0
    const m = await startMonitor({ pin: { now: () => fakeNow } })
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin })
    const closedEvents: string[] = []
    m.monitor.on('pairing-closed', (i) => closedEvents.push(i.reason))
    let failures = 0
    m.monitor.on('pairing-failed', () => failures++)

    // Six sessions of three wrong PINs each (18 failures), 40 s apart: all inside 15 min.
    for (let s = 0; s < 6; s++) {
      fakeNow = t0 + s * 40_000
      const { err, prompts } = await failSession(m, rec, 3)
      expect(err).toBeInstanceOf(PairingRejectedError)
      expect((err as PairingRejectedError).reason).toBe('INVALID_PIN')
      expect(prompts).toBe(3)
      expect(m.monitor.isPairingOpen).toBe(true)
    }
    expect(failures).toBe(18)

    // Session 7: failure 19 is INVALID_PIN (re-prompt), failure 20 is LOCKED.
    fakeNow = t0 + 6 * 40_000
    const { err, prompts } = await failSession(m, rec, 2)
    expect(prompts).toBe(2)
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('LOCKED')
    expect(failures).toBe(20)
    expect(closedEvents).toEqual(['locked'])
    expect(m.monitor.isPairingOpen).toBe(false)

    // Pairing is closed: an unknown device now fails in the handshake; no PIN pairing possible.
    const stranger = newListener()
    const refused = await rejectionOf(
      stranger.listener.pairWithPin({ host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint }, () => '135790'),
    )
    expect(refused).toBeInstanceOf(PeerRejectedError)
    expect((refused as PeerRejectedError).code).toBe('ERR_PEER_REJECTED')
    expect(rec.pins).toHaveLength(7)
    expect(m.store.list()).toEqual([])

    // The user reopens pairing: PIN pairing works again.
    m.monitor.openPairing({ onPin: rec.onPin })
    const l = newListener()
    const entry = await l.listener.pairWithPin(
      { host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint },
      () => rec.last(),
    )
    expect(entry.fingerprint).toBe(m.identity.fingerprint)
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([l.identity.fingerprint])
  })

  it('the lockout counts only failures of the last 15 minutes', async () => {
    const t0 = 1_700_000_000_000
    let fakeNow = t0
    const m = await startMonitor({ pin: { now: () => fakeNow } })
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin, durationMs: 3_600_000 })
    let failures = 0
    m.monitor.on('pairing-failed', () => failures++)
    for (let s = 0; s < 6; s++) {
      fakeNow = t0 + s * 1000
      expect(((await failSession(m, rec, 3)).err as PairingRejectedError).reason).toBe('INVALID_PIN')
    }
    expect(failures).toBe(18)
    // 15 minutes after the last of those, they no longer count: 3 more are not a lockout.
    fakeNow = t0 + 5000 + 15 * 60_000
    const { err, prompts } = await failSession(m, rec, 3)
    expect(prompts).toBe(3)
    expect((err as PairingRejectedError).reason).toBe('INVALID_PIN')
    expect(failures).toBe(21)
    expect(m.monitor.isPairingOpen).toBe(true)
    const l = newListener()
    await l.listener.pairWithPin({ host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint }, () => rec.last())
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([l.identity.fingerprint])
  })
})

// ---------------------------------------------------------------------------
// The monitor checks the transcript against TLS
// ---------------------------------------------------------------------------

describe('transcript binding', () => {
  it('a transcript naming other identities than TLS observed is INVALID_PIN, counts as a failure, creates no trust', async () => {
    const m = await startMonitor()
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin })
    const reasons: string[] = []
    m.monitor.on('pairing-failed', (f) => reasons.push(f.reason))
    const other = generateIdentity()
    const forgeries: Array<(t: PinTranscriptObject) => PinTranscriptObject> = [
      (t) => ({ ...t, monitorCertFingerprint: other.fingerprint }),
      (t) => ({ ...t, listenerCertFingerprint: other.fingerprint }),
      (t) => ({ ...t, listenerPublicKey: other.publicKey }),
      (t) => ({ ...t, listenerId: other.deviceId }),
      (t) => ({ ...t, monitorId: other.deviceId }),
      (t) => ({ ...t, pairingSessionId: 'another-session' }),
    ]
    const identity = generateIdentity()
    for (let s = 0; s < 2; s++) {
      const { ch, box } = await rawPairingChannel(m.monitor, identity)
      const req = asPinRequired(await pinInit(ch, box, identity))
      // Three forged transcripts, each MACed correctly with the right PIN (the tag is valid
      // for the forged bytes: only the monitor's comparison with TLS can catch them).
      for (const forge of forgeries.slice(s * 3, s * 3 + 3)) {
        submitPin(ch, req, identity, rec.last(), forge(honestTranscript(ch, req, identity)))
        expect(await box.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'INVALID_PIN' })
      }
      // They cost the session's three attempts: the honest submit now finds it dead.
      submitPin(ch, req, identity, rec.last())
      expect(await box.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'EXPIRED' })
      expect(ch.trust).toBe('pairing-only')
      await ch.close()
    }
    expect(reasons).toEqual(Array(6).fill('transcript does not match the TLS identities'))
    expect(m.store.list()).toEqual([])

    // Control: the same identity pairs with an honest transcript.
    const { ch, box } = await rawPairingChannel(m.monitor, identity)
    const req = asPinRequired(await pinInit(ch, box, identity))
    submitPin(ch, req, identity, rec.last())
    expect((await box.next()).type).toBe('PAIR_ACCEPTED')
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([identity.fingerprint])
  })

  it('a CPace run bound to other fingerprints (relayed TLS session) fails the tag check', async () => {
    const m = await startMonitor()
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin })
    const { ch, identity, box } = await rawPairingChannel(m.monitor)
    const req = asPinRequired(await pinInit(ch, box, identity))
    const other = generateIdentity()
    const t = honestTranscript(ch, req, identity)
    // Right PIN, honest transcript, but CI computed over a fingerprint the monitor did not see.
    const r = respondPin(rec.last(), req.pairingSessionId, ch.peerFingerprint, other.fingerprint, Buffer.from(req.pakeMsgA, 'base64'), transcriptBytes(t))
    ch.send({ type: 'PIN_SUBMIT', pairingSessionId: req.pairingSessionId, pakeMsgB: r.share.toString('base64'), transcript: t, authTag: r.listenerTag.toString('base64') })
    expect(await box.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'INVALID_PIN' })
    expect(m.store.list()).toEqual([])
  })
})

// ---------------------------------------------------------------------------
// QR checks (SPEC §7.1), the approve hook, and robustness of the pairing window
// ---------------------------------------------------------------------------

describe('monitor-side pairing checks', () => {
  function pairRequest(identity: Identity, over: Partial<{ listenerPublicKey: string; listenerCertFingerprint: string }> = {}): Message {
    return {
      type: 'PAIR_REQUEST',
      listenerId: identity.deviceId,
      listenerName: 'raw listener',
      listenerPublicKey: identity.publicKey,
      listenerCertFingerprint: identity.fingerprint,
      ...over,
    }
  }

  it('identity mismatch (QR fingerprint, QR public key, PIN_PAIRING_INIT fingerprint): ERROR UNAUTHORIZED in reply to the claim arrives, then close 2', async () => {
    const m = await startMonitor()
    m.monitor.openPairing({ onPin: () => undefined })
    const other = generateIdentity()
    const cases: Array<{ what: string; send: (id: Identity) => Message; detail: string; inReplyTo: string }> = [
      { what: 'QR fingerprint', send: (id) => pairRequest(id, { listenerCertFingerprint: other.fingerprint }), detail: 'listenerCertFingerprint is not the certificate presented in TLS', inReplyTo: 'PAIR_REQUEST' },
      { what: 'QR public key', send: (id) => pairRequest(id, { listenerPublicKey: other.publicKey }), detail: 'listenerPublicKey is not the key of the certificate presented in TLS', inReplyTo: 'PAIR_REQUEST' },
      {
        what: 'PIN init fingerprint',
        send: (id) => ({ type: 'PIN_PAIRING_INIT', listenerId: id.deviceId, listenerName: 'x', protocolVersion: 1, listenerCertFingerprint: other.fingerprint }),
        detail: 'listenerCertFingerprint is not the certificate presented in TLS',
        inReplyTo: 'PIN_PAIRING_INIT',
      },
    ]
    // Repeated: the ERROR frame used to be dropped by a close in the same IO turn most of the time.
    for (let round = 0; round < 5; round++) {
      for (const c of cases) {
        const { ch, identity, box } = await rawPairingChannel(m.monitor)
        ch.send(c.send(identity))
        expect(await box.next(), `${c.what}, round ${round}`).toEqual({ type: 'ERROR', code: 2, error: 'UNAUTHORIZED', message: c.detail, inReplyTo: c.inReplyTo })
        expect(await withTimeout(ch.closed, 3000, 'the close')).toMatchObject({ code: 2, byPeer: true, application: true })
      }
    }
    expect(m.store.list()).toEqual([])
  })

  it('approve hook: a refusal is PAIR_REJECTED NOT_PAIRING; it sees the TLS identity', async () => {
    const m = await startMonitor()
    const seen: Array<{ method: string; fingerprint: string; publicKey: string }> = []
    m.monitor.openPairing({
      approve: (r) => {
        seen.push({ method: r.method, fingerprint: r.fingerprint, publicKey: r.publicKey })
        return false
      },
    })
    const l = newListener()
    const err = await rejectionOf(l.listener.pairWithQr(m.monitor.pairingQrPayload(), { host: LOOPBACK }))
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('NOT_PAIRING')
    expect(seen).toEqual([{ method: 'qr', fingerprint: l.identity.fingerprint, publicKey: l.identity.publicKey }])
    expect(m.store.list()).toEqual([])
    expect(l.store.list()).toEqual([])
  })

  it('approve hook refusing a PIN pairing: PAIR_REJECTED NOT_PAIRING and a pairing-failed event, as for QR', async () => {
    const m = await startMonitor()
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin, approve: () => false })
    const failed = nextEvent<[{ method: string; reason: string; fingerprint: string }]>(m.monitor, 'pairing-failed')
    const l = newListener()
    const err = await rejectionOf(
      l.listener.pairWithPin({ host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint }, () => rec.last()),
    )
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('NOT_PAIRING')
    const [info] = await failed
    expect(info).toEqual({ method: 'pin', reason: 'not approved', fingerprint: l.identity.fingerprint })
    expect(m.store.list()).toEqual([])
    expect(l.store.list()).toEqual([])
  })

  it('a pairing window closed while the application was approving does not pair', async () => {
    const m = await startMonitor()
    m.monitor.openPairing({
      approve: async () => {
        m.monitor.closePairing()
        await sleep(5)
        return true
      },
    })
    const l = newListener()
    const err = await rejectionOf(l.listener.pairWithQr(m.monitor.pairingQrPayload(), { host: LOOPBACK, timeoutMs: 5000 }))
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('NOT_PAIRING')
    expect(m.store.list()).toEqual([])
    expect(l.store.list()).toEqual([])
  })

  it('PIN_PAIRING_INIT without onPin (nobody could see the PIN) or with allowPin: false: NOT_PAIRING', async () => {
    const m = await startMonitor()
    for (const options of [{}, { allowPin: false, onPin: () => undefined }]) {
      m.monitor.openPairing(options)
      const { ch, identity, box } = await rawPairingChannel(m.monitor)
      expect(await pinInit(ch, box, identity)).toEqual({ type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      await ch.close()
    }
    expect(m.store.list()).toEqual([])
  })

  it('PAIR_REQUEST while only PIN pairing is allowed: NOT_PAIRING', async () => {
    const m = await startMonitor()
    m.monitor.openPairing({ allowQr: false, onPin: () => undefined })
    const { ch, identity, box } = await rawPairingChannel(m.monitor)
    ch.send(pairRequest(identity))
    expect(await box.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
    expect(m.store.list()).toEqual([])
  })

  it('a PIN_SUBMIT naming another session, from another channel, does not end the live session', async () => {
    const m = await startMonitor()
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin })
    const a = await rawPairingChannel(m.monitor)
    const req = asPinRequired(await pinInit(a.ch, a.box, a.identity))
    const b = await rawPairingChannel(m.monitor)
    submitPin(b.ch, { ...req, pairingSessionId: 'bogus-session' }, b.identity, '135790')
    expect(await b.box.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'EXPIRED' })
    const { monitorTag } = submitPin(a.ch, req, a.identity, rec.last())
    expect(await a.box.next()).toEqual({ type: 'PAIR_ACCEPTED', monitorId: m.identity.deviceId, authTag: monitorTag.toString('base64') })
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([a.identity.fingerprint])
  })

  it('an already paired listener that pairs again gets an answer (accepted while open, NOT_PAIRING when closed)', async () => {
    const m = await startMonitor()
    const l = await pairByQr(m)
    const again = await l.listener.pairWithQr(m.monitor.pairingQrPayload(), { host: LOOPBACK, timeoutMs: 5000 })
    expect(again.fingerprint).toBe(m.identity.fingerprint)
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([l.identity.fingerprint])
    m.monitor.closePairing()
    const err = await rejectionOf(l.listener.pairWithQr(m.monitor.pairingQrPayload(), { host: LOOPBACK, timeoutMs: 5000 }))
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('NOT_PAIRING')
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([l.identity.fingerprint])
  })
})

// ---------------------------------------------------------------------------
// A fake monitor without the PIN cannot make a listener trust it
// ---------------------------------------------------------------------------

type FakeAnswer = 'no-tag' | 'random-tag' | 'own-guess-tag' | 'reflected-listener-tag' | 'low-order-share'

async function fakeMonitor(answer: FakeAnswer): Promise<{ identity: Identity; port: number; closes: Promise<CloseInfo> }> {
  const identity = generateIdentity()
  const endpoint = await h.bind(identity)
  endpoint.listen({ acceptUnknown: true })
  let resolveClose!: (i: CloseInfo) => void
  const closes = new Promise<CloseInfo>((r) => (resolveClose = r))
  endpoint.on('connection', (conn: Connection) => {
    const ch = ControlChannel.accept(conn, { trust: 'pairing-only' })
    ch.on('error', () => undefined)
    void ch.closed.then(resolveClose)
    let initiator: PinInitiator | undefined
    const sid = randomBytes(12).toString('base64url')
    ch.on('message', (msg) => {
      if (msg.type === 'PIN_PAIRING_INIT') {
        // Its own CPace share, for a PIN it guessed.
        initiator = new PinInitiator('111111', sid, identity.fingerprint, ch.peerFingerprint)
        ch.send({
          type: 'PIN_REQUIRED',
          monitorId: identity.deviceId,
          pairingSessionId: sid,
          // 'low-order-share': the all-zero u-coordinate, which would make K the neutral element.
          pakeMsgA: answer === 'low-order-share' ? Buffer.alloc(32).toString('base64') : initiator.share.toString('base64'),
          expiresInSec: 60,
          maxAttempts: 3,
        })
      } else if (msg.type === 'PIN_SUBMIT' && initiator !== undefined) {
        let authTag: string | undefined
        if (answer === 'random-tag') authTag = randomBytes(32).toString('base64')
        if (answer === 'own-guess-tag') {
          authTag = initiator.confirm(Buffer.from(msg.pakeMsgB, 'base64'), transcriptBytes(msg.transcript)).monitorTag.toString('base64')
        }
        if (answer === 'reflected-listener-tag') authTag = msg.authTag
        ch.send({ type: 'PAIR_ACCEPTED', monitorId: identity.deviceId, ...(authTag === undefined ? {} : { authTag }) })
      }
    })
  })
  return { identity, port: endpoint.address.port, closes }
}

describe('a fake monitor that lacks the PIN', () => {
  for (const answer of ['no-tag', 'random-tag', 'own-guess-tag', 'reflected-listener-tag', 'low-order-share'] as const) {
    it(`${answer === 'low-order-share' ? 'a low-order pakeMsgA' : `PAIR_ACCEPTED with ${answer}`}: pairWithPin rejects (PairingFailedError), the listener trusts nothing`, async () => {
      const fake = await fakeMonitor(answer)
      const l = newListener()
      const paired: TrustEntry[] = []
      l.listener.on('paired', (e) => paired.push(e))
      const err = await rejectionOf(
        l.listener.pairWithPin({ host: LOOPBACK, port: fake.port, monitorFingerprint: fake.identity.fingerprint }, () => '482913'),
      )
      expect(err).toBeInstanceOf(PairingFailedError)
      expect((err as PairingFailedError).code).toBe('ERR_PAIRING_FAILED')
      expect((err as Error).message).toMatch(answer === 'low-order-share' ? /PIN_REQUIRED is unusable/ : /did not prove knowledge of the PIN/)
      expect(l.store.list()).toEqual([])
      expect(paired).toEqual([])
      // The listener hung up with UNAUTHORIZED.
      const info = await withTimeout(fake.closes, 5000, 'the fake monitor to see the close')
      expect(info).toMatchObject({ code: 2, byPeer: true, application: true })
    })
  }
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

// ---------------------------------------------------------------------------
// Transcript canonicalization: TS and Rust agree byte for byte
// ---------------------------------------------------------------------------

describe('transcript canonicalization', () => {
  const KEYS = ['monitorId', 'listenerId', 'listenerPublicKey', 'listenerCertFingerprint', 'monitorCertFingerprint', 'pairingSessionId'] as const
  // JSON-sensitive characters: controls, quotes, backslash, DEL, U+2028/9, BOM, non-BMP.
  const special = fc.constantFrom('"', '\\', '/', '\u0000', '\u0001', '\b', '\f', '\n', '\r', '\t', '\u001f', '\u007f', '\u2028', '\u2029', '\ufeff', '€', '😀', 'é', 'ﬃ')
  const anyString = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.string({ unit: fc.oneof(special, fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 })), maxLength: 30 }),
  )
  const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/)
  const realistic = fc.record({
    monitorId: fc.uuid(),
    listenerId: fc.uuid(),
    listenerPublicKey: fc.uint8Array({ minLength: 32, maxLength: 120 }).map((b) => Buffer.from(b).toString('base64')),
    listenerCertFingerprint: hex64,
    monitorCertFingerprint: hex64,
    pairingSessionId: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
  })
  const arbitrary = fc.record(Object.fromEntries(KEYS.map((k) => [k, anyString])) as Record<(typeof KEYS)[number], fc.Arbitrary<string>>)

  it('transcriptBytes (TS) equals canonicalStringObject (Rust) for random transcripts, any member order', () => {
    let count = 0
    fc.assert(
      fc.property(fc.oneof(realistic, arbitrary), fc.infiniteStream(fc.nat()), (t, rnd) => {
        // The Rust side gets the members in a random insertion order.
        const order = [...KEYS].sort(() => (rnd.next().value % 3) - 1)
        const shuffled: Record<string, string> = {}
        for (const k of order) shuffled[k] = t[k]
        const ts = transcriptBytes(t)
        const rust = canonicalStringObject(shuffled)
        count++
        expect(Buffer.compare(ts, rust)).toBe(0)
        // And both are JSON for the same object.
        expect(JSON.parse(ts.toString('utf8'))).toEqual(t)
      }),
      { numRuns: 5000 },
    )
    console.log(`transcript canonicalization: ${count} random transcripts, TS and Rust byte-identical`)
    expect(count).toBe(5000)
  })

  it('a lone surrogate is refused by both', () => {
    const t: PinTranscriptObject = {
      monitorId: 'a',
      listenerId: 'b\ud800',
      listenerPublicKey: 'c',
      listenerCertFingerprint: 'd',
      monitorCertFingerprint: 'e',
      pairingSessionId: 'f',
    }
    expect(() => transcriptBytes(t)).toThrow()
    expect(() => canonicalStringObject({ ...t })).toThrow()
  })
})


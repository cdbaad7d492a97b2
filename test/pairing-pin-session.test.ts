// Pairing over real loopback QUIC: the PIN session rules — attempts, expiry with an
// injected clock, one session at a time, the lockout.
import { describe, expect, it } from 'vitest'

import { PairingRejectedError, PeerRejectedError, ProtocolError } from '../src/index.js'
import { LOOPBACK, rejectionOf, withTimeout } from './helpers.js'
import {
  asPinRequired,
  pinInit,
  pinRecorder,
  submitPin,
  usePairingHarness,
  wrongPin,
  type MonitorSetup,
} from './pairing-helpers.js'

const { startMonitor, newListener, rawPairingChannel } = usePairingHarness()

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

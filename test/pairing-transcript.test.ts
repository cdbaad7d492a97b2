// Pairing over real loopback QUIC: the monitor checks the PIN transcript against the TLS
// identities; and the TS/Rust transcript canonicalization cross-check.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

import { generateIdentity, respondPin, transcriptBytes, type PinTranscriptObject } from '../src/index.js'
import { canonicalStringObject } from './test-addon.js'
import {
  asPinRequired,
  honestTranscript,
  pinInit,
  pinRecorder,
  submitPin,
  usePairingHarness,
} from './pairing-helpers.js'

const { startMonitor, rawPairingChannel } = usePairingHarness()

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

// The offline-guess harness. An attacker on the LAN poses as the monitor (its own
// certificate; the real listener was given the attacker's fingerprint, as advertising
// itself on the LAN would achieve) and records ONE PIN pairing attempt of a real
// listener: pakeMsgA (its own), pakeMsgB, transcript, authTag. It then tries all 10^6
// PINs offline against the record.
//
// - Positive control: v0.2's construction (bare X25519, the PIN only in the HKDF info),
//   implemented here in the test only. One recorded authTag gives the PIN away.
// - CPace (ours): the only key the attacker can derive is the one for its own guess g
//   (its scalar times the listener's share); for any other PIN it would need the
//   listener's scalar or a discrete logarithm. So the set of PINs consistent with the
//   record is empty when g ≠ PIN, and exactly {g} when g = PIN — the one online guess
//   CPace allows per session.
import { createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, randomInt, type KeyObject } from 'node:crypto'

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import {
  ControlChannel,
  Listener,
  MemoryTrustStore,
  PairingRejectedError,
  PinInitiator,
  generateIdentity,
  transcriptBytes,
  type Connection,
  type Identity,
  type PinTranscriptObject,
  type TrustEntry,
} from '../src/index.js'
import { Harness, LOOPBACK, withTimeout } from './helpers.js'

const REAL_PIN = '482913'
const ALL_PINS = 1_000_000
const SAMPLE = 10_000

const pinOf = (i: number): string => String(i).padStart(6, '0')

let h: Harness
let listeners: Listener[]
beforeEach(() => {
  h = new Harness()
  listeners = []
})
afterEach(async () => {
  await Promise.all(listeners.map((l) => l.close()))
  await h.closeAll()
})

interface CpaceRecord {
  /** The attacker's CPace state (its scalar stays inside; it is the attacker's own). */
  initiator: PinInitiator
  pairingSessionId: string
  /** TLS-observed fingerprints: the attacker's own and the victim listener's. */
  attackerFingerprint: string
  listenerFingerprint: string
  pakeMsgA: Buffer
  pakeMsgB: Buffer
  transcript: PinTranscriptObject
  authTag: Buffer
}

/**
 * Runs a fake monitor (attacker) whose CPace share is for `guess`, lets a real Listener
 * pair with it using the real PIN, and records the one PIN_SUBMIT. If the attacker's
 * own check passes (guess = PIN), it answers PAIR_ACCEPTED with its confirmation tag as
 * a real attacker would; otherwise PAIR_REJECTED INVALID_PIN.
 */
async function recordOneAttempt(guess: string): Promise<{ record: CpaceRecord; outcome: TrustEntry | unknown; listenerStore: MemoryTrustStore }> {
  const attacker: Identity = generateIdentity()
  const endpoint = await h.bind(attacker)
  endpoint.listen({ acceptUnknown: true })
  let resolveRecord!: (r: CpaceRecord) => void
  const recorded = new Promise<CpaceRecord>((r) => (resolveRecord = r))
  endpoint.on('connection', (conn: Connection) => {
    const ch = ControlChannel.accept(conn, { trust: 'pairing-only' })
    ch.on('error', () => undefined)
    const pairingSessionId = randomBytes(16).toString('base64url')
    let initiator: PinInitiator | undefined
    ch.on('message', (m) => {
      if (m.type === 'PIN_PAIRING_INIT') {
        initiator = new PinInitiator(guess, pairingSessionId, attacker.fingerprint, ch.peerFingerprint)
        ch.send({
          type: 'PIN_REQUIRED',
          monitorId: attacker.deviceId,
          pairingSessionId,
          pakeMsgA: initiator.share.toString('base64'),
          expiresInSec: 60,
          maxAttempts: 1,
        })
      } else if (m.type === 'PIN_SUBMIT' && initiator !== undefined) {
        const record: CpaceRecord = {
          initiator,
          pairingSessionId,
          attackerFingerprint: attacker.fingerprint,
          listenerFingerprint: ch.peerFingerprint,
          pakeMsgA: initiator.share,
          pakeMsgB: Buffer.from(m.pakeMsgB, 'base64'),
          transcript: m.transcript,
          authTag: Buffer.from(m.authTag, 'base64'),
        }
        resolveRecord(record)
        const tags = initiator.confirm(record.pakeMsgB, transcriptBytes(record.transcript))
        if (tags.listenerTag.equals(record.authTag)) {
          ch.send({ type: 'PAIR_ACCEPTED', monitorId: attacker.deviceId, authTag: tags.monitorTag.toString('base64') })
        } else {
          ch.send({ type: 'PAIR_REJECTED', reason: 'INVALID_PIN' })
        }
      }
    })
  })

  const listenerStore = new MemoryTrustStore()
  const listener = new Listener({ identity: generateIdentity(), trustStore: listenerStore, name: 'Victim phone' })
  listeners.push(listener)
  let outcome: TrustEntry | unknown
  try {
    outcome = await listener.pairWithPin(
      { host: LOOPBACK, port: endpoint.address.port, monitorFingerprint: attacker.fingerprint, timeoutMs: 10_000 },
      () => REAL_PIN,
    )
  } catch (e) {
    outcome = e
  }
  const record = await withTimeout(recorded, 5000, 'the recorded PIN_SUBMIT')
  expect(record.transcript).toMatchObject({
    monitorId: attacker.deviceId,
    monitorCertFingerprint: attacker.fingerprint,
    listenerCertFingerprint: listener.identity.fingerprint,
    pairingSessionId: record.pairingSessionId,
  })
  return { record, outcome, listenerStore }
}

/**
 * Everything the attacker can do offline against a CPace record, for all 10^6 PINs.
 * Returns the PINs consistent with the record.
 */
function cpaceOfflineSearch(record: CpaceRecord, guess: string): { consistent: string[]; ms: number } {
  const t = transcriptBytes(record.transcript)
  // Keys the attacker can derive, by the PIN hypothesis they stand for. Its own scalar
  // with the listener's share gives ISK for "PIN = guess" (its share was computed from
  // G(guess)). For any other PIN p it would need a scalar y' with Ya = y'·G(p) — a
  // discrete logarithm — or the listener's scalar. So the table has one row.
  const derivable = new Map<string, Buffer>([[guess, record.initiator.confirm(record.pakeMsgB, t).listenerTag]])
  const consistent: string[] = []
  const t0 = performance.now()
  for (let i = 0; i < ALL_PINS; i++) {
    const p = pinOf(i)
    const tag = derivable.get(p)
    if (tag !== undefined && tag.equals(record.authTag)) consistent.push(p)
  }
  return { consistent, ms: performance.now() - t0 }
}

/**
 * "For completeness": for a random sample of PINs (always including the real PIN and the
 * guess) start a fresh CPace initiator with that PIN and the recorded session inputs and
 * confirm against the recorded share. Its share was never sent, so nothing can match.
 */
function freshInitiatorSample(record: CpaceRecord, guess: string): { matches: string[]; tried: number; ms: number } {
  const t = transcriptBytes(record.transcript)
  const pins = new Set<string>([REAL_PIN, guess])
  while (pins.size < SAMPLE) pins.add(pinOf(randomInt(0, ALL_PINS)))
  const matches: string[] = []
  const t0 = performance.now()
  for (const p of pins) {
    const fresh = new PinInitiator(p, record.pairingSessionId, record.attackerFingerprint, record.listenerFingerprint)
    try {
      if (fresh.confirm(record.pakeMsgB, t).listenerTag.equals(record.authTag)) matches.push(p)
    } finally {
      fresh.destroy()
    }
  }
  return { matches, tried: pins.size, ms: performance.now() - t0 }
}

// ---------------------------------------------------------------------------
// v0.2's construction, in the test only
// ---------------------------------------------------------------------------

function rawX25519(pub: KeyObject): Buffer {
  const jwk = pub.export({ format: 'jwk' })
  return Buffer.from(jwk.x as string, 'base64url')
}

function x25519Public(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') }, format: 'jwk' })
}

/** v0.2 key: HKDF-SHA256(ikm = shared secret, salt = empty, info = 'cribcall-pin:' + pin, 32). */
function v02Key(shared: Buffer, pin: string): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.alloc(0), `cribcall-pin:${pin}`, 32))
}

describe('offline guessing against one recorded PIN pairing attempt', () => {
  it('positive control — v0.2 (bare X25519, PIN only in the HKDF info): the attacker recovers the PIN offline', async () => {
    // A real listener's transcript, recorded by the attacker-as-monitor (its CPace run is not used here).
    const { record } = await recordOneAttempt('111111')
    const t = transcriptBytes(record.transcript)

    // The attacker's share (pakeMsgA) under v0.2.
    const attacker = generateKeyPairSync('x25519')
    const pakeMsgA = rawX25519(attacker.publicKey)

    // The listener's side of v0.2, with the real PIN and the attacker's share.
    const victim = generateKeyPairSync('x25519')
    const victimShared = diffieHellman({ privateKey: victim.privateKey, publicKey: x25519Public(pakeMsgA) })
    const pakeMsgB = rawX25519(victim.publicKey)
    const authTag = createHmac('sha256', v02Key(victimShared, REAL_PIN)).update(t).digest()

    // Offline: the attacker completed the ECDH itself, so it has the shared secret and
    // can test every PIN. HKDF-Extract with an empty salt does not depend on the PIN, so
    // it is done once; each guess costs one HKDF-Expand block and one HMAC.
    const t0 = performance.now()
    const shared = diffieHellman({ privateKey: attacker.privateKey, publicKey: x25519Public(pakeMsgB) })
    const prk = createHmac('sha256', Buffer.alloc(32)).update(shared).digest()
    const one = Buffer.from([1])
    const expand = (pin: string): Buffer => createHmac('sha256', prk).update(`cribcall-pin:${pin}`).update(one).digest()
    // The shortcut is HKDF itself (checked on a PIN that is not the answer).
    expect(expand('135790').equals(v02Key(shared, '135790'))).toBe(true)
    const found: string[] = []
    for (let i = 0; i < ALL_PINS; i++) {
      const p = pinOf(i)
      if (createHmac('sha256', expand(p)).update(t).digest().equals(authTag)) found.push(p)
    }
    const ms = performance.now() - t0
    console.log(`v0.2 control: tried ${ALL_PINS} PINs in ${(ms / 1000).toFixed(2)} s; consistent: [${found.join(', ')}] (real PIN ${REAL_PIN})`)
    expect(found).toEqual([REAL_PIN])
  }, 120_000)

  it('CPace, attacker guess ≠ PIN: no PIN is consistent with the record, and the listener trusts nothing', async () => {
    const guess = '111111'
    const { record, outcome, listenerStore } = await recordOneAttempt(guess)
    expect(outcome).toBeInstanceOf(PairingRejectedError)
    expect((outcome as PairingRejectedError).reason).toBe('INVALID_PIN')
    expect(listenerStore.list()).toEqual([])

    const full = cpaceOfflineSearch(record, guess)
    const sample = freshInitiatorSample(record, guess)
    console.log(
      `CPace (guess ${guess} ≠ PIN ${REAL_PIN}): ${ALL_PINS} PINs checked against every derivable key in ${full.ms.toFixed(0)} ms → ` +
        `${full.consistent.length} consistent; fresh-initiator sample: ${sample.tried} PINs (incl. the real one) in ` +
        `${(sample.ms / 1000).toFixed(2)} s (${((sample.ms * 1000) / sample.tried).toFixed(0)} µs each; all 10^6 would take ` +
        `~${((sample.ms / sample.tried) * ALL_PINS / 1000).toFixed(0)} s) → ${sample.matches.length} matches`,
    )
    expect(full.consistent).toEqual([])
    expect(sample.tried).toBe(SAMPLE)
    expect(sample.matches).toEqual([])
    record.initiator.destroy()
  }, 60_000)

  it('CPace, attacker guess = PIN: exactly {guess} is consistent — the one online guess — and that guess wins the pairing', async () => {
    const guess = REAL_PIN
    const { record, outcome, listenerStore } = await recordOneAttempt(guess)
    // The lucky attacker proved "knowledge" of the PIN: the listener pairs with it.
    expect(outcome).toMatchObject({ fingerprint: record.attackerFingerprint, role: 'monitor' })
    expect(listenerStore.list().map((e) => e.fingerprint)).toEqual([record.attackerFingerprint])

    const full = cpaceOfflineSearch(record, guess)
    const sample = freshInitiatorSample(record, guess)
    console.log(
      `CPace (guess = PIN ${REAL_PIN}): ${ALL_PINS} PINs checked in ${full.ms.toFixed(0)} ms → consistent: [${full.consistent.join(', ')}]; ` +
        `fresh-initiator sample: ${sample.tried} PINs in ${(sample.ms / 1000).toFixed(2)} s → ${sample.matches.length} matches`,
    )
    expect(full.consistent).toEqual([guess])
    expect(sample.matches).toEqual([])
    record.initiator.destroy()
  }, 60_000)
})

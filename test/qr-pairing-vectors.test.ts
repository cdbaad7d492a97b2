// The QR pairing proof's test vectors (SPEC.md §7.1): test/fixtures/qr-pairing-vectors.json,
// the same JSON native/core/tests/qr_vectors.rs reads, reproduced through the napi binding
// and by an independent computation; verification is exact; the secrets.
import { createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import canonicalize from 'canonicalize'
import { describe, expect, it } from 'vitest'

import {
  QR_PAIRING_CONTEXT,
  generateQrPairingSecret,
  qrPairingProof,
  qrPairingTranscript,
  verifyQrPairingProof,
  type QrPairingClaims,
} from '../src/index.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

interface Vector extends QrPairingClaims {
  description: string
  pairingSecret: string
  secretHex: string
  transcript: string
  transcriptHex: string
  proofHex: string
  pairingProof: string
}
const VECTORS = JSON.parse(readFileSync(path.join(root, 'test', 'fixtures', 'qr-pairing-vectors.json'), 'utf8')) as {
  context: string
  vectors: Vector[]
}

// ---------------------------------------------------------------------------
// Test vectors (the same file native/core/tests/qr_vectors.rs checks)
// ---------------------------------------------------------------------------

describe('SPEC §7.1 test vectors', () => {
  it('the napi binding (Rust) reproduces every vector: transcript bytes, proof in hex and base64url', () => {
    expect(VECTORS.context).toBe(QR_PAIRING_CONTEXT)
    expect(VECTORS.vectors.length).toBeGreaterThanOrEqual(2)
    for (const v of VECTORS.vectors) {
      const claims: QrPairingClaims = v
      expect(Buffer.from(v.pairingSecret, 'base64url').toString('hex'), v.description).toBe(v.secretHex)
      const t = qrPairingTranscript(claims)
      expect(t.toString('utf8'), v.description).toBe(v.transcript)
      expect(t.toString('hex'), v.description).toBe(v.transcriptHex)
      const proof = qrPairingProof(v.pairingSecret, claims)
      expect(proof, v.description).toBe(v.pairingProof)
      expect(Buffer.from(proof, 'base64url').toString('hex'), v.description).toBe(v.proofHex)
      expect(verifyQrPairingProof(v.pairingSecret, claims, v.pairingProof)).toBe(true)
    }
  })

  it('the vectors agree with an independent computation (canonicalize + node:crypto HMAC)', () => {
    for (const v of VECTORS.vectors) {
      const transcript = canonicalize({
        context: VECTORS.context,
        monitorCertFingerprint: v.monitorCertFingerprint,
        listenerCertFingerprint: v.listenerCertFingerprint,
        monitorId: v.monitorId,
        listenerId: v.listenerId,
        listenerName: v.listenerName,
        listenerPublicKey: v.listenerPublicKey,
      })
      expect(transcript).toBe(v.transcript)
      const mac = createHmac('sha256', Buffer.from(v.secretHex, 'hex')).update(Buffer.from(v.transcript, 'utf8')).digest()
      expect(mac.toString('hex')).toBe(v.proofHex)
      expect(mac.toString('base64url')).toBe(v.pairingProof)
    }
  })

  it('SPEC.md shows vector 1 verbatim', () => {
    const spec = readFileSync(path.join(root, 'SPEC.md'), 'utf8')
    const v = VECTORS.vectors[0] as Vector
    for (const text of [v.pairingSecret, v.transcript, v.proofHex, v.pairingProof, v.listenerPublicKey]) expect(spec).toContain(text)
  })

  it('verification is exact: any changed member, a flipped bit, a malformed proof is false', () => {
    const v = VECTORS.vectors[0] as Vector
    const other = 'ff'.repeat(32)
    const changed: Array<Partial<QrPairingClaims>> = [
      { monitorCertFingerprint: other },
      { listenerCertFingerprint: other },
      { monitorCertFingerprint: v.listenerCertFingerprint, listenerCertFingerprint: v.monitorCertFingerprint },
      { monitorId: v.monitorId.toUpperCase() },
      { listenerId: v.listenerId.toUpperCase() },
      { listenerName: `${v.listenerName} ` },
      { listenerPublicKey: VECTORS.vectors[1]?.listenerPublicKey as string },
    ]
    for (const c of changed) expect(verifyQrPairingProof(v.pairingSecret, { ...v, ...c }, v.pairingProof), JSON.stringify(c)).toBe(false)
    const raw = Buffer.from(v.pairingProof, 'base64url')
    raw[0] = (raw[0] as number) ^ 0x80
    expect(verifyQrPairingProof(v.pairingSecret, v, raw.toString('base64url'))).toBe(false)
    for (const bad of ['', `${v.pairingProof}=`, Buffer.from(v.proofHex, 'hex').toString('base64'), v.proofHex]) {
      expect(verifyQrPairingProof(v.pairingSecret, v, bad), bad).toBe(false)
    }
    expect(verifyQrPairingProof(generateQrPairingSecret(), v, v.pairingProof)).toBe(false)
  })

  it('bad arguments throw ERR_INVALID_ARG without echoing the secret', () => {
    const v = VECTORS.vectors[0] as Vector
    const almost = `${v.pairingSecret.slice(0, 42)}B` // non-zero trailing bits
    for (const secret of [almost, `${v.pairingSecret}=`, 'short']) {
      let err: unknown
      try {
        qrPairingProof(secret, v)
      } catch (e) {
        err = e
      }
      expect(err).toMatchObject({ code: 'ERR_INVALID_ARG' })
      expect(String((err as Error).message)).not.toContain(secret)
    }
    expect(() => qrPairingTranscript({ ...v, monitorCertFingerprint: v.monitorCertFingerprint.toUpperCase() })).toThrow(/lowercase hex/)
    expect(() => qrPairingTranscript({ ...v, listenerName: 'a\ud800' })).toThrow(/well-formed/)
  })

  it('secrets are 32 fresh random bytes in unpadded base64url', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 64; i++) {
      const s = generateQrPairingSecret()
      expect(s).toMatch(/^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/)
      expect(Buffer.from(s, 'base64url')).toHaveLength(32)
      seen.add(s)
    }
    expect(seen.size).toBe(64)
  })
})

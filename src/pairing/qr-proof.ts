// The QR pairing secret and proof (SPEC.md §7.1). The computation is done once, in
// Rust (native/core/src/qr.rs, bound in native/src/qr.rs, wrapped in
// src/transport/native.ts); the listener (proof) and the monitor (verification) both
// call it through these functions.
import { InvalidArgumentError } from '../transport/errors.js'
import * as native from '../transport/native.js'

/** The domain label in every QR pairing transcript (its `context` member). */
export const QR_PAIRING_CONTEXT = 'cribcall qr pairing v1'

/**
 * What a QR pairing proof binds. Fingerprints: 64 lowercase hex digits, as the side
 * computing or checking the proof observed the certificates in TLS. `monitorId` as in
 * the QR payload; the listener's members exactly as in PAIR_REQUEST.
 */
export interface QrPairingClaims {
  readonly monitorCertFingerprint: string
  readonly listenerCertFingerprint: string
  readonly monitorId: string
  readonly listenerId: string
  readonly listenerName: string
  readonly listenerPublicKey: string
}

/** Copies the claims (no extra members reach the addon); refuses strings with lone surrogates. */
function plain(c: QrPairingClaims): QrPairingClaims {
  const out: QrPairingClaims = {
    monitorCertFingerprint: c.monitorCertFingerprint,
    listenerCertFingerprint: c.listenerCertFingerprint,
    monitorId: c.monitorId,
    listenerId: c.listenerId,
    listenerName: c.listenerName,
    listenerPublicKey: c.listenerPublicKey,
  }
  for (const [k, v] of Object.entries(out)) {
    // The addon's string conversion would replace a lone surrogate silently.
    if (typeof v !== 'string' || !(v as string & { isWellFormed(): boolean }).isWellFormed()) {
      throw new InvalidArgumentError(`${k} must be a well-formed string`)
    }
  }
  return out
}

/** A fresh secret for a pairing window: 32 random bytes, unpadded base64url (43 characters). */
export function generateQrPairingSecret(): string {
  return native.generateQrPairingSecret()
}

/** The JCS bytes of the transcript the proof is computed over (for tests and other implementations). */
export function qrPairingTranscript(claims: QrPairingClaims): Buffer {
  return native.qrPairingTranscript(plain(claims))
}

/** `PAIR_REQUEST.pairingProof` (unpadded base64url) for the QR payload's `pairingSecret`. */
export function qrPairingProof(pairingSecret: string, claims: QrPairingClaims): string {
  return native.qrPairingProof(pairingSecret, plain(claims))
}

/** Constant-time check of a received `pairingProof`; false for a wrong or malformed proof. */
export function verifyQrPairingProof(pairingSecret: string, claims: QrPairingClaims, proof: string): boolean {
  return native.verifyQrPairingProof(pairingSecret, plain(claims), proof)
}

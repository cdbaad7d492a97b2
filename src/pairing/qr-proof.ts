// The QR pairing secret and proof (SPEC.md §7.1). The computation is done once, in
// Rust (native/core/src/qr.rs, bound in native/src/qr.rs); the listener (proof) and the
// monitor (verification) both call it through these wrappers.
//
// This module imports the native addon directly instead of through
// src/transport/native.ts (which says it is the only module that does): the QR bindings
// were added while src/transport was being changed elsewhere. The wrappers map native
// errors the same way (fromNative); moving them into native.ts is a mechanical follow-up.
import {
  generateQrPairingSecret as nativeGenerateSecret,
  qrPairingProof as nativeProof,
  qrPairingTranscript as nativeTranscript,
  verifyQrPairingProof as nativeVerify,
} from '../../index.js'
import { fromNative, InvalidArgumentError } from '../transport/errors.js'

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
  try {
    return nativeGenerateSecret()
  } catch (error) {
    throw fromNative(error)
  }
}

/** The JCS bytes of the transcript the proof is computed over (for tests and other implementations). */
export function qrPairingTranscript(claims: QrPairingClaims): Buffer {
  try {
    return nativeTranscript(plain(claims))
  } catch (error) {
    throw fromNative(error)
  }
}

/** `PAIR_REQUEST.pairingProof` (unpadded base64url) for the QR payload's `pairingSecret`. */
export function qrPairingProof(pairingSecret: string, claims: QrPairingClaims): string {
  try {
    return nativeProof(pairingSecret, plain(claims))
  } catch (error) {
    throw fromNative(error)
  }
}

/** Constant-time check of a received `pairingProof`; false for a wrong or malformed proof. */
export function verifyQrPairingProof(pairingSecret: string, claims: QrPairingClaims, proof: string): boolean {
  try {
    return nativeVerify(pairingSecret, plain(claims), proof)
  } catch (error) {
    throw fromNative(error)
  }
}

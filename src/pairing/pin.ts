// PIN pairing with CPace (SPEC.md §7.2): the transcript, and thin wrappers over the
// native CPace (the PAKE runs in Rust; ISK and scalars never reach JavaScript).
import { canonicalBytes } from '../protocol/canonical.js'
import type { PinTranscriptObject } from '../protocol/messages.js'
import * as native from '../transport/native.js'

export type PinTranscript = PinTranscriptObject

/** The JCS bytes of the transcript: what both confirmation tags are computed over. */
export function transcriptBytes(t: PinTranscript): Buffer {
  const ordered: PinTranscript = {
    monitorId: t.monitorId,
    listenerId: t.listenerId,
    listenerPublicKey: t.listenerPublicKey,
    listenerCertFingerprint: t.listenerCertFingerprint,
    monitorCertFingerprint: t.monitorCertFingerprint,
    pairingSessionId: t.pairingSessionId,
  }
  return Buffer.from(canonicalBytes(ordered))
}

export interface PinTags {
  readonly listenerTag: Buffer
  readonly monitorTag: Buffer
}

/** Monitor side of one PIN session: its CPace share serves every attempt of the session. */
export class PinInitiator {
  readonly #inner: native.PinPakeInitiator
  #destroyed = false

  constructor(pin: string, pairingSessionId: string, monitorFingerprint: string, listenerFingerprint: string) {
    this.#inner = native.startPinPake(pin, pairingSessionId, monitorFingerprint, listenerFingerprint)
  }

  /** pakeMsgA: the 32-byte share, for PIN_REQUIRED. */
  get share(): Buffer {
    return this.#inner.share
  }

  /** Both tags for a listener share and transcript; throws on an invalid point. */
  confirm(peerShare: Buffer, transcript: Buffer): PinTags {
    return native.confirmPinPake(this.#inner, peerShare, transcript)
  }

  /** Zeroizes the secret scalar. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return
    this.#destroyed = true
    native.destroyPinPake(this.#inner)
  }
}

/** Listener side: share and both tags in one step. */
export function respondPin(
  pin: string,
  pairingSessionId: string,
  monitorFingerprint: string,
  listenerFingerprint: string,
  peerShare: Buffer,
  transcript: Buffer,
): { share: Buffer; listenerTag: Buffer; monitorTag: Buffer } {
  return native.respondPinPake(pin, pairingSessionId, monitorFingerprint, listenerFingerprint, peerShare, transcript)
}

/** Constant-time tag comparison. */
export function tagsEqual(a: Uint8Array, b: Uint8Array): boolean {
  return native.tagsEqual(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

export function decodeB64x32(s: string): Buffer | undefined {
  const b = Buffer.from(s, 'base64')
  return b.length === 32 && b.toString('base64') === s ? b : undefined
}

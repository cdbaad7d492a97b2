/**
 * The only module that loads the native addon. It re-exports thin wrappers whose
 * thrown errors are mapped through {@link fromNative}, so everything above this layer
 * sees CribcallError subclasses only.
 *
 * The addon is loaded on first use, not at import: `import('cribcall-quic')` costs no
 * BoringSSL/quiche load (issue #10, start-up) until something needs it (an Endpoint, an
 * identity, a pairing computation). It is the napi-rs generated loader, `index.js` at the
 * package root, found through the package's own name (Node's package self-reference), so
 * the same code works from src/, from dist/ and from the bundled dist/index.js.
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import type * as Binding from '../../index.js'
import type {
  EndpointStats as NativeEndpointStats,
  Identity as NativeIdentity,
  IdentityOptions as NativeIdentityOptions,
  NativeEndpoint,
  NativeEndpointOptions,
  NativeEventBatch,
  PinPakeInitiator,
  QrPairingClaims as NativeQrPairingClaims,
} from '../../index.js'
import { fromNative } from './errors.js'

let loaded: typeof Binding | undefined

/** The addon, loaded (synchronously, require of the ESM loader) on the first call. */
function binding(): typeof Binding {
  if (loaded === undefined) {
    const require = createRequire(import.meta.url)
    const root = dirname(require.resolve('cribcall-quic/package.json'))
    loaded = require(join(root, 'index.js')) as typeof Binding
  }
  return loaded
}

export type { NativeEndpointOptions, NativeEndpointStats, NativeIdentity, NativeIdentityOptions }

/**
 * Runs an addon call; what it throws becomes a CribcallError (the one mapping,
 * `fromNative`). The addon is loaded first, outside that mapping: a loader failure (no
 * binary for this platform) reaches the caller as the loader's own Error, which names
 * the missing package, as it did when the addon loaded at import.
 */
function mapped<T>(call: (addon: typeof Binding) => T): T {
  const addon = binding()
  try {
    return call(addon)
  } catch (error) {
    throw fromNative(error)
  }
}

/** Receives one batch of native events (read it with `walkEventBatch`). */
export type NativeEventsCallback = (batch: NativeEventBatch) => void

export function generateIdentity(options: NativeIdentityOptions): NativeIdentity {
  return mapped((addon) => addon.generateIdentity(options))
}

export type { PinPakeInitiator }

/** Monitor side of a CPace PIN session (the scalar stays in Rust). */
export function startPinPake(pin: string, sessionId: string, monitorFingerprint: string, listenerFingerprint: string): PinPakeInitiator {
  return mapped((addon) => addon.PinPakeInitiator.start(pin, sessionId, monitorFingerprint, listenerFingerprint))
}

export function confirmPinPake(initiator: PinPakeInitiator, peerShare: Buffer, transcript: Buffer): { listenerTag: Buffer; monitorTag: Buffer } {
  return mapped(() => initiator.confirm(peerShare, transcript))
}

export function destroyPinPake(initiator: PinPakeInitiator): void {
  mapped(() => initiator.destroy())
}

export function respondPinPake(
  pin: string,
  sessionId: string,
  monitorFingerprint: string,
  listenerFingerprint: string,
  peerShare: Buffer,
  transcript: Buffer,
): { share: Buffer; listenerTag: Buffer; monitorTag: Buffer } {
  return mapped((addon) => addon.pinPakeRespond(pin, sessionId, monitorFingerprint, listenerFingerprint, peerShare, transcript))
}

/** Constant-time comparison (Rust). */
export function tagsEqual(a: Buffer, b: Buffer): boolean {
  return binding().tagsEqual(a, b)
}

export function fingerprintOf(cert: string | Buffer): string {
  return mapped((addon) => addon.fingerprintOf(cert))
}

/** QR pairing secret and proof (SPEC.md §7.1), computed in Rust (native/core/src/qr.rs). */
export function generateQrPairingSecret(): string {
  return mapped((addon) => addon.generateQrPairingSecret())
}

export function qrPairingTranscript(claims: NativeQrPairingClaims): Buffer {
  return mapped((addon) => addon.qrPairingTranscript(claims))
}

export function qrPairingProof(pairingSecret: string, claims: NativeQrPairingClaims): string {
  return mapped((addon) => addon.qrPairingProof(pairingSecret, claims))
}

export function verifyQrPairingProof(pairingSecret: string, claims: NativeQrPairingClaims, proof: string): boolean {
  return mapped((addon) => addon.verifyQrPairingProof(pairingSecret, claims, proof))
}

/** A NativeEndpoint whose methods throw CribcallErrors. */
export class NativeEndpointHandle {
  readonly #ep: NativeEndpoint

  constructor(options: NativeEndpointOptions, onEvents: NativeEventsCallback) {
    this.#ep = mapped((addon) => new addon.NativeEndpoint(options, onEvents))
  }

  localAddress(): { host: string; port: number } {
    return mapped(() => this.#ep.localAddress())
  }

  listen(acceptUnknown: boolean): void {
    mapped(() => this.#ep.listen(acceptUnknown))
  }

  setAcceptUnknown(acceptUnknown: boolean): void {
    mapped(() => this.#ep.setAcceptUnknown(acceptUnknown))
  }

  stopListening(): void {
    mapped(() => this.#ep.stopListening())
  }

  setKnownPeers(fingerprints: string[]): void {
    mapped(() => this.#ep.setKnownPeers(fingerprints))
  }

  connect(host: string, port: number, serverFingerprint: string): number {
    return mapped(() => this.#ep.connect(host, port, serverFingerprint))
  }

  send(connId: number, payload: Buffer): number {
    return mapped(() => this.#ep.send(connId, payload))
  }

  /** Accepts a frame; it goes out at the next flush() (or before any other call's effect). */
  sendDeferred(connId: number, payload: Buffer): number {
    return mapped(() => this.#ep.sendDeferred(connId, payload))
  }

  flush(): void {
    mapped(() => this.#ep.flush())
  }

  /** Bytes accepted by send() for the connection and not yet handed to QUIC (0 when unknown). */
  queued(connId: number): number {
    return mapped(() => this.#ep.queued(connId))
  }

  broadcast(connIds: Uint32Array, payload: Buffer): number {
    return mapped(() => this.#ep.broadcast(connIds, payload))
  }

  closeConnection(connId: number, code: number, reason: string): void {
    mapped(() => this.#ep.closeConnection(connId, code, reason))
  }

  stats(): NativeEndpointStats {
    return mapped(() => this.#ep.stats())
  }

  /** Resolves after the native IO thread exited; rejects with a CribcallError. */
  close(): Promise<void> {
    let done: Promise<void>
    try {
      done = this.#ep.close()
    } catch (error) {
      return Promise.reject(fromNative(error))
    }
    return done.then(
      () => undefined,
      (error: unknown) => {
        throw fromNative(error)
      },
    )
  }
}

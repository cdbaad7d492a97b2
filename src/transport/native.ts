/**
 * The only module that imports the native addon. It re-exports thin wrappers whose
 * thrown errors are mapped through {@link fromNative}, so everything above this layer
 * sees CribcallError subclasses only.
 *
 * '../../index.js' is the napi-rs generated ESM loader at the repository root; the
 * relative path is the same from src/transport and from dist/transport.
 */
import {
  NativeEndpoint,
  PinPakeInitiator,
  canonicalStringObject as nativeCanonicalStringObject,
  generateIdentity as nativeGenerateIdentity,
  fingerprintOf as nativeFingerprintOf,
  pinPakeRespond as nativePinPakeRespond,
  tagsEqual as nativeTagsEqual,
} from '../../index.js'
import type {
  EndpointStats as NativeEndpointStats,
  Identity as NativeIdentity,
  IdentityOptions as NativeIdentityOptions,
  NativeEndpointOptions,
  NativeEvent,
} from '../../index.js'
import { fromNative } from './errors.js'

export type { NativeEndpointOptions, NativeEvent, NativeEndpointStats, NativeIdentity, NativeIdentityOptions }

/**
 * Receives one batch of native events. Declared loosely on purpose: it is also safe
 * if the addon's thread-safe function passes a leading `error` argument.
 */
export type NativeEventsCallback = (first: unknown, second?: unknown) => void

export function generateIdentity(options: NativeIdentityOptions): NativeIdentity {
  try {
    return nativeGenerateIdentity(options)
  } catch (error) {
    throw fromNative(error)
  }
}

export type { PinPakeInitiator }

/** Monitor side of a CPace PIN session (the scalar stays in Rust). */
export function startPinPake(pin: string, sessionId: string, monitorFingerprint: string, listenerFingerprint: string): PinPakeInitiator {
  try {
    return PinPakeInitiator.start(pin, sessionId, monitorFingerprint, listenerFingerprint)
  } catch (error) {
    throw fromNative(error)
  }
}

export function confirmPinPake(initiator: PinPakeInitiator, peerShare: Buffer, transcript: Buffer): { listenerTag: Buffer; monitorTag: Buffer } {
  try {
    return initiator.confirm(peerShare, transcript)
  } catch (error) {
    throw fromNative(error)
  }
}

export function destroyPinPake(initiator: PinPakeInitiator): void {
  try {
    initiator.destroy()
  } catch (error) {
    throw fromNative(error)
  }
}

export function respondPinPake(
  pin: string,
  sessionId: string,
  monitorFingerprint: string,
  listenerFingerprint: string,
  peerShare: Buffer,
  transcript: Buffer,
): { share: Buffer; listenerTag: Buffer; monitorTag: Buffer } {
  try {
    return nativePinPakeRespond(pin, sessionId, monitorFingerprint, listenerFingerprint, peerShare, transcript)
  } catch (error) {
    throw fromNative(error)
  }
}

/** Constant-time comparison (Rust). */
export function tagsEqual(a: Buffer, b: Buffer): boolean {
  return nativeTagsEqual(a, b)
}

/** The Rust JCS of a flat string object (used to prove TS and Rust agree byte for byte). */
export function canonicalStringObject(obj: Record<string, string>): Buffer {
  try {
    return nativeCanonicalStringObject(obj)
  } catch (error) {
    throw fromNative(error)
  }
}

export function fingerprintOf(cert: string | Buffer): string {
  try {
    return nativeFingerprintOf(cert)
  } catch (error) {
    throw fromNative(error)
  }
}

/** A NativeEndpoint whose methods throw CribcallErrors. */
export class NativeEndpointHandle {
  readonly #ep: NativeEndpoint

  constructor(options: NativeEndpointOptions, onEvents: NativeEventsCallback) {
    try {
      this.#ep = new NativeEndpoint(options, onEvents)
    } catch (error) {
      throw fromNative(error)
    }
  }

  localAddress(): { host: string; port: number } {
    try {
      return this.#ep.localAddress()
    } catch (error) {
      throw fromNative(error)
    }
  }

  listen(acceptUnknown: boolean): void {
    try {
      this.#ep.listen(acceptUnknown)
    } catch (error) {
      throw fromNative(error)
    }
  }

  setAcceptUnknown(acceptUnknown: boolean): void {
    try {
      this.#ep.setAcceptUnknown(acceptUnknown)
    } catch (error) {
      throw fromNative(error)
    }
  }

  stopListening(): void {
    try {
      this.#ep.stopListening()
    } catch (error) {
      throw fromNative(error)
    }
  }

  setKnownPeers(fingerprints: string[]): void {
    try {
      this.#ep.setKnownPeers(fingerprints)
    } catch (error) {
      throw fromNative(error)
    }
  }

  connect(host: string, port: number, serverFingerprint: string): number {
    try {
      return this.#ep.connect(host, port, serverFingerprint)
    } catch (error) {
      throw fromNative(error)
    }
  }

  send(connId: number, payload: Buffer): number {
    try {
      return this.#ep.send(connId, payload)
    } catch (error) {
      throw fromNative(error)
    }
  }

  /** Bytes accepted by send() for the connection and not yet handed to QUIC (0 when unknown). */
  queued(connId: number): number {
    try {
      return this.#ep.queued(connId)
    } catch (error) {
      throw fromNative(error)
    }
  }

  broadcast(connIds: number[], payload: Buffer): number {
    try {
      return this.#ep.broadcast(connIds, payload)
    } catch (error) {
      throw fromNative(error)
    }
  }

  closeConnection(connId: number, code: number, reason: string): void {
    try {
      this.#ep.closeConnection(connId, code, reason)
    } catch (error) {
      throw fromNative(error)
    }
  }

  stats(): NativeEndpointStats {
    try {
      return this.#ep.stats()
    } catch (error) {
      throw fromNative(error)
    }
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

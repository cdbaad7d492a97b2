import { DEVICE_ID_PATTERN, isFingerprint } from '../base/formats.js'
import { InvalidArgumentError } from './errors.js'
import * as native from './native.js'

export type KeyType = 'p256' | 'ed25519'

/**
 * A device's long-term identity: a key pair and the self-signed certificate for it
 * (subjectAltName URI:cribcall:<deviceId>). Generate it once and store certPem/keyPem:
 * re-issuing the certificate changes the fingerprint, which is the device's identity.
 */
export interface Identity {
  /** UUID v4 of the device. */
  readonly deviceId: string
  readonly keyType: KeyType
  readonly certPem: string
  /** PKCS#8 private key, PEM. Secret. */
  readonly keyPem: string
  readonly certDer: Buffer
  /** SHA-256 of certDer, 64 lowercase hex characters. */
  readonly fingerprint: string
  /** base64 of the SubjectPublicKeyInfo DER. */
  readonly publicKey: string
}

export interface GenerateIdentityOptions {
  /** Default 'p256' (ECDSA P-256, works with every TLS stack). */
  keyType?: KeyType
  /** UUID v4; a random one is generated when omitted. */
  deviceId?: string
}

const KEY_TYPES: ReadonlySet<string> = new Set<KeyType>(['p256', 'ed25519'])

/** Generates a fresh key pair and self-signed certificate. */
export function generateIdentity(options: GenerateIdentityOptions = {}): Identity {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('generateIdentity options must be an object')
  }
  const { keyType, deviceId } = options
  if (keyType !== undefined && !KEY_TYPES.has(keyType)) {
    throw new InvalidArgumentError(`keyType must be 'p256' or 'ed25519', got ${JSON.stringify(keyType)}`)
  }
  if (deviceId !== undefined && typeof deviceId !== 'string') {
    throw new InvalidArgumentError('deviceId must be a string')
  }
  const nativeOptions: native.NativeIdentityOptions = {}
  if (keyType !== undefined) nativeOptions.keyType = keyType
  if (deviceId !== undefined) nativeOptions.deviceId = deviceId
  const id = native.generateIdentity(nativeOptions)
  return {
    deviceId: id.deviceId,
    keyType: id.keyType as KeyType,
    certPem: id.certPem,
    keyPem: id.keyPem,
    certDer: id.certDer,
    fingerprint: id.fingerprint,
    publicKey: id.publicKey,
  }
}

/** SHA-256 fingerprint (64 lowercase hex) of a certificate given as PEM text or DER bytes. */
export function fingerprintOf(cert: string | Uint8Array): string {
  if (typeof cert === 'string') return native.fingerprintOf(cert)
  if (cert instanceof Uint8Array) {
    const der = Buffer.isBuffer(cert) ? cert : Buffer.from(cert.buffer, cert.byteOffset, cert.byteLength)
    return native.fingerprintOf(der)
  }
  throw new InvalidArgumentError('cert must be a PEM string or DER bytes')
}

/**
 * Checks that `identity` is a whole Identity (as generateIdentity or
 * loadOrCreateIdentity return): a device id, certificate and key PEM, and a fingerprint
 * that is the certificate's. Throws InvalidArgumentError naming what is wrong, so a
 * bad identity fails where it is passed, not at the first connection.
 */
export function checkIdentity(identity: unknown, what = 'identity'): asserts identity is Identity {
  if (identity === null || typeof identity !== 'object') throw new InvalidArgumentError(`${what} must be an Identity object (see generateIdentity)`)
  const id = identity as Partial<Record<keyof Identity, unknown>>
  if (typeof id.deviceId !== 'string' || !DEVICE_ID_RE.test(id.deviceId)) throw new InvalidArgumentError(`${what}.deviceId must be a UUID`)
  if (typeof id.certPem !== 'string' || typeof id.keyPem !== 'string') throw new InvalidArgumentError(`${what} must have certPem and keyPem strings`)
  if (!isFingerprint(id.fingerprint)) throw new InvalidArgumentError(`${what}.fingerprint must be 64 lowercase hex digits`)
  if (typeof id.publicKey !== 'string' || id.publicKey.length === 0) throw new InvalidArgumentError(`${what}.publicKey must be the base64 SubjectPublicKeyInfo`)
  let actual: string
  try {
    actual = native.fingerprintOf(id.certPem)
  } catch (error) {
    throw new InvalidArgumentError(`${what}.certPem is not a certificate`, { cause: error })
  }
  if (actual !== id.fingerprint) throw new InvalidArgumentError(`${what}.fingerprint is not the fingerprint of ${what}.certPem`)
}

const DEVICE_ID_RE = new RegExp(DEVICE_ID_PATTERN)

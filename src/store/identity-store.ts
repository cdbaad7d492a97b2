// The device identity on disk: generated once, never re-issued (re-issuing would
// change the fingerprint every paired device pins).
//
//   <dir>/            mode 0700
//     identity.json   { version, deviceId, keyType }           0600
//     cert.der        the certificate, DER                     0600
//     key.pem         PKCS#8 private key                       0600
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { CribcallError, InvalidArgumentError } from '../transport/errors.js'
import { fingerprintOf, generateIdentity, type Identity, type KeyType } from '../transport/identity.js'
import { ensurePrivateDir, permissionFailure, throwIfAborted, withFileLock, writeFileAtomic } from './fs-atomic.js'

export class IdentityFileError extends CribcallError {
  readonly path: string

  constructor(file: string, message: string, options?: ErrorOptions) {
    super('ERR_IDENTITY_CORRUPT', message, options)
    this.name = 'IdentityFileError'
    this.path = file
  }
}

export interface LoadIdentityOptions {
  /** Key type when a new identity is created (default 'p256'). Ignored when one exists. */
  readonly keyType?: KeyType
  /** deviceId for a new identity (default: random UUID v4). */
  readonly deviceId?: string
  /**
   * false: only load; a directory without an identity (or no directory) is an
   * IdentityNotFoundError and nothing is created. Default true.
   */
  readonly create?: boolean
  /** Aborting it before the identity is read or written rejects with AbortError. */
  readonly signal?: AbortSignal
}

/** `loadOrCreateIdentity(dir, { create: false })` found no identity in `dir`. */
export class IdentityNotFoundError extends CribcallError {
  readonly path: string

  constructor(dir: string) {
    super('ERR_NOT_FOUND', `no identity in ${dir}`)
    this.name = 'IdentityNotFoundError'
    this.path = dir
  }
}

const FILES = ['identity.json', 'cert.der', 'key.pem'] as const

function toPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file)
    return true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw e
  }
}

/**
 * Loads the identity stored in `dir`, or creates it there if the directory holds none.
 * The directory is made 0700 and the files 0600 (modes of existing files are fixed).
 * A partial or corrupt identity is an {@link IdentityFileError}; it is never replaced.
 */
export async function loadOrCreateIdentity(dir: string, options: LoadIdentityOptions = {}): Promise<Identity> {
  if (typeof dir !== 'string' || dir.length === 0) throw new InvalidArgumentError('identity directory must be a non-empty string')
  const root = path.resolve(dir)
  throwIfAborted(options.signal)
  if (options.create === false && !(await exists(path.join(root, 'identity.json')).catch((e: unknown) => Promise.reject(permissionFailure(e, root, 'read'))))) {
    throw new IdentityNotFoundError(root)
  }
  await ensurePrivateDir(root)
  throwIfAborted(options.signal)
  return withFileLock(path.join(root, 'identity.json'), async () => {
    throwIfAborted(options.signal)
    const present = await Promise.all(FILES.map((f) => exists(path.join(root, f)))).catch((e: unknown) => Promise.reject(permissionFailure(e, root, 'read')))
    if (present.every((p) => !p)) {
      if (options.create === false) throw new IdentityNotFoundError(root)
      return create(root, options)
    }
    if (!present.every((p) => p)) {
      const missing = FILES.filter((_, i) => !present[i]).join(', ')
      throw new IdentityFileError(root, `identity in ${root} is incomplete (missing ${missing}); it was left untouched`)
    }
    return load(root)
  })
}

async function create(root: string, options: LoadIdentityOptions): Promise<Identity> {
  const id = generateIdentity({
    keyType: options.keyType ?? 'p256',
    ...(options.deviceId === undefined ? {} : { deviceId: options.deviceId }),
  })
  // Key first, metadata last: a crash in between leaves an incomplete identity that
  // load() reports instead of silently regenerating.
  await writeFileAtomic(path.join(root, 'key.pem'), id.keyPem, 0o600)
  await writeFileAtomic(path.join(root, 'cert.der'), id.certDer, 0o600)
  const meta = { version: 1, deviceId: id.deviceId, keyType: id.keyType, fingerprint: id.fingerprint }
  await writeFileAtomic(path.join(root, 'identity.json'), JSON.stringify(meta, null, 2) + '\n', 0o600)
  return id
}

async function load(root: string): Promise<Identity> {
  const file = (f: string): string => path.join(root, f)
  if (process.platform !== 'win32') {
    for (const f of FILES) await fs.chmod(file(f), 0o600)
  }
  let meta: { version?: unknown; deviceId?: unknown; keyType?: unknown; fingerprint?: unknown }
  try {
    meta = JSON.parse(await fs.readFile(file('identity.json'), 'utf8')) as typeof meta
  } catch (e) {
    throw new IdentityFileError(file('identity.json'), `identity metadata ${file('identity.json')} is unreadable`, { cause: e })
  }
  if (meta === null || typeof meta !== 'object' || meta.version !== 1 || typeof meta.deviceId !== 'string') {
    throw new IdentityFileError(file('identity.json'), `identity metadata ${file('identity.json')} has an unknown format`)
  }
  if (meta.keyType !== 'p256' && meta.keyType !== 'ed25519') {
    throw new IdentityFileError(file('identity.json'), `identity metadata names an unknown key type`)
  }
  const certDer = await fs.readFile(file('cert.der'))
  const keyPem = await fs.readFile(file('key.pem'), 'utf8')
  let cert: X509Certificate
  try {
    cert = new X509Certificate(certDer)
  } catch (e) {
    throw new IdentityFileError(file('cert.der'), `certificate ${file('cert.der')} is corrupt`, { cause: e })
  }
  try {
    const key = createPrivateKey({ key: keyPem, format: 'pem' })
    if (!cert.checkPrivateKey(key)) throw new Error('the key does not match the certificate')
  } catch (e) {
    throw new IdentityFileError(file('key.pem'), `private key ${file('key.pem')} is corrupt or does not match the certificate`, {
      cause: e,
    })
  }
  const fingerprint = fingerprintOf(certDer)
  if (typeof meta.fingerprint === 'string' && meta.fingerprint !== fingerprint) {
    throw new IdentityFileError(root, `certificate fingerprint changed (${fingerprint} ≠ recorded ${meta.fingerprint})`)
  }
  const san = cert.subjectAltName ?? ''
  if (!san.includes(`URI:cribcall:${meta.deviceId}`)) {
    throw new IdentityFileError(file('cert.der'), `certificate does not name device ${meta.deviceId}`)
  }
  return Object.freeze({
    deviceId: meta.deviceId,
    keyType: meta.keyType,
    certPem: toPem(certDer),
    keyPem,
    certDer,
    fingerprint,
    publicKey: cert.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
  }) as Identity
}

// The agent's state directory: identity and trust store.
import path from 'node:path'
import { CribcallError, FileTrustStore, IdentityNotFoundError, loadOrCreateIdentity, type Identity, type TrustEntry } from '../index.js'

export interface State {
  identity: Identity
  store: FileTrustStore
}

/**
 * Opens the identity and trust store in `dir`. `create: false` (watch) never creates
 * anything: a directory without an identity is an error naming it (a mistyped --dir).
 */
export async function openState(dir: string, options: { create: boolean; keyType?: 'p256' | 'ed25519' }): Promise<State> {
  let identity: Identity
  try {
    identity = await loadOrCreateIdentity(path.join(dir, 'identity'), {
      create: options.create,
      ...(options.keyType === undefined ? {} : { keyType: options.keyType }),
    })
  } catch (e) {
    if (e instanceof IdentityNotFoundError) {
      throw new CribcallError('ERR_NOT_FOUND', `no identity in ${dir} (is --dir right? 'cribcall-agent pair' creates one)`, { cause: e })
    }
    throw e
  }
  const store = await FileTrustStore.open(path.join(dir, 'trust.json'))
  return { identity, store }
}

/** The trust store alone, read-only: nothing is created or re-secured (trust list). */
export function openTrustReadOnly(dir: string): Promise<FileTrustStore> {
  return FileTrustStore.open(path.join(dir, 'trust.json'), { readOnly: true })
}

export function entryFields(e: TrustEntry): Record<string, unknown> {
  return { deviceId: e.deviceId, name: e.name, fingerprint: e.fingerprint, role: e.role, pairedAt: e.pairedAt, lastSeenAt: e.lastSeenAt, lastAddress: e.lastAddress }
}

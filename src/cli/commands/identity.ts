// `cribcall-agent identity`: create or show this device's identity.
import { openState } from '../state.js'
import { emit, UsageError } from '../output.js'

export async function cmdIdentity(o: { dir: string; key?: 'p256' | 'ed25519' }): Promise<void> {
  const { identity } = await openState(o.dir, { create: true, ...(o.key === undefined ? {} : { keyType: o.key }) })
  if (o.key !== undefined && identity.keyType !== o.key) {
    throw new UsageError(`an ${identity.keyType} identity already exists in ${o.dir}; it is never replaced`)
  }
  emit(
    'identity',
    { deviceId: identity.deviceId, keyType: identity.keyType, fingerprint: identity.fingerprint, publicKey: identity.publicKey, dir: o.dir },
    `device ${identity.deviceId} (${identity.keyType})\nfingerprint ${identity.fingerprint}\nstored in ${o.dir}`,
  )
}

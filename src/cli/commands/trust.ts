// `cribcall-agent trust list|revoke`.
import { access } from 'node:fs/promises'
import path from 'node:path'
import { CribcallError, FileTrustStore } from '../../index.js'
import { emit, localTime, out } from '../output.js'
import { entryFields, openTrustReadOnly } from '../state.js'

export async function cmdTrustList(o: { dir: string }): Promise<void> {
  const store = await openTrustReadOnly(o.dir)
  const entries = store.list()
  if (!out.json && entries.length === 0) process.stdout.write(`no paired devices in ${o.dir}\n`)
  for (const e of entries) {
    const seen = e.lastSeenAt === undefined ? 'never seen' : `last seen ${localTime(e.lastSeenAt)}`
    emit('trust', entryFields(e), `${e.deviceId}  ${e.role.padEnd(8)}  ${e.name}  ${e.fingerprint}  paired ${localTime(e.pairedAt)}, ${seen}`)
  }
}

export async function cmdTrustRevoke(deviceId: string, o: { dir: string }): Promise<void> {
  const file = path.join(o.dir, 'trust.json')
  // A mistyped --dir is said so, and nothing is created there.
  if (!(await access(file).then(() => true, () => false))) {
    throw new CribcallError('ERR_NOT_FOUND', `no paired device ${deviceId}: there is no trust store in ${o.dir}`)
  }
  const store = await FileTrustStore.open(file)
  const removed = await store.revoke(deviceId.toLowerCase())
  if (removed === undefined) throw new CribcallError('ERR_NOT_FOUND', `no paired device ${deviceId} in ${o.dir}`)
  emit('revoked', { deviceId: removed.deviceId, fingerprint: removed.fingerprint }, `revoked ${removed.name} (${removed.deviceId})`)
}

import { spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { FileTrustStore, IdentityFileError, MemoryTrustStore, TrustStoreError, loadOrCreateIdentity, type TrustEntry } from '../src/index.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const dirs: string[] = []
async function tempDir(): Promise<string> {
  const d = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-store-'))
  dirs.push(d)
  return d
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })))
})

const mode = async (p: string): Promise<number> => (await fs.stat(p)).mode & 0o777

function entry(i: number, over: Partial<TrustEntry> = {}): TrustEntry {
  return {
    deviceId: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
    name: `device ${i}`,
    fingerprint: (i % 16).toString(16).repeat(64),
    publicKey: Buffer.alloc(32, i).toString('base64'),
    role: 'listener',
    pairedAt: 1_700_000_000_000 + i,
    ...over,
  }
}

describe('identity on disk', () => {
  it('creates 0700/0600, reloads the same fingerprint, fixes loose modes', async () => {
    for (const keyType of ['p256', 'ed25519'] as const) {
      const dir = path.join(await tempDir(), 'id')
      const a = await loadOrCreateIdentity(dir, { keyType })
      expect(await mode(dir)).toBe(0o700)
      for (const f of ['identity.json', 'cert.der', 'key.pem']) expect(await mode(path.join(dir, f))).toBe(0o600)
      await fs.chmod(path.join(dir, 'key.pem'), 0o644)
      await fs.chmod(dir, 0o755)
      const b = await loadOrCreateIdentity(dir, { keyType: keyType === 'p256' ? 'ed25519' : 'p256' })
      expect(b.fingerprint).toBe(a.fingerprint)
      expect(b.deviceId).toBe(a.deviceId)
      expect(b.keyType).toBe(keyType)
      expect(b.certDer.equals(a.certDer)).toBe(true)
      expect(b.publicKey).toBe(a.publicKey)
      expect(await mode(path.join(dir, 'key.pem'))).toBe(0o600)
      expect(await mode(dir)).toBe(0o700)
    }
  })

  it('never replaces a corrupt or partial identity', async () => {
    const dir = path.join(await tempDir(), 'id')
    const a = await loadOrCreateIdentity(dir)
    const keyBefore = await fs.readFile(path.join(dir, 'key.pem'))
    // Corrupt key.
    await fs.writeFile(path.join(dir, 'key.pem'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')
    await expect(loadOrCreateIdentity(dir)).rejects.toBeInstanceOf(IdentityFileError)
    await fs.writeFile(path.join(dir, 'key.pem'), keyBefore)
    expect((await loadOrCreateIdentity(dir)).fingerprint).toBe(a.fingerprint)
    // Truncated certificate.
    const cert = await fs.readFile(path.join(dir, 'cert.der'))
    await fs.writeFile(path.join(dir, 'cert.der'), cert.subarray(0, cert.length - 10))
    await expect(loadOrCreateIdentity(dir)).rejects.toMatchObject({ code: 'ERR_IDENTITY_CORRUPT' })
    // Missing file: partial identity.
    await fs.rm(path.join(dir, 'cert.der'))
    const err = await loadOrCreateIdentity(dir).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(IdentityFileError)
    expect(String((err as Error).message)).toMatch(/incomplete/)
    // Still not regenerated.
    await expect(fs.stat(path.join(dir, 'cert.der'))).rejects.toThrow()
    expect((await fs.readFile(path.join(dir, 'key.pem'))).equals(keyBefore)).toBe(true)
    // A certificate from another identity does not pass either.
    const other = await loadOrCreateIdentity(path.join(await tempDir(), 'other'))
    await fs.writeFile(path.join(dir, 'cert.der'), other.certDer)
    await expect(loadOrCreateIdentity(dir)).rejects.toBeInstanceOf(IdentityFileError)
  })
})

describe('trust store', () => {
  it('persists, validates, revokes with an event, and refuses a corrupt file', async () => {
    const file = path.join(await tempDir(), 'state', 'trust.json')
    const s = await FileTrustStore.open(file)
    expect(await mode(path.dirname(file))).toBe(0o700)
    const revoked: TrustEntry[] = []
    s.on('revoked', (e) => revoked.push(e))
    await s.put(entry(1))
    await s.put(entry(2))
    await s.touch(entry(1).deviceId, { lastSeenAt: 5, lastAddress: '[::1]:48080' })
    expect(await mode(file)).toBe(0o600)
    const again = await FileTrustStore.open(file)
    expect(again.list().map((e) => e.deviceId).sort()).toEqual([entry(1).deviceId, entry(2).deviceId])
    expect(again.get(entry(1).deviceId)?.lastAddress).toBe('[::1]:48080')
    expect(again.findByFingerprint(entry(2).fingerprint)?.deviceId).toBe(entry(2).deviceId)
    await expect(s.put({ ...entry(3), fingerprint: 'xyz' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
    expect((await s.revoke(entry(1).deviceId))?.deviceId).toBe(entry(1).deviceId)
    expect(revoked.map((e) => e.deviceId)).toEqual([entry(1).deviceId])
    // Another process's revocation is seen on reload as 'revoked'.
    const seen: string[] = []
    again.on('revoked', (e) => seen.push(e.deviceId))
    await again.reload()
    expect(seen).toEqual([entry(1).deviceId])
    await fs.writeFile(file, '{"version":1,"entries":[{"deviceId":')
    await expect(FileTrustStore.open(file)).rejects.toBeInstanceOf(TrustStoreError)
    expect(await fs.readFile(file, 'utf8')).toBe('{"version":1,"entries":[{"deviceId":')
  })

  it('concurrent writers in one process lose nothing', async () => {
    const file = path.join(await tempDir(), 'trust.json')
    const a = await FileTrustStore.open(file)
    const b = await FileTrustStore.open(file)
    await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).put(entry(i, { fingerprint: i.toString(16).padStart(64, '0') }))))
    const c = await FileTrustStore.open(file)
    expect(c.list()).toHaveLength(40)
  })

  it('memory store has the same behaviour', async () => {
    const m = new MemoryTrustStore([entry(1)])
    let n = 0
    m.on('revoked', () => n++)
    await m.put(entry(2))
    expect(m.list()).toHaveLength(2)
    await m.revoke(entry(2).deviceId)
    await m.revoke(entry(2).deviceId)
    expect(n).toBe(1)
  })

  it('crash test: SIGKILL at random points never leaves an unreadable or partial store', async () => {
    const file = path.join(await tempDir(), 'trust.json')
    const runs = 20
    let killedMidway = 0
    for (let run = 0; run < runs; run++) {
      const child = spawn(process.execPath, [path.join(here, 'fixtures', 'store-writer.mjs'), file], { stdio: ['ignore', 'pipe', 'inherit'] })
      let writes = 0
      child.stdout.on('data', (d: Buffer) => {
        writes += d.toString().split('\n').filter(Boolean).length
      })
      // Wait for the first writes, then kill at a random point of the run.
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (writes > 0) {
            clearInterval(t)
            resolve()
          }
        }, 2)
      })
      await new Promise((r) => setTimeout(r, Math.random() * 150))
      const finished = child.exitCode !== null
      child.kill('SIGKILL')
      await new Promise((r) => child.once('exit', r))
      if (!finished && writes < 200) killedMidway++
      // The store must open and every entry must be complete and valid.
      const s = await FileTrustStore.open(file)
      const list = s.list()
      expect(list.length).toBeGreaterThan(0)
      expect(list.length).toBeLessThanOrEqual(7)
      for (const e of list) expect(e.name).toMatch(/^device \d+ x*$/)
      // And it stays writable (a stale lock of the killed writer is broken).
      await s.put(entry(100 + run, { fingerprint: 'f'.repeat(63) + (run % 10).toString() }))
      await s.revoke(entry(100 + run).deviceId)
    }
    console.log(`trust-store crash test: ${runs} runs, ${killedMidway} killed mid-write-sequence`)
    expect(killedMidway).toBeGreaterThan(runs / 2)
  }, 120_000)
})

describe('AbortSignal on every store call', () => {
  it('an aborted signal rejects with AbortError and changes nothing', async () => {
    const root = await tempDir()
    const aborted = AbortSignal.abort(new Error('user cancelled'))
    const rejectsAbort = async (p: Promise<unknown>): Promise<void> => {
      await expect(p).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' })
    }
    await rejectsAbort(loadOrCreateIdentity(path.join(root, 'id'), { signal: aborted }))
    await expect(fs.stat(path.join(root, 'id'))).rejects.toMatchObject({ code: 'ENOENT' })
    await rejectsAbort(FileTrustStore.open(path.join(root, 'trust', 'trust.json'), { signal: aborted }))
    await expect(fs.stat(path.join(root, 'trust'))).rejects.toMatchObject({ code: 'ENOENT' })

    const store = await FileTrustStore.open(path.join(root, 'trust', 'trust.json'))
    await store.put(entry(1))
    for (const s of [store, new MemoryTrustStore([entry(1)])]) {
      await rejectsAbort(s.put(entry(2), { signal: aborted }))
      await rejectsAbort(s.touch(entry(1).deviceId, { lastSeenAt: 1 }, { signal: aborted }))
      await rejectsAbort(s.revoke(entry(1).deviceId, { signal: aborted }))
      expect(s.list().map((e) => e.deviceId)).toEqual([entry(1).deviceId])
      expect(s.get(entry(1).deviceId)?.lastSeenAt).toBeUndefined()
    }
    await rejectsAbort(store.reload({ signal: aborted }))
    const again = await FileTrustStore.open(store.path, { readOnly: true })
    expect(again.list().map((e) => e.deviceId)).toEqual([entry(1).deviceId])
  })

  it('create: false loads an identity but never creates one', async () => {
    const root = await tempDir()
    await expect(loadOrCreateIdentity(path.join(root, 'none'), { create: false })).rejects.toMatchObject({ name: 'IdentityNotFoundError', code: 'ERR_NOT_FOUND' })
    await expect(fs.stat(path.join(root, 'none'))).rejects.toMatchObject({ code: 'ENOENT' })
    const made = await loadOrCreateIdentity(path.join(root, 'id'))
    expect((await loadOrCreateIdentity(path.join(root, 'id'), { create: false })).fingerprint).toBe(made.fingerprint)
  })
})

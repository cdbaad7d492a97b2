// The debugging aids read from the environment when an endpoint binds: QLOGDIR is created
// (with its parents) and gets one qlog file per connection; a QLOGDIR or SSLKEYLOGFILE
// that cannot be used fails the bind with an error naming it, instead of writing nothing.
import { spawnSync } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'index.js')

// One connection over loopback in a child process (the variables are read per process).
const SCRIPT = `
import { Endpoint, generateIdentity } from ${JSON.stringify(dist)}
const a = generateIdentity(), b = generateIdentity()
try {
  const server = await Endpoint.bind({ host: '127.0.0.1', port: 0, identity: a })
  server.listen({ acceptUnknown: true })
  const client = await Endpoint.bind({ host: '127.0.0.1', port: 0, identity: b })
  const conn = await client.connect({ host: '127.0.0.1', port: server.address.port, serverFingerprint: a.fingerprint })
  await conn.close()
  await client.close()
  await server.close()
  console.log('ok')
} catch (e) {
  console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message }))
}
`

function runWith(env: NodeJS.ProcessEnv): string {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 })
  expect(r.status, r.stderr).toBe(0)
  return r.stdout.trim()
}

let root = ''
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-debug-aids-'))
})
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true })
})

describe('QLOGDIR and SSLKEYLOGFILE', () => {
  it('QLOGDIR that does not exist yet is created and gets a qlog file per side of each connection', async () => {
    const dir = path.join(root, 'qlog', 'nested', 'deeper')
    expect(runWith({ QLOGDIR: dir })).toBe('ok')
    const files = await fs.readdir(dir)
    expect(files.filter((f) => f.endsWith('-server.sqlog'))).toHaveLength(1)
    expect(files.filter((f) => f.endsWith('-client.sqlog'))).toHaveLength(1)
    const first = (await fs.readFile(path.join(dir, files[0]!), 'utf8')).slice(0, 200)
    expect(first).toMatch(/qlog/)
  })

  it('a QLOGDIR that cannot be created fails the bind with an error naming it', async () => {
    const file = path.join(root, 'a-file')
    await fs.writeFile(file, 'not a directory')
    const out = JSON.parse(runWith({ QLOGDIR: path.join(file, 'qlog') })) as { name: string; code: string; message: string }
    expect(out).toMatchObject({ name: 'InvalidArgumentError', code: 'ERR_INVALID_ARG' })
    expect(out.message).toMatch(/^QLOGDIR=.*a-file\/qlog: cannot create the directory/)
  })

  it('an SSLKEYLOGFILE that cannot be opened fails the bind with an error naming it; one that can gets the secrets', async () => {
    const bad = JSON.parse(runWith({ SSLKEYLOGFILE: path.join(root, 'missing-dir', 'keys.log') })) as { code: string; message: string }
    expect(bad.code).toBe('ERR_INVALID_ARG')
    expect(bad.message).toMatch(/^SSLKEYLOGFILE=.*keys\.log: cannot open the file/)
    const good = path.join(root, 'keys.log')
    expect(runWith({ SSLKEYLOGFILE: good })).toBe('ok')
    expect(await fs.readFile(good, 'utf8')).toMatch(/^CLIENT_HANDSHAKE_TRAFFIC_SECRET /m)
  })
})

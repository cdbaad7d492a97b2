// `cribcall-agent watch` against a fake monitor in this process: a transient close
// (5 busy, whether it lands before or after readiness) prints `disconnected` and
// `reconnecting` and watch carries on; only a final close (2 UNAUTHORIZED) prints
// `disconnected` with `final: true`, and with every monitor refusing it watch exits 3.
// Like cli.test.ts it runs `node dist/cli/main.js` (after `npm run build`).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, expect, it } from 'vitest'

import { ControlChannel, FileTrustStore, generateIdentity, loadOrCreateIdentity } from '../src/index.js'
import { rawMonitor } from './fake-monitor.js'
import { Harness, LOOPBACK, withTimeout } from './helpers.js'

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js')

type Event = Record<string, unknown> & { event: string }

let h: Harness
let dir: string
let child: ChildProcessWithoutNullStreams | undefined

beforeEach(async () => {
  h = new Harness()
  dir = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-watch-'))
})
afterEach(async () => {
  if (child !== undefined && child.exitCode === null) child.kill('SIGKILL')
  child = undefined
  await h.closeAll()
  await fs.rm(dir, { recursive: true, force: true })
})

/** Starts `watch --json`; `next(name, match)` waits for an event, `exit` for the end. */
function startWatch(): { events: Event[]; next: (name: string, match?: (e: Event) => boolean) => Promise<Event>; exit: Promise<number | null>; output: () => string } {
  const events: Event[] = []
  let stdout = ''
  let stderr = ''
  let wake: () => void = () => undefined
  const proc = spawn(process.execPath, [CLI, 'watch', '--json', '--dir', dir], { stdio: ['pipe', 'pipe', 'pipe'] })
  child = proc
  proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
    const lines = stdout.split('\n')
    events.length = 0
    for (const line of lines.slice(0, -1)) if (line.startsWith('{')) events.push(JSON.parse(line) as Event) // complete lines only
    wake()
  })
  proc.stderr.setEncoding('utf8').on('data', (chunk: string) => void (stderr += chunk))
  const exit = new Promise<number | null>((resolve) => proc.on('close', (code) => (wake(), resolve(code))))
  const output = (): string => `--- stdout:\n${stdout}--- stderr:\n${stderr}`
  const next = (name: string, match: (e: Event) => boolean = () => true): Promise<Event> =>
    withTimeout(
      (async () => {
        for (;;) {
          const e = events.find((x) => x.event === name && match(x))
          if (e !== undefined) return e
          if (proc.exitCode !== null) throw new Error(`watch exited before '${name}'\n${output()}`)
          await new Promise<void>((r) => (wake = r))
        }
      })(),
      10_000,
      `'${name}' from watch\n${output()}`,
    )
  return { events, next, exit, output }
}

it('watch: busy closes do not end it; an UNAUTHORIZED close does (final: true, exit 3)', async () => {
  const me = await loadOrCreateIdentity(path.join(dir, 'identity'))
  let finalClose: (() => void) | undefined
  // 1st and 2nd connection: closed at once with 5 busy. 3rd: trusted, one NOISE_EVENT, then revoked on demand.
  const fake = await rawMonitor(h, me.fingerprint, (conn, n) => {
    if (n < 3) return void conn.close(5, 'busy')
    const ch = ControlChannel.accept(conn, { trust: 'trusted' })
    ch.on('error', () => undefined)
    ch.once('message', () => {
      ch.send({ type: 'NOISE_EVENT', monitorId: fake.identity.deviceId, timestamp: Date.now(), peakLevel: 33 })
      finalClose = () => void ch.close(2, 'revoked')
    })
  })
  const store = await FileTrustStore.open(path.join(dir, 'trust.json'))
  await store.put({
    deviceId: fake.identity.deviceId,
    name: 'Fake',
    fingerprint: fake.identity.fingerprint,
    publicKey: fake.identity.publicKey,
    role: 'monitor',
    pairedAt: Date.now(),
    lastAddress: `${LOOPBACK}:${fake.port}`,
  })

  const watch = startWatch()
  const ids = { deviceId: fake.identity.deviceId, fingerprint: fake.identity.fingerprint }
  expect(await watch.next('noise', (e) => e.peakLevel === 33)).toMatchObject({ monitorId: fake.identity.deviceId })
  expect(fake.connections()).toBe(3)
  const reconnecting = watch.events.filter((e) => e.event === 'reconnecting')
  expect(reconnecting.map((e) => e.attempt)).toEqual([2, 3])
  for (const e of reconnecting) expect(e).toMatchObject({ ...ids, delayMs: expect.any(Number) })
  expect(watch.events.some((e) => e.event === 'disconnected' && e.final === true)).toBe(false)
  expect(watch.events.some((e) => e.event === 'error' && e.code === 'ERR_PEER_REJECTED')).toBe(false)

  finalClose?.()
  expect(await watch.next('disconnected', (e) => e.final === true)).toMatchObject({ ...ids, code: 2, final: true })
  expect(await withTimeout(watch.exit, 5000, 'watch to exit')).toBe(3)
  // Exactly one `disconnected` per connection that was up, the last one final.
  const finals = watch.events.filter((e) => e.event === 'disconnected' && e.final === true)
  expect(finals).toHaveLength(1)
})

it('watch: a monitor whose identity changed ends its channel, but that is no refusal (exit 1)', async () => {
  const me = await loadOrCreateIdentity(path.join(dir, 'identity'))
  const fake = await rawMonitor(h, me.fingerprint, () => undefined)
  const store = await FileTrustStore.open(path.join(dir, 'trust.json'))
  const other = generateIdentity() // the stored pin is another certificate than the one presented
  await store.put({ deviceId: fake.identity.deviceId, name: 'Fake', fingerprint: other.fingerprint, publicKey: other.publicKey, role: 'monitor', pairedAt: Date.now(), lastAddress: `${LOOPBACK}:${fake.port}` })
  const watch = startWatch()
  expect(await watch.next('error')).toMatchObject({ code: 'ERR_PIN_MISMATCH' })
  expect(await watch.next('disconnected', (e) => e.final === true)).toMatchObject({ deviceId: fake.identity.deviceId })
  expect(await withTimeout(watch.exit, 5000, 'watch to exit')).toBe(1)
})

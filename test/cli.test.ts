// End-to-end tests of the `cribcall-agent` CLI, driven as a user would: each command is a
// separate `node dist/cli/main.js …` process with its own temp state directory, talking
// over QUIC on 127.0.0.1. The suite runs after `npm run build`, so dist/ exists.
//
// The steps share one monitor process and build on each other (pair → watch → revoke),
// so the tests of this file run in order.
import { existsSync, promises as fs } from 'node:fs'
import path from 'node:path'
import canonicalize from 'canonicalize'
import { describe, expect, it } from 'vitest'

import { Agent, HOST, dir, expectCleanFailure, expectOnlyJsonLines, mode, run, useCliSandbox } from './cli-agent.js'
import { freeUdpPort } from './helpers.js'

useCliSandbox()

// State shared by the steps below.
let monitor: Agent
let monitorInfo: { host: string; port: number; fingerprint: string; deviceId: string }
let qrPayload = ''
let listenerL = '' // deviceId of the PIN-paired listener (dir L)
let listenerL2 = '' // deviceId of the QR-paired listener (dir L2)

describe('cribcall-agent CLI', () => {
  it('identity: creates a private identity once and shows the same one again', async () => {
    const a = await run(['identity', '--json', '--dir', dir('I')])
    expect(a.code, a.describe()).toBe(0)
    const first = a.events.find((e) => e.event === 'identity')
    expect(first).toMatchObject({ deviceId: expect.any(String), keyType: 'p256', fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/) })

    expect(await mode(dir('I'))).toBe(0o700)
    const idDir = path.join(dir('I'), 'identity')
    expect(await mode(idDir)).toBe(0o700)
    const files = await fs.readdir(idDir)
    expect(files.sort()).toEqual(['cert.der', 'identity.json', 'key.pem'])
    for (const f of files) expect(await mode(path.join(idDir, f)), f).toBe(0o600)

    const b = await run(['identity', '--json', '--dir', dir('I')])
    expect(b.code, b.describe()).toBe(0)
    expect(b.events.find((e) => e.event === 'identity')).toMatchObject({ deviceId: first?.deviceId, fingerprint: first?.fingerprint })

    // An existing identity is never replaced by one of another key type.
    const c = await run(['identity', '--dir', dir('I'), '--key', 'ed25519'])
    expectCleanFailure(c, 2, /already exists/)

    // Without --dir: CRIBCALL_AGENT_DIR.
    const d = await run(['identity', '--json', '--key', 'ed25519'], { env: { CRIBCALL_AGENT_DIR: dir('env-dir') } })
    expect(d.code, d.describe()).toBe(0)
    expect(d.events[0]).toMatchObject({ event: 'identity', keyType: 'ed25519', dir: dir('env-dir') })
    expect(existsSync(path.join(dir('env-dir'), 'identity', 'key.pem'))).toBe(true)
  })

  it('monitor: binds port 0, prints the actual port, the fingerprint and the canonical QR payload', async () => {
    // --auto-approve: these steps pair by PIN and QR without an operator (approval: cli-approve.test.ts).
    monitor = new Agent(['monitor', '--json', '--host', HOST, '--port', '0', '--dir', dir('M'), '--name', 'Nursery', '--auto-approve'])
    const listening = await monitor.waitFor('listening')
    expect(listening).toMatchObject({ host: HOST, port: expect.any(Number), fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/), deviceId: expect.any(String) })
    monitorInfo = listening as unknown as typeof monitorInfo
    expect(monitorInfo.port).toBeGreaterThan(0)

    const qr = await monitor.waitFor('qr')
    qrPayload = qr.payload as string
    const parsed = JSON.parse(qrPayload) as Record<string, unknown>
    expect(canonicalize(parsed)).toBe(qrPayload) // canonical (JCS) JSON
    expect(parsed).toMatchObject({
      type: 'monitor_pair_v1',
      monitorId: monitorInfo.deviceId,
      monitorName: 'Nursery',
      monitorCertFingerprint: monitorInfo.fingerprint,
      pairingSecret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), // the window's one-time secret
      service: { defaultPort: monitorInfo.port },
    })
  })

  it('pair by PIN: the PIN the monitor shows is typed into pair (stdin, not a terminal)', async () => {
    const pair = new Agent(['pair', '--json', '--dir', dir('L'), '--host', HOST, '--port', String(monitorInfo.port), '--fingerprint', monitorInfo.fingerprint, '--name', 'Phone L', '--monitor-name', 'Nursery'])
    const shown = await monitor.waitFor('pin')
    expect(shown).toMatchObject({ pin: expect.stringMatching(/^\d{6}$/), pairingSessionId: expect.any(String), expiresInSec: expect.any(Number) })
    const asked = await pair.waitFor('pin-required')
    expect(asked).toMatchObject({ pairingSessionId: shown.pairingSessionId, attempt: 1 })
    pair.write(shown.pin as string) // stdin stays open: pair must finish by itself
    const { code } = await pair.waitExit()
    expect(code, pair.describe()).toBe(0)
    // PIN pairing carries no monitor name: stored under --monitor-name.
    expect(pair.events.find((e) => e.event === 'paired')).toMatchObject({ deviceId: monitorInfo.deviceId, name: 'Nursery', fingerprint: monitorInfo.fingerprint })
    expect(pair.stdout).not.toContain(shown.pin as string) // the listener never echoes the PIN

    const paired = await monitor.waitFor('paired', (e) => e.method === 'pin')
    expect(paired).toMatchObject({ name: 'Phone L', fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/) })
    listenerL = paired.deviceId as string
    const id = await run(['identity', '--json', '--dir', dir('L')])
    expect(id.events[0]).toMatchObject({ deviceId: listenerL, fingerprint: paired.fingerprint })
  })

  it('pair by QR: the payload the monitor printed, plus --host (a QR code carries no address)', async () => {
    const pair = await run(['pair', '--json', '--qr', qrPayload, '--host', HOST, '--port', String(monitorInfo.port), '--dir', dir('L2'), '--name', 'Phone L2'])
    expect(pair.code, pair.describe()).toBe(0)
    expect(pair.events.find((e) => e.event === 'paired')).toMatchObject({ deviceId: monitorInfo.deviceId, name: 'Nursery', fingerprint: monitorInfo.fingerprint })
    const paired = await monitor.waitFor('paired', (e) => e.method === 'qr')
    expect(paired).toMatchObject({ name: 'Phone L2' })
    listenerL2 = paired.deviceId as string
    expect(listenerL2).not.toBe(listenerL)

    const list = await run(['trust', 'list', '--json', '--dir', dir('L2')])
    expect(list.events).toEqual([expect.objectContaining({ event: 'trust', role: 'monitor', deviceId: monitorInfo.deviceId, lastAddress: `${HOST}:${monitorInfo.port}` })])
  })

  let watch: Agent

  it('watch: prints the NOISE_EVENTs typed into the monitor', async () => {
    watch = new Agent(['watch', '--json', '--dir', dir('L')])
    expect(await watch.waitFor('connected')).toMatchObject({ deviceId: monitorInfo.deviceId, fingerprint: monitorInfo.fingerprint })
    await monitor.waitFor('connected', (e) => e.deviceId === listenerL && e.trusted === true)

    const sentFrom = monitor.events.length
    monitor.write('noise 42')
    // L watches; L2 is paired but away (it would get the event by replay if it came back).
    expect(await monitor.waitFor('noise-sent', (e) => e.peakLevel === 42, 5000, sentFrom)).toMatchObject({ listeners: 1, notConnected: 1, tooSlow: 0 })
    monitor.write('noise 7')
    const n42 = await watch.waitFor('noise', (e) => e.peakLevel === 42)
    const n7 = await watch.waitFor('noise', (e) => e.peakLevel === 7)
    for (const n of [n42, n7]) {
      expect(n.monitorId).toBe(monitorInfo.deviceId)
      expect(Number.isInteger(n.timestamp)).toBe(true)
      expect(Number.isInteger(n.receivedAt)).toBe(true)
      expect(n.receivedAt as number).toBeGreaterThanOrEqual((n.timestamp as number) - 1000)
    }
    expect(watch.events.filter((e) => e.event === 'noise').map((e) => e.peakLevel)).toEqual([42, 7])

    // Bad monitor input is reported, and the monitor keeps running.
    const from = monitor.events.length
    monitor.write('noise loud')
    expect(await monitor.waitFor('error', () => true, 5000, from)).toMatchObject({ code: 'ERR_USAGE' })
    expect(monitor.exit).toBeUndefined()
  })

  it('trust list / trust revoke: revoking a watching listener from another process disconnects it', async () => {
    const list = await run(['trust', 'list', '--json', '--dir', dir('M')])
    expect(list.code, list.describe()).toBe(0)
    const trusted = list.events.filter((e) => e.event === 'trust')
    expect(trusted.map((e) => e.deviceId).sort()).toEqual([listenerL, listenerL2].sort())
    for (const e of trusted) expect(e).toMatchObject({ role: 'listener', fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/) })

    const from = monitor.events.length
    const revoke = await run(['trust', 'revoke', listenerL, '--dir', dir('M')])
    expect(revoke.code, revoke.describe()).toBe(0)
    expect(revoke.stdout).toMatch(/revoked/)

    expect(await monitor.waitFor('revoked', () => true, 5000, from)).toMatchObject({ deviceId: listenerL })
    expect(await monitor.waitFor('disconnected', (e) => e.deviceId === listenerL, 5000, from)).toMatchObject({ code: 2 })
    // The watching listener is told, and with all its channels closed for good it exits.
    expect(await watch.waitFor('disconnected', (e) => e.final === true, 5000)).toMatchObject({ deviceId: monitorInfo.deviceId, code: 2 })
    const { code } = await watch.waitExit(5000)
    expect(code, watch.describe()).toBe(3)
    expectOnlyJsonLines(watch)

    const after = await run(['trust', 'list', '--json', '--dir', dir('M')])
    expect(after.events.map((e) => e.deviceId)).toEqual([listenerL2])
  })

  describe('bad input: one line on stderr, no stack trace, non-zero exit', () => {
    const fp = (): string => monitorInfo.fingerprint

    it('unknown flag', async () => {
      expectCleanFailure(await run(['pair', '--bogus']), 2, /unknown option '--bogus'/)
      expectCleanFailure(await run(['frobnicate']), 2, /unknown command/)
    })

    it('bad fingerprint', async () => {
      const a = await run(['pair', '--json', '--dir', dir('X'), '--host', HOST, '--fingerprint', 'abc123'])
      expectCleanFailure(a, 2, /invalid fingerprint 'abc123'/)
      expect(a.events).toEqual([expect.objectContaining({ event: 'error', code: 'ERR_USAGE' })])
      // --debug is the one way to get the stack.
      const d = await run(['pair', '--debug', '--dir', dir('X'), '--host', HOST, '--fingerprint', 'abc123'])
      expect(d.code).toBe(2)
      expect(d.stderr).toMatch(/^\s+at /m)
    })

    it('bad QR JSON', async () => {
      expectCleanFailure(await run(['pair', '--dir', dir('X'), '--qr', '{"type":"monitor_pair_v1",', '--host', HOST]), 2, /invalid --qr: .*not valid JSON/)
      expectCleanFailure(await run(['pair', '--dir', dir('X'), '--qr', '{"type":"nope"}', '--host', HOST]), 2, /invalid --qr/)
      expectCleanFailure(await run(['pair', '--dir', dir('X'), '--qr', qrPayload]), 2, /--host is required/)
    })

    it('unreachable host: handshake timeout after --timeout', async () => {
      const port = await freeUdpPort()
      const t0 = performance.now()
      const a = await run(['pair', '--json', '--dir', dir('X'), '--host', HOST, '--port', String(port), '--fingerprint', fp(), '--pin', '123456', '--timeout', '1'])
      expect(performance.now() - t0).toBeLessThan(8000)
      expectCleanFailure(a, 1, /handshake timeout/)
      // Not silent while it waits: it says where it connects at once.
      expect(a.events).toEqual([
        expect.objectContaining({ event: 'connecting', host: HOST, port }),
        expect.objectContaining({ event: 'error', code: 'ERR_HANDSHAKE_TIMEOUT' }),
      ])
    })

    it('wrong PIN: rejected, and pair --pin gives up after the first rejection', async () => {
      const from = monitor.events.length
      const a = await run(['pair', '--json', '--dir', dir('L4'), '--host', HOST, '--port', String(monitorInfo.port), '--fingerprint', fp(), '--pin', '000000'])
      const shown = await monitor.waitFor('pin', () => true, 5000, from)
      if (shown.pin === '000000') return // one chance in a million: the guess was right
      expectCleanFailure(a, 1, /wrong PIN: the monitor rejected it/)
      expect(a.events).toEqual([expect.objectContaining({ event: 'connecting' }), expect.objectContaining({ event: 'error', code: 'ERR_PAIRING_REJECTED' })])
      expect(await monitor.waitFor('pairing-failed', () => true, 5000, from)).toMatchObject({ method: 'pin' })
      const list = await run(['trust', 'list', '--json', '--dir', dir('L4')])
      expect(list.events).toEqual([])
    })

    it('a PIN piped in that is not 6 digits, and no PIN at all', async () => {
      const pair = new Agent(['pair', '--json', '--dir', dir('L5'), '--host', HOST, '--port', String(monitorInfo.port), '--fingerprint', fp()])
      await pair.waitFor('pin-required')
      pair.child.stdin.end('12ab\n')
      const { code } = await pair.waitExit()
      expectCleanFailure(Object.assign(pair, { code }), 2, /invalid PIN '12ab'/)

      const none = await run(['pair', '--dir', dir('L5'), '--host', HOST, '--port', String(monitorInfo.port), '--fingerprint', fp()])
      expectCleanFailure(none, 2, /stdin ended without a PIN/)
    })

    it('watch without a paired monitor; revoking an unknown device', async () => {
      // A mistyped --dir: said so, and nothing is created there.
      expectCleanFailure(await run(['watch', '--dir', dir('typo')]), 1, /no identity in .*typo.*is --dir right/)
      expect(existsSync(dir('typo'))).toBe(false)
      expectCleanFailure(await run(['trust', 'revoke', '00000000-0000-4000-8000-000000000000', '--dir', dir('typo')]), 1, /no trust store in/)
      expect(existsSync(dir('typo'))).toBe(false)
      expect((await run(['identity', '--dir', dir('empty')])).code).toBe(0)
      expectCleanFailure(await run(['watch', '--dir', dir('empty')]), 1, /no paired monitor/)
      expectCleanFailure(await run(['trust', 'revoke', '00000000-0000-4000-8000-000000000000', '--dir', dir('M')]), 1, /no paired device/)
    })
  })

  it('Ctrl-C during pair: the pairing is abandoned (the monitor sees it leave), exit 130', async () => {
    const from = monitor.events.length
    const pair = new Agent(['pair', '--json', '--dir', dir('L6'), '--host', HOST, '--port', String(monitorInfo.port), '--fingerprint', monitorInfo.fingerprint])
    await pair.waitFor('pin-required')
    const shown = await monitor.waitFor('pin', () => true, 5000, from)
    const connected = monitor.events.slice(from).find((e) => e.event === 'connected' && e.trusted === false)
    pair.child.kill('SIGINT')
    const x = await pair.waitExit(2000)
    expect(x.code, pair.describe()).toBe(130)
    expect(pair.stderr).toBe('')
    expect(await monitor.waitFor('disconnected', (e) => e.fingerprint === connected?.fingerprint, 5000, from)).toMatchObject({ deviceId: null })
    expect(shown.pin).toMatch(/^\d{6}$/)
  })

  it('Ctrl-C: watch and monitor close cleanly with exit 0; watch reconnects by itself meanwhile', async () => {
    const w = new Agent(['watch', '--json', '--dir', dir('L2')])
    await w.waitFor('connected')
    await monitor.waitFor('connected', (e) => e.deviceId === listenerL2 && e.trusted === true)

    monitor.child.kill('SIGINT')
    const m = await monitor.waitExit(2000)
    expect(m.code, monitor.describe()).toBe(0)
    expect(m.ms).toBeLessThan(2000)
    expectOnlyJsonLines(monitor)

    // The monitor comes back on the same port: watch reconnects and gets its events.
    await w.waitFor('disconnected', () => true, 5000)
    const from = w.events.length
    const again = new Agent(['monitor', '--json', '--host', HOST, '--port', String(monitorInfo.port), '--dir', dir('M'), '--pair', 'off'])
    expect(await again.waitFor('listening')).toMatchObject({ port: monitorInfo.port, fingerprint: monitorInfo.fingerprint })
    expect(again.events.some((e) => e.event === 'qr')).toBe(false)
    await w.waitFor('connected', () => true, 15_000, from)
    await again.waitFor('connected', (e) => e.deviceId === listenerL2 && e.trusted === true)
    again.write('noise 99')
    await w.waitFor('noise', (e) => e.peakLevel === 99)

    w.child.kill('SIGINT')
    const wx = await w.waitExit(2000)
    expect(wx.code, w.describe()).toBe(0)
    expect(wx.ms).toBeLessThan(2000)
    expect(w.stderr).toBe('')

    again.child.kill('SIGINT')
    const ax = await again.waitExit(2000)
    expect(ax.code, again.describe()).toBe(0)
    expect(again.stderr).toBe('')
  })

  it('demo: exits 0 and prints the delivery latency', async () => {
    const human = await run(['demo'], { ms: 20_000 })
    expect(human.code, human.describe()).toBe(0)
    expect(human.stdout).toMatch(/deliveries; latency median \d+\.\d+ ms, max \d+\.\d+ ms/)

    const json = await run(['demo', '--json'], { ms: 20_000 })
    expect(json.code, json.describe()).toBe(0)
    expectOnlyJsonLines(json)
    const latency = json.events.find((e) => e.latencyMedianMs !== undefined)
    expect(latency).toMatchObject({ event: 'demo', deliveries: 10, latencyMedianMs: expect.any(Number), latencyMaxMs: expect.any(Number) })
  })
})

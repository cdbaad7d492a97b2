// `cribcall-agent monitor` asks the operator to approve each new listener unless
// --auto-approve: with stdin not a terminal it prints `approve-request` and reads
// `approve <listenerId>` / `refuse <listenerId>` lines. A QR request without the proof
// of the QR code's secret is refused without asking. Plus the y/N prompt logic of a
// terminal (src/cli/approvals.ts) driven directly. Like cli.test.ts it runs
// `node dist/cli/main.js` (after `npm run build`), over 127.0.0.1.
import { existsSync, promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { Approvals } from '../src/cli/approvals.js'
import type { PairingRequestInfo } from '../src/index.js'
import { AgentProcess, CLI } from './agent-process.js'

const HOST = '127.0.0.1'

let root = ''
const procs: Agent[] = []

/** A `cribcall-agent` process whose default state directory is inside this test's root. */
class Agent extends AgentProcess {
  constructor(args: readonly string[]) {
    super(args, { env: { CRIBCALL_AGENT_DIR: path.join(root, 'default-dir') } })
    procs.push(this)
  }
}

const dir = (name: string): string => path.join(root, name)

beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} is missing: run 'npm run build' first`).toBe(true)
  root = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-approve-'))
})

afterAll(async () => {
  for (const p of procs) if (p.exit === undefined) p.child.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.exited))
  if (root !== '') await fs.rm(root, { recursive: true, force: true })
})

describe('cribcall-agent monitor: operator approval over stdin lines', () => {
  let monitor: Agent
  let port = 0
  let qr = ''

  const pairArgs = (name: string, payload = qr, extra: string[] = []): string[] => [
    'pair', '--json', '--qr', payload, '--host', HOST, '--port', String(port), '--dir', dir(name), '--name', name, '--timeout', '20', ...extra,
  ]
  const trustedListeners = async (): Promise<string[]> => {
    const list = new Agent(['trust', 'list', '--json', '--dir', dir('M')])
    list.child.stdin.end()
    expect(await list.waitExit(), list.describe()).toBe(0)
    return list.events.filter((e) => e.event === 'trust').map((e) => e.name as string)
  }

  it('the monitor starts and prints a QR payload with the window secret', async () => {
    monitor = new Agent(['monitor', '--json', '--host', HOST, '--port', '0', '--dir', dir('M'), '--name', 'Nursery', '--pair', 'qr'])
    port = (await monitor.waitFor('listening')).port as number
    qr = (await monitor.waitFor('qr')).payload as string
    expect(JSON.parse(qr)).toMatchObject({ type: 'monitor_pair_v1', pairingSecret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) })
  })

  it('a device with the fingerprint but not the secret is refused without asking the operator', async () => {
    const from = monitor.events.length
    const stripped = JSON.parse(qr) as Record<string, unknown>
    delete stripped.pairingSecret
    const intruder = new Agent(pairArgs('Intruder', JSON.stringify(stripped)))
    intruder.child.stdin.end()
    expect(await intruder.waitExit(), intruder.describe()).toBe(1)
    expect(intruder.events.at(-1)).toMatchObject({ event: 'error', code: 'ERR_PAIRING_REJECTED', message: expect.stringMatching(/NOT_PAIRING/) })
    expect(await monitor.waitFor('pairing-failed', () => true, 10_000, from)).toMatchObject({ method: 'qr', reason: expect.stringMatching(/without pairingProof/) })
    expect(monitor.events.slice(from).some((e) => e.event === 'approve-request')).toBe(false)
    expect(await trustedListeners()).toEqual([])
  })

  it('refuse <listenerId>: PAIR_REJECTED, nothing stored; approve <listenerId>: paired', async () => {
    let from = monitor.events.length
    const a = new Agent(pairArgs('Phone-A'))
    const req = await monitor.waitFor('approve-request', () => true, 10_000, from)
    expect(req).toMatchObject({ name: 'Phone-A', method: 'qr', legacy: false, fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/), address: expect.stringMatching(/^127\.0\.0\.1:\d+$/) })
    const listenerId = req.listenerId as string
    monitor.write(`refuse ${listenerId}`)
    expect(await a.waitExit(), a.describe()).toBe(1)
    expect(a.events.at(-1)).toMatchObject({ event: 'error', code: 'ERR_PAIRING_REJECTED' })
    expect(await monitor.waitFor('pairing-failed', (e) => e.reason === 'not approved', 10_000, from)).toMatchObject({ fingerprint: req.fingerprint })
    expect(await trustedListeners()).toEqual([])

    // An answer for nobody is an error, and the monitor keeps running.
    from = monitor.events.length
    monitor.write(`approve ${listenerId}`)
    expect(await monitor.waitFor('error', () => true, 10_000, from)).toMatchObject({ code: 'ERR_NOT_FOUND' })
    monitor.write('approve')
    expect(await monitor.waitFor('error', (e) => e.code === 'ERR_USAGE', 10_000, from)).toMatchObject({ message: expect.stringMatching(/approve <listenerId>/) })

    from = monitor.events.length
    const again = new Agent(pairArgs('Phone-A'))
    const req2 = await monitor.waitFor('approve-request', () => true, 10_000, from)
    expect(req2.listenerId).toBe(listenerId)
    monitor.write(`approve ${listenerId.toUpperCase()}`) // ids compare case-insensitively
    expect(await again.waitExit(), again.describe()).toBe(0)
    expect(again.events.find((e) => e.event === 'paired')).toMatchObject({ name: 'Nursery' })
    expect(await monitor.waitFor('paired', () => true, 10_000, from)).toMatchObject({ deviceId: listenerId, name: 'Phone-A', method: 'qr' })
    expect(await trustedListeners()).toEqual(['Phone-A'])
  })

  it('a request whose listener hangs up is withdrawn (approve-cancelled)', async () => {
    const from = monitor.events.length
    const b = new Agent(pairArgs('Phone-B'))
    const req = await monitor.waitFor('approve-request', () => true, 10_000, from)
    b.child.kill('SIGINT')
    expect(await b.waitExit()).toBe(130)
    expect(await monitor.waitFor('approve-cancelled', () => true, 10_000, from)).toMatchObject({ listenerId: req.listenerId, fingerprint: req.fingerprint })
    monitor.write(`approve ${String(req.listenerId)}`)
    expect(await monitor.waitFor('error', (e) => e.code === 'ERR_NOT_FOUND', 10_000, from)).toBeDefined()
    expect(await trustedListeners()).toEqual(['Phone-A'])
  })

  it('reopening the window (`pair`) voids the QR code shown before', async () => {
    let from = monitor.events.length
    monitor.write('pair 1')
    const fresh = (await monitor.waitFor('qr', () => true, 10_000, from)).payload as string
    expect(JSON.parse(fresh).pairingSecret).not.toBe(JSON.parse(qr).pairingSecret)
    const stale = new Agent(pairArgs('Phone-C'))
    stale.child.stdin.end()
    expect(await stale.waitExit(), stale.describe()).toBe(1)
    expect(await monitor.waitFor('pairing-failed', () => true, 10_000, from)).toMatchObject({ reason: expect.stringMatching(/wrong pairingProof/) })
    qr = fresh
    from = monitor.events.length
    const c = new Agent(pairArgs('Phone-C'))
    const req = await monitor.waitFor('approve-request', () => true, 10_000, from)
    monitor.write(`approve ${String(req.listenerId)}`)
    expect(await c.waitExit(), c.describe()).toBe(0)
    expect((await trustedListeners()).sort()).toEqual(['Phone-A', 'Phone-C'])
  })

  it('once stdin has ended nobody can approve: requests are refused at once', async () => {
    const from = monitor.events.length
    monitor.child.stdin.end()
    const d = new Agent(pairArgs('Phone-D'))
    expect(await d.waitExit(), d.describe()).toBe(1)
    expect(await monitor.waitFor('approve-cancelled', () => true, 10_000, from)).toMatchObject({ reason: 'stdin closed' })
    expect(monitor.exit).toBeUndefined() // the monitor keeps running
    monitor.child.kill('SIGINT')
    expect(await monitor.waitExit(5000)).toBe(0)
  })

  it('--auto-approve pairs without asking', async () => {
    const m = new Agent(['monitor', '--json', '--host', HOST, '--port', '0', '--dir', dir('M2'), '--pair', 'qr', '--auto-approve'])
    port = (await m.waitFor('listening')).port as number
    qr = (await m.waitFor('qr')).payload as string
    const e = new Agent(pairArgs('Phone-E'))
    e.child.stdin.end()
    expect(await e.waitExit(), e.describe()).toBe(0)
    await m.waitFor('paired')
    expect(m.events.some((x) => x.event === 'approve-request')).toBe(false)
    m.child.kill('SIGINT')
    expect(await m.waitExit(5000)).toBe(0)
  })
})

describe('the y/N prompt of a terminal (Approvals, interactive)', () => {
  function request(id: string, name: string): PairingRequestInfo & { abort: () => void } {
    const ctl = new AbortController()
    return {
      method: 'qr',
      listenerId: id,
      listenerName: name,
      fingerprint: 'ab'.repeat(32),
      publicKey: 'AAAA',
      remoteAddress: { host: '127.0.0.1', port: 5000 },
      legacyQr: false,
      signal: ctl.signal,
      abort: () => ctl.abort(new Error('the requesting connection closed')),
    }
  }

  it('prompts one request at a time; y/yes approve, anything else refuses; approve/refuse lines work too', async () => {
    const prompts: string[] = []
    const events: Array<{ event: string; fields: Record<string, unknown> }> = []
    const a = new Approvals({ interactive: true, emit: (event, fields) => events.push({ event, fields }), prompt: (t) => prompts.push(t) })
    const r1 = a.request(request('11111111-1111-4111-8111-111111111111', 'One'))
    const r2 = a.request(request('22222222-2222-4222-8222-222222222222', 'Two'))
    const r3 = a.request(request('33333333-3333-4333-8333-333333333333', 'Three'))
    const r4 = request('44444444-4444-4444-8444-444444444444', 'Four')
    const p4 = a.request(r4)
    expect(prompts).toEqual([expect.stringMatching(/^Pair listener "One" \(11111111-1111-4111-8111-111111111111, fingerprint abababababababab…, 127\.0\.0\.1:5000, by QR\)\? \[y\/N\] $/)])
    expect(a.awaitingAnswer).toBe(true)
    a.answerPrompt(' YES ')
    expect(await r1).toBe(true)
    expect(prompts.at(-1)).toMatch(/"Two"/)
    a.answerPrompt('') // Enter: the default, no
    expect(await r2).toBe(false)
    expect(prompts.at(-1)).toMatch(/"Three"/)
    r4.abort() // a waiting request withdrawn: no prompt for it later
    expect(await p4).toBe(false)
    expect(events).toEqual([{ event: 'approve-cancelled', fields: expect.objectContaining({ listenerId: r4.listenerId, reason: 'the requesting connection closed' }) }])
    expect(a.answer('33333333-3333-4333-8333-333333333333', true)).toEqual({ ok: true })
    expect(await r3).toBe(true)
    expect(a.awaitingAnswer).toBe(false)
    expect(prompts).toHaveLength(3)
    expect(a.answer('33333333-3333-4333-8333-333333333333', true)).toMatchObject({ ok: false })
    a.answerPrompt('y') // nothing waiting: ignored
    // stdin ended: waiting and later requests are refused.
    const r5 = a.request(request('55555555-5555-4555-8555-555555555555', 'Five'))
    a.inputEnded()
    expect(await r5).toBe(false)
    expect(await a.request(request('66666666-6666-4666-8666-666666666666', 'Six'))).toBe(false)
    expect(events.at(-1)).toMatchObject({ event: 'approve-cancelled', fields: { reason: 'stdin closed' } })
  })

  it('non-interactive: an approve-request event per request, no prompt', async () => {
    const prompts: string[] = []
    const events: Array<{ event: string; fields: Record<string, unknown> }> = []
    const a = new Approvals({ interactive: false, emit: (event, fields) => events.push({ event, fields }), prompt: (t) => prompts.push(t) })
    const r = request('11111111-1111-4111-8111-111111111111', 'One')
    const p = a.request({ ...r, legacyQr: true })
    expect(events).toEqual([
      { event: 'approve-request', fields: { listenerId: r.listenerId, name: 'One', fingerprint: r.fingerprint, method: 'qr', address: '127.0.0.1:5000', legacy: true } },
    ])
    expect(a.awaitingAnswer).toBe(false)
    a.answerPrompt('y') // no prompt: not an answer
    expect(a.pending).toHaveLength(1)
    expect(a.answer(r.listenerId, false)).toEqual({ ok: true })
    expect(await p).toBe(false)
    expect(prompts).toEqual([])
  })
})

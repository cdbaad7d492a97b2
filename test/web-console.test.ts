// `cribcall-agent monitor --web`: the console's HTTP surface without a browser — the
// token on every route, the token-for-cookie exchange, CSRF refusals, the CSP and other
// headers, clear 4xx answers, the QR code only while the window is open, the PIN only
// while its session runs, refusing a listener from the console, and the SSE stream.
// Runs `node dist/cli/main.js` (build first).
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateIdentity, Listener, MemoryTrustStore } from '../src/index.js'
import { AgentProcess, CLI } from './agent-process.js'
import { consoleState, http, pageHeaders, post, startConsoleAgent, until, type ConsoleAgent } from './web-console-helpers.js'

const ROUTES: ReadonlyArray<readonly [string, string]> = [
  ['GET', '/'],
  ['GET', '/app.js'],
  ['GET', '/chart.js'],
  ['GET', '/app.css'],
  ['GET', '/favicon.svg'],
  ['GET', '/api/state'],
  ['GET', '/api/events'],
  ['GET', '/api/qr.svg'],
  ['GET', '/no/such/route'],
  ['POST', '/api/pairing/open'],
  ['POST', '/api/pairing/close'],
  ['POST', '/api/requests/00000000-0000-4000-8000-000000000000/approve'],
  ['POST', '/api/requests/00000000-0000-4000-8000-000000000000/refuse'],
  ['POST', '/api/listeners/00000000-0000-4000-8000-000000000000/revoke'],
  ['DELETE', '/api/state'],
]

let c: ConsoleAgent
beforeAll(async () => {
  c = await startConsoleAgent()
})
afterAll(async () => {
  await c?.stop()
})

describe('access', () => {
  it('answers 401 on every route without the token, with a wrong one, or with the token outside the exchange', async () => {
    const wrong = 'A'.repeat(c.token.length)
    for (const [method, route] of ROUTES) {
      const variants: Array<Record<string, string>> = [{}, { Authorization: `Bearer ${wrong}` }, { Cookie: `cribcall_console_${c.webPort}=${wrong}` }]
      for (const headers of variants) {
        const r = await http(c.origin + route, { method, headers: { ...headers, Origin: c.origin, 'Content-Type': 'application/json' }, body: method === 'POST' ? '{}' : undefined })
        expect(r.status, `${method} ${route} ${JSON.stringify(headers)}`).toBe(401)
        expect(r.json().error).toMatch(/not authorized/)
        expect(r.headers['content-security-policy']).toContain("default-src 'self'")
      }
    }
    expect((await http(`${c.origin}/?token=${wrong}`)).status).toBe(401)
    expect((await http(`${c.origin}/api/state?token=${c.token}`)).status).toBe(401)
    // The monitor is untouched: pairing is still open.
    expect((await consoleState(c)).pairing.open).toBe(true)
  })

  it('exchanges the URL token for an HttpOnly SameSite=Strict cookie and a redirect to /', async () => {
    const r = await http(c.url)
    expect(r.status).toBe(303)
    expect(r.headers.location).toBe('/')
    const cookie = String(r.headers['set-cookie'])
    expect(cookie).toMatch(new RegExp(`^cribcall_console_${c.webPort}=${c.token}; HttpOnly; SameSite=Strict; Path=/$`))
    const page = await http(c.origin + '/', { headers: { Cookie: cookie.split(';')[0] as string } })
    expect(page.status).toBe(200)
    expect(page.headers['content-type']).toMatch(/^text\/html/)
  })

  it('refuses a Host that is not loopback (DNS rebinding), even with the token', async () => {
    const r = await http(c.origin + '/api/state', { headers: { Authorization: `Bearer ${c.token}`, Host: `attacker.example:${c.webPort}` } })
    expect(r.status).toBe(403)
  })
})

describe('headers and page', () => {
  it('sends a strict CSP and the other security headers; the page has no inline script or style', async () => {
    const auth = { Authorization: `Bearer ${c.token}` }
    for (const route of ['/', '/app.js', '/api/state']) {
      const r = await http(c.origin + route, { headers: auth })
      expect(r.status).toBe(200)
      const csp = String(r.headers['content-security-policy'])
      for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"]) expect(csp).toContain(d)
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/)
      expect(r.headers['x-content-type-options']).toBe('nosniff')
      expect(r.headers['x-frame-options']).toBe('DENY')
      expect(r.headers['cache-control']).toBe('no-store')
    }
    const html = (await http(c.origin + '/', { headers: auth })).body
    expect(html).toContain('<script type="module" src="/app.js"></script>')
    expect(html).toContain('<link rel="stylesheet" href="/app.css">')
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/)
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i)
    expect(html).not.toMatch(/https?:\/\//) // nothing from the network
    expect((await http(c.origin + '/app.js', { headers: auth })).headers['content-type']).toMatch(/^text\/javascript/)
  })

  it('serves neither the private key, nor a pairing secret outside the QR code, nor a PIN', async () => {
    const key = await fs.readFile(path.join(c.dir, 'identity', 'key.pem'), 'utf8')
    const keyBody = key.replace(/-----[^-]+-----|\s/g, '').slice(0, 40)
    const secret = (JSON.parse(c.qrPayload) as { pairingSecret: string }).pairingSecret
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/)
    for (const route of ['/', '/app.js', '/chart.js', '/app.css', '/api/state']) {
      const body = (await http(c.origin + route, { headers: { Authorization: `Bearer ${c.token}` } })).body
      expect(body).not.toContain(keyBody)
      expect(body).not.toContain(secret)
    }
    expect((await consoleState(c)).pin).toBeNull()
  })
})

describe('bad requests', () => {
  it('refuses cross-origin POSTs (403) and leaves the monitor as it was', async () => {
    const attempts: Array<Record<string, string>> = [
      { Origin: 'http://attacker.example' },
      { Origin: 'http://127.0.0.1:1' }, // same site (another port): SameSite cookies still flow, Origin does not match
      { Origin: 'null' },
      { 'Sec-Fetch-Site': 'cross-site' },
      { 'Sec-Fetch-Site': 'same-site' },
    ]
    for (const h of attempts) {
      const r = await post(c, '/api/pairing/close', {}, h)
      expect(r.status, JSON.stringify(h)).toBe(403)
      expect(r.json().error).toMatch(/cross-origin|refused/)
    }
    const noOrigin = await http(c.origin + '/api/pairing/close', { method: 'POST', headers: { Authorization: `Bearer ${c.token}`, 'Content-Type': 'application/json' }, body: '{}' })
    expect(noOrigin.status).toBe(403)
    expect((await consoleState(c)).pairing.open).toBe(true)
  })

  it('answers bad input with a clear 4xx and a JSON error', async () => {
    const cases: Array<[string, string, Record<string, string>, string | undefined, number, RegExp]> = [
      ['POST', '/api/listeners/00000000-0000-4000-8000-000000000000/revoke', {}, '{}', 404, /no paired listener/],
      ['POST', '/api/listeners/not-a-device/revoke', {}, '{}', 404, /no paired listener/],
      ['POST', '/api/requests/00000000-0000-4000-8000-000000000000/approve', {}, '{"fingerprint":"00"}', 404, /no pairing request/],
      ['POST', '/api/pairing/open', {}, '{"minutes": 5', 400, /malformed JSON/],
      ['POST', '/api/pairing/open', {}, '[1,2]', 400, /must be an object/],
      ['POST', '/api/pairing/open', {}, '{"minutes": -1}', 400, /minutes/],
      ['POST', '/api/pairing/open', { 'Content-Type': 'text/plain' }, '{"minutes": 1}', 415, /application\/json/],
      ['POST', '/api/pairing/open', {}, JSON.stringify({ pad: 'x'.repeat(10_000) }), 413, /larger than/],
      ['POST', '/api/listeners/%E0%A4%A/revoke', {}, '{}', 400, /percent-encoding/],
      ['GET', '/api/pairing/open', {}, undefined, 405, /not allowed/],
      ['DELETE', '/api/listeners/00000000-0000-4000-8000-000000000000/revoke', {}, undefined, 405, /not allowed/],
      ['GET', '/nothing-here', {}, undefined, 404, /no such route/],
    ]
    for (const [method, route, extra, body, status, message] of cases) {
      const r = await http(c.origin + route, { method, headers: pageHeaders(c, extra), body })
      expect(r.status, `${method} ${route}`).toBe(status)
      expect(r.headers['content-type']).toMatch(/^application\/json/)
      expect(r.json().error).toMatch(message)
      if (status === 405) expect(r.headers.allow).toBeDefined()
    }
  })
})

describe('pairing from the console', () => {
  it('shows the QR code only while the window is open, a new one each time it opens', async () => {
    const auth = { Authorization: `Bearer ${c.token}` }
    const first = await http(c.origin + '/api/qr.svg', { headers: auth })
    expect(first.status).toBe(200)
    expect(first.headers['content-type']).toBe('image/svg+xml')
    expect(first.body).toMatch(/^<svg[^>]*viewBox/)
    expect((await post(c, '/api/pairing/close')).status).toBe(200)
    await c.agent.waitFor('pairing-closed')
    expect((await http(c.origin + '/api/qr.svg', { headers: auth })).status).toBe(404)
    expect((await consoleState(c)).pairing).toMatchObject({ open: false, qrVersion: null })
    expect((await post(c, '/api/pairing/close')).status).toBe(409)
    const opened = c.agent.events.length
    const r = await post(c, '/api/pairing/open', { minutes: 2 })
    expect(r.status).toBe(200)
    const qr = await c.agent.waitFor('qr', () => true, 5000, opened)
    expect(qr.payload).not.toBe(c.qrPayload) // a new secret
    const second = await http(c.origin + '/api/qr.svg', { headers: auth })
    expect(second.status).toBe(200)
    expect(second.body).not.toBe(first.body)
  })

  it('streams state and NOISE_EVENTs as Server-Sent Events', async () => {
    const controller = new AbortController()
    const res = await fetch(c.origin + '/api/events', { headers: { Authorization: `Bearer ${c.token}` }, signal: controller.signal })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    let text = ''
    const read = async (pattern: RegExp): Promise<void> => {
      const decoder = new TextDecoder()
      while (!pattern.test(text)) {
        const { value, done } = await reader.read()
        if (done) throw new Error(`stream ended before ${pattern}: ${text}`)
        text += decoder.decode(value)
      }
    }
    await read(/event: noise-history\n/)
    expect(text).toMatch(/event: state\ndata: \{/)
    c.agent.write('noise 42')
    await read(/event: noise\ndata: .*"peakLevel":42/)
    controller.abort()
  })

  it('shows the PIN only while its session runs; approvals wait in the console after stdin ended', async () => {
    c.agent.child.stdin.end() // nobody can answer on stdin any more: the console still can
    const listener = new Listener({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), name: 'Tablet' })
    try {
      let shown: Record<string, unknown> | undefined
      const paired = listener.pairWithPin({ host: '127.0.0.1', port: c.port, monitorFingerprint: (JSON.parse(c.qrPayload) as { monitorCertFingerprint: string }).monitorCertFingerprint }, async () => {
        const s = await until('the PIN in the console', async () => (await consoleState(c)).pin ?? undefined)
        shown = s as Record<string, unknown>
        return String(s.pin)
      })
      const request = await until('the approval request', async () => (await consoleState(c)).requests[0])
      expect(shown).toMatchObject({ listenerName: 'Tablet' })
      expect(shown?.pin).toMatch(/^\d{6}$/)
      expect((await consoleState(c)).pin).toBeNull() // the session ended once the PIN was confirmed
      expect(request).toMatchObject({ name: 'Tablet', method: 'pin', listenerId: listener.identity.deviceId, fingerprint: listener.identity.fingerprint })
      const wrongDevice = await post(c, `/api/requests/${request.listenerId}/approve`, { fingerprint: '0'.repeat(64) })
      expect(wrongDevice.status).toBe(409)
      expect((await post(c, `/api/requests/${request.listenerId}/approve`, {})).status).toBe(400)
      expect((await post(c, `/api/requests/${request.listenerId}/approve`, { fingerprint: request.fingerprint })).status).toBe(200)
      await paired
      const s = await consoleState(c)
      expect(s.requests).toEqual([])
      expect(s.listeners).toEqual([expect.objectContaining({ name: 'Tablet', deviceId: listener.identity.deviceId, fingerprint: listener.identity.fingerprint })])
    } finally {
      await listener.close()
    }
  })

  it('refuses a listener from the console: it gets PAIR_REJECTED, the monitor prints pairing-failed', async () => {
    const payload = String(c.agent.events.filter((e) => e.event === 'qr').at(-1)?.payload)
    const listener = new Listener({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), name: 'Stranger' })
    try {
      const attempt = listener.pairWithQr(payload, { host: '127.0.0.1', port: c.port }).then(
        () => 'paired',
        (e: unknown) => (e as { code?: string }).code,
      )
      const request = await until('the approval request', async () => (await consoleState(c)).requests[0])
      expect((await post(c, `/api/requests/${request.listenerId}/refuse`, { fingerprint: request.fingerprint })).status).toBe(200)
      expect(await attempt).toBe('ERR_PAIRING_REJECTED')
      await c.agent.waitFor('pairing-failed', (e) => e.reason === 'not approved' && e.fingerprint === listener.identity.fingerprint)
      expect((await consoleState(c)).listeners.map((l: { name: string }) => l.name)).toEqual(['Tablet'])
    } finally {
      await listener.close()
    }
  })
})

describe('command line', () => {
  it('rejects a malformed --web (exit 2) and warns when the console is not bound to loopback', async () => {
    const bad = new AgentProcess(['monitor', '--json', '--dir', c.dir, '--port', '0', '--web', 'localhost:http'])
    const e = await bad.waitFor('error')
    expect(e.code).toBe('ERR_USAGE')
    expect((await bad.exited).code).toBe(2)
    const open = new AgentProcess(['monitor', '--json', '--dir', path.join(c.dir, 'lan'), '--host', '127.0.0.1', '--port', '0', '--web', '0.0.0.0:0'])
    try {
      const web = await open.waitFor('web-console')
      expect(web).toMatchObject({ host: '0.0.0.0', loopback: false })
      expect((await open.waitFor('error')).code).toBe('ERR_WEB_NOT_LOOPBACK')
    } finally {
      await open.kill()
    }
  })

  it('loads the console only with --web (a dynamic import in the monitor command)', async () => {
    const main = await fs.readFile(CLI, 'utf8')
    expect(main).not.toMatch(/^import[^;]*from '\.\/(web|commands)\//m)
    const monitorCmd = await fs.readFile(path.join(path.dirname(CLI), 'commands', 'monitor.js'), 'utf8')
    expect(monitorCmd).not.toMatch(/^import[^;]*from '(\.\.\/web|\.\/monitor-web)/m)
    expect(monitorCmd).toContain("await import('./monitor-web.js')")
    const monitorWeb = await fs.readFile(path.join(path.dirname(CLI), 'commands', 'monitor-web.js'), 'utf8')
    expect(monitorWeb).not.toMatch(/^import[^;]*from '\.\.\/web\//m)
    expect(monitorWeb).toContain("await import('../web/index.js')")
    const index = await fs.readFile(path.join(path.dirname(CLI), '..', 'index.js'), 'utf8')
    expect(index).not.toMatch(/cli\/web|\.\/cli\//)
  })
})

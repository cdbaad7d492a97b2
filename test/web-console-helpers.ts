// Shared by the web console tests: a `cribcall-agent monitor --json --web 127.0.0.1:0`
// child process (dist/, build first) and raw HTTP requests with exact headers.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { AgentProcess } from './agent-process.js'

export interface ConsoleAgent {
  readonly agent: AgentProcess
  readonly dir: string
  /** The URL printed once (with the token). */
  readonly url: string
  /** `http://127.0.0.1:PORT` */
  readonly origin: string
  readonly token: string
  readonly webPort: number
  /** The monitor's UDP port. */
  readonly port: number
  /** The first `qr` event's payload. */
  readonly qrPayload: string
  stop(): Promise<void>
}

export async function startConsoleAgent(extra: readonly string[] = [], name = 'Nursery'): Promise<ConsoleAgent> {
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-web-'))
  const agent = new AgentProcess(['monitor', '--json', '--dir', dir, '--host', '127.0.0.1', '--port', '0', '--name', name, '--web', '127.0.0.1:0', ...extra])
  try {
    const listening = await agent.waitFor('listening')
    const web = await agent.waitFor('web-console')
    const qr = await agent.waitFor('qr')
    const url = String(web.url)
    const m = /^(http:\/\/127\.0\.0\.1:(\d+))\/\?token=([A-Za-z0-9_-]+)$/.exec(url)
    if (m === null) throw new Error(`unexpected console URL ${url}`)
    return {
      agent,
      dir,
      url,
      origin: m[1] as string,
      webPort: Number(m[2]),
      token: m[3] as string,
      port: Number(listening.port),
      qrPayload: String(qr.payload),
      async stop() {
        await agent.kill()
        await fs.rm(dir, { recursive: true, force: true })
      },
    }
  } catch (e) {
    await agent.kill()
    await fs.rm(dir, { recursive: true, force: true })
    throw e
  }
}

export interface Reply {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
  json(): Record<string, unknown>
}

/** One HTTP request with exactly these headers (Host defaults to the URL's). */
export function http(url: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          json: () => JSON.parse(body) as Record<string, unknown>,
        }),
      )
    })
    req.on('error', reject)
    req.end(options.body)
  })
}

/** Headers of a same-origin request from the console page, with the token as a Bearer credential. */
export function pageHeaders(c: ConsoleAgent, extra: Record<string, string> = {}): Record<string, string> {
  return { Authorization: `Bearer ${c.token}`, Origin: c.origin, 'Sec-Fetch-Site': 'same-origin', 'Content-Type': 'application/json', ...extra }
}

/** POST from the console page (same origin, JSON body). */
export function post(c: ConsoleAgent, route: string, body: unknown = {}, extra: Record<string, string> = {}): Promise<Reply> {
  return http(c.origin + route, { method: 'POST', headers: pageHeaders(c, extra), body: JSON.stringify(body) })
}

/** GET /api/state with the token. */
export async function consoleState(c: ConsoleAgent): Promise<Record<string, any>> {
  const r = await http(c.origin + '/api/state', { headers: { Authorization: `Bearer ${c.token}` } })
  if (r.status !== 200) throw new Error(`/api/state: ${r.status} ${r.body}`)
  return r.json()
}

/** Polls `probe` every 50 ms until it returns a value other than undefined. */
export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await probe()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

// The web console's HTTP server (node:http only): the token check on every route, the
// token-for-cookie exchange, the CSRF check on POSTs, the JSON API, the QR code as SVG
// and the Server-Sent Events stream of state changes and NOISE_EVENTs.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { ConsoleAuth } from './auth.js'
import { HttpError, readJsonBody, securityHeaders, sendError, sendJson, type Asset } from './http.js'
import type { ConsoleState } from './state.js'

/** What the API's POST routes do (the monitor command's own actions). */
export interface ConsoleActions {
  openPairing(body: Record<string, unknown>): Promise<void>
  closePairing(): void
  answer(listenerId: string, body: Record<string, unknown>, approve: boolean): void
  revoke(deviceId: string): Promise<void>
  /** The QR code of the open window as SVG, or undefined when no QR code is to be shown. */
  qrSvg(): Promise<string | undefined>
}

type Handler = (req: IncomingMessage, res: ServerResponse, params: readonly string[]) => Promise<void> | void
interface Route {
  readonly pattern: RegExp
  readonly methods: Partial<Record<'GET' | 'POST', Handler>>
}

/** At most this many event streams at once (each browser tab holds one). */
const MAX_STREAMS = 32
const HEARTBEAT_MS = 15_000
/** A stream whose reader fell this far behind is dropped (the page reconnects and gets a fresh snapshot). */
const MAX_STREAM_BACKLOG = 1024 * 1024

export class ConsoleServer {
  readonly #server: Server
  readonly #streams = new Set<ServerResponse>()
  readonly #routes: readonly Route[]
  readonly #unsubscribe: Array<() => void> = []
  #heartbeat: NodeJS.Timeout | undefined

  constructor(
    readonly auth: ConsoleAuth,
    readonly state: ConsoleState,
    readonly actions: ConsoleActions,
    readonly assets: ReadonlyMap<string, Asset>,
  ) {
    const post = (fn: (req: IncomingMessage, body: Record<string, unknown>, params: readonly string[]) => Promise<unknown> | unknown): Handler =>
      async (req, res, params) => {
        await fn(req, await readJsonBody(req), params)
        sendJson(res, 200, { ok: true, state: this.state.snapshot() })
      }
    this.#routes = [
      ...[...assets.keys()].map((path) => ({ pattern: new RegExp(`^${path.replace(/\./g, '\\.')}$`), methods: { GET: this.#asset(path) } })),
      { pattern: /^\/api\/state$/, methods: { GET: (_q, res) => sendJson(res, 200, this.state.snapshot()) } },
      { pattern: /^\/api\/events$/, methods: { GET: (req, res) => this.#stream(req, res) } },
      { pattern: /^\/api\/qr\.svg$/, methods: { GET: (_q, res) => this.#qr(res) } },
      { pattern: /^\/api\/pairing\/open$/, methods: { POST: post((_q, body) => this.actions.openPairing(body)) } },
      { pattern: /^\/api\/pairing\/close$/, methods: { POST: post(() => this.actions.closePairing()) } },
      { pattern: /^\/api\/requests\/([^/]+)\/(approve|refuse)$/, methods: { POST: post((_q, body, [id, what]) => this.actions.answer(id ?? '', body, what === 'approve')) } },
      { pattern: /^\/api\/listeners\/([^/]+)\/revoke$/, methods: { POST: post((_q, _body, [id]) => this.actions.revoke(id ?? '')) } },
    ]
    this.#server = createServer({ requestTimeout: 15_000, headersTimeout: 10_000 }, (req, res) => {
      this.#handle(req, res).catch((e: unknown) => sendError(res, e instanceof HttpError ? e : new HttpError(500, `internal error: ${String(e)}`)))
    })
    this.#unsubscribe.push(
      state.onChange(() => this.#broadcast('state', this.state.snapshot())),
      state.onNoise((p) => this.#broadcast('noise', p)),
    )
  }

  /** Binds; resolves with the bound address. */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen({ host, port, exclusive: true }, () => {
        this.#server.off('error', reject)
        this.#heartbeat = setInterval(() => this.#write(': keep-alive\n\n'), HEARTBEAT_MS)
        this.#heartbeat.unref()
        resolve(this.#server.address() as AddressInfo)
      })
    })
  }

  async close(): Promise<void> {
    clearInterval(this.#heartbeat)
    for (const u of this.#unsubscribe) u()
    for (const s of this.#streams) s.end()
    this.#streams.clear()
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    securityHeaders(res)
    if (!this.auth.hostAllowed(req)) throw new HttpError(403, 'unexpected Host header (the console answers only to the address it is bound to)')
    const url = new URL(req.url ?? '/', 'http://console.invalid')
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? '')
    // The token exchange: `/?token=…` (the URL printed at start) sets the session
    // cookie and redirects to `/`, so the token leaves the address bar and history.
    const offered = url.searchParams.get('token')
    if (offered !== null && url.pathname === '/' && method === 'GET') {
      if (!this.auth.matches(offered)) throw this.#unauthorized(req)
      res.writeHead(303, { 'Set-Cookie': this.auth.cookie(), Location: '/' })
      res.end()
      return
    }
    if (!this.auth.authenticated(req)) throw this.#unauthorized(req)
    const route = this.#routes.find((r) => r.pattern.test(url.pathname))
    if (route === undefined) throw new HttpError(404, `no such route: ${url.pathname}`)
    const handler = route.methods[method as 'GET' | 'POST']
    const allow = Object.keys(route.methods).flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m])).join(', ')
    if (handler === undefined) throw new HttpError(405, `method ${req.method ?? '?'} not allowed on ${url.pathname} (allowed: ${allow})`, { Allow: allow })
    if (method === 'POST') {
      const verdict = this.auth.sameOrigin(req)
      if (!verdict.ok) throw new HttpError(verdict.status, verdict.message)
    }
    let params: string[]
    try {
      params = (route.pattern.exec(url.pathname) ?? []).slice(1).map((p) => decodeURIComponent(p))
    } catch {
      throw new HttpError(400, `malformed percent-encoding in ${url.pathname}`)
    }
    await handler(req, res, params)
  }

  #unauthorized(req: IncomingMessage): HttpError {
    const page = (req.headers.accept ?? '').includes('text/html')
    const hint = 'open the console with the URL cribcall-agent printed at start (http://HOST:PORT/?token=…)'
    return new HttpError(401, page ? `not authorized: ${hint}` : `not authorized: missing or wrong token; ${hint}`)
  }

  #asset(path: string): Handler {
    return (_req, res) => {
      const a = this.assets.get(path) as Asset
      res.writeHead(200, { 'Content-Type': a.type, 'Content-Length': a.body.length })
      res.end(a.body)
    }
  }

  async #qr(res: ServerResponse): Promise<void> {
    const svg = await this.actions.qrSvg()
    if (svg === undefined) throw new HttpError(404, 'no QR code: the pairing window is closed or does not offer QR pairing')
    res.writeHead(200, { 'Content-Type': 'image/svg+xml', 'Content-Length': Buffer.byteLength(svg) })
    res.end(svg)
  }

  #stream(req: IncomingMessage, res: ServerResponse): void {
    if (this.#streams.size >= MAX_STREAMS) throw new HttpError(503, `too many open consoles (at most ${MAX_STREAMS} event streams)`)
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' })
    if (req.method === 'HEAD') return void res.end()
    res.write('retry: 3000\n\n')
    res.write(event('state', this.state.snapshot()))
    res.write(event('noise-history', this.state.noiseHistory()))
    this.#streams.add(res)
    const drop = (): void => {
      this.#streams.delete(res)
    }
    req.on('close', drop)
    res.on('error', drop)
  }

  #broadcast(name: string, data: unknown): void {
    if (this.#streams.size > 0) this.#write(event(name, data))
  }

  #write(text: string): void {
    for (const s of this.#streams) {
      if (s.writableLength > MAX_STREAM_BACKLOG) {
        this.#streams.delete(s)
        s.destroy()
      } else s.write(text)
    }
  }
}

function event(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`
}

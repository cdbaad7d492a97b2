// The web console's access control: a random token made at start (printed once, as a
// URL), compared in constant time; the page exchanges it for an HttpOnly SameSite=Strict
// cookie; state-changing requests also need a same-origin request (CSRF).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'

/** 256 random bits, URL-safe. */
export function newToken(): string {
  return randomBytes(32).toString('base64url')
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest()
}

/** True for an IP literal of the loopback range (127.0.0.0/8, ::1, IPv4-mapped 127/8). */
export function isLoopbackAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (isIP(h) === 4) return h.startsWith('127.')
  if (h === '::1') return true
  return /^::ffff:127\./.test(h)
}

/** Host names a browser on this machine may use for a console bound to loopback. */
function isLoopbackName(host: string): boolean {
  return host === 'localhost' || isLoopbackAddress(host)
}

/** The host part of a Host header (without the port; IPv6 keeps no brackets). */
function hostOf(header: string): string | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(header)
  return m?.[1]?.replace(/^\[|\]$/g, '').toLowerCase()
}

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly status: 401 | 403; readonly message: string }

export class ConsoleAuth {
  readonly #digest: Buffer
  /** Session cookie name; carries the port, because cookies are shared between the ports of a host. */
  #cookieName = 'cribcall_console'
  /** Bound to loopback: Host must name loopback (a DNS-rebinding page gets nowhere). */
  #loopbackOnly = true

  constructor(readonly token: string) {
    this.#digest = digest(token)
  }

  /** Called once the server is bound (the port may have been 0). */
  bound(port: number, loopbackOnly: boolean): void {
    this.#cookieName = `cribcall_console_${port}`
    this.#loopbackOnly = loopbackOnly
  }

  get cookieName(): string {
    return this.#cookieName
  }

  /** Constant-time: both sides are SHA-256 digests of equal length. */
  matches(candidate: string | undefined): boolean {
    if (candidate === undefined || candidate.length === 0 || candidate.length > 512) return false
    return timingSafeEqual(digest(candidate), this.#digest)
  }

  /** The `Set-Cookie` value that the token exchange (`/?token=…`) answers with. */
  cookie(): string {
    return `${this.#cookieName}=${this.token}; HttpOnly; SameSite=Strict; Path=/`
  }

  /** A Host header this console answers to. */
  hostAllowed(req: IncomingMessage): boolean {
    const header = req.headers.host
    if (header === undefined) return false
    const host = hostOf(header)
    if (host === undefined) return false
    return !this.#loopbackOnly || isLoopbackName(host)
  }

  /** The request's credential: the session cookie, else `Authorization: Bearer <token>`. */
  authenticated(req: IncomingMessage): boolean {
    const auth = req.headers.authorization
    if (auth !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(auth)
      return this.matches(m?.[1])
    }
    return this.matches(cookieValue(req.headers.cookie, this.#cookieName))
  }

  /**
   * CSRF check for state-changing requests: `Origin` must be this console's own origin
   * (`http://` + the Host the request was sent to) and `Sec-Fetch-Site`, when the
   * browser sends it, `same-origin`. A request with no Origin is refused too.
   */
  sameOrigin(req: IncomingMessage): Verdict {
    const site = req.headers['sec-fetch-site']
    if (site !== undefined && site !== 'same-origin') {
      return { ok: false, status: 403, message: `cross-origin request refused (Sec-Fetch-Site: ${String(site)})` }
    }
    const origin = req.headers.origin
    if (origin === undefined) return { ok: false, status: 403, message: 'request without an Origin header refused (state-changing requests must come from the console page)' }
    if (origin !== `http://${req.headers.host ?? ''}`) return { ok: false, status: 403, message: `cross-origin request refused (Origin: ${origin})` }
    return { ok: true }
  }
}

/** The value of cookie `name` in a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq === -1) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

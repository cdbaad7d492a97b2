// HTTP plumbing of the web console: the security headers every response carries, JSON
// answers and errors, size-limited JSON bodies, and the page's static files.
import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'

/** Largest request body accepted (the API's bodies are a few dozen bytes). */
export const MAX_BODY_BYTES = 4096

/**
 * Strict CSP: only this origin's script and style files (no inline script or style, no
 * eval), images from here (the QR SVG), no plugins, no framing, no form posts, and DOM
 * sinks that take HTML refused (Trusted Types: the page builds its DOM with textContent).
 */
export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  'trusted-types',
].join('; ')

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=()',
  // Everything is behind the token and changes: nothing is cached.
  'Cache-Control': 'no-store',
}

export function securityHeaders(res: ServerResponse): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v)
}

/** A 4xx/5xx answer with a JSON body `{ "error": message }`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

export function sendError(res: ServerResponse, e: HttpError): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  sendJson(res, e.status, { error: e.message, status: e.status }, e.headers)
}

/** The body of a POST as a JSON object (empty body: `{}`); 413, 415 or 400 otherwise. */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
  const declared = Number(req.headers['content-length'] ?? '0')
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `request body larger than ${MAX_BODY_BYTES} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body larger than ${MAX_BODY_BYTES} bytes`)
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') return {}
  if (type !== 'application/json') throw new HttpError(415, 'the request body must be application/json')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (e) {
    throw new HttpError(400, `malformed JSON body: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new HttpError(400, 'the JSON body must be an object')
  return value as Record<string, unknown>
}

export interface Asset {
  readonly type: string
  readonly body: Buffer
}

const ASSETS: Record<string, string> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/chart.js': 'chart.js',
  '/app.css': 'app.css',
  '/favicon.svg': 'favicon.svg',
}

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
}

/** Reads the page's files (shipped beside this module in static/) once, at start. */
export async function loadAssets(): Promise<Map<string, Asset>> {
  const dir = new URL('./static/', import.meta.url)
  const out = new Map<string, Asset>()
  for (const [route, file] of Object.entries(ASSETS)) {
    let body: Buffer
    try {
      body = await readFile(new URL(file, dir))
    } catch (e) {
      throw new Error(`web console file ${fileURLToPath(new URL(file, dir))} is missing (npm run build:ts copies it): ${String(e)}`)
    }
    out.set(route, { type: TYPES[file.split('.').pop() ?? ''] ?? 'application/octet-stream', body })
  }
  return out
}

// Shared helpers of the benchmark suite, used by the orchestrator (bench/run.mjs), the
// workers (bench/workers/*.mjs) and the transport adapters (bench/lib/impl-*.mjs):
//
//   - framing: the 4-byte big-endian length prefix used by every transport here;
//   - pinning: SHA-256 of a certificate's DER, and the Node `tls` options/checks that pin
//     both peers the way cribcall-quic does (mutual TLS, self-signed, trust by pin);
//   - payloads: the PING frame, NOISE_EVENTs and their sorted-key JSON;
//   - stats: percentiles and median/min/max summaries;
//   - the worker side of the orchestrator's IPC protocol (serveOps).
//
// This module must not import dist/: the node:tls workers load it too, and their RSS and
// start-up cost must not include the library under test.
import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'

export const HOST = '127.0.0.1'
/** Largest frame payload accepted by the parsers here (cribcall-quic's default maxFramePayload). */
export const MAX_PAYLOAD = 65536

// ---------------------------------------------------------------- clock

/**
 * Milliseconds on the system-wide monotonic clock (CLOCK_MONOTONIC on Linux, what
 * process.hrtime uses): comparable between processes on the same machine, so a server
 * can stamp "first send" and a client "last receipt".
 */
export function monoMs() {
  return Number(process.hrtime.bigint()) / 1e6
}

export const now = () => performance.now()

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------- framing

/** One frame: 4-byte big-endian payload length, then the payload (copied). */
export function encodeFrame(payload) {
  const out = Buffer.allocUnsafe(4 + payload.length)
  out.writeUInt32BE(payload.length, 0)
  out.set(payload, 4)
  return out
}

/**
 * Incremental parser for the 4-byte length framing. Keeps the received chunks in a list
 * and copies only when a frame spans chunks, so 64 KiB frames arriving in 16 KiB TLS
 * records cost one copy each, not a growing concat per chunk.
 */
export function frameParser(onFrame) {
  const chunks = []
  let buffered = 0
  let need = -1 // payload length of the frame being assembled, -1 = header not read yet

  const take = (n) => {
    const first = chunks[0]
    if (first.length === n) {
      chunks.shift()
      buffered -= n
      return first
    }
    if (first.length > n) {
      chunks[0] = first.subarray(n)
      buffered -= n
      return first.subarray(0, n)
    }
    const out = Buffer.allocUnsafe(n)
    let off = 0
    while (off < n) {
      const c = chunks[0]
      const k = Math.min(c.length, n - off)
      c.copy(out, off, 0, k)
      off += k
      if (k === c.length) chunks.shift()
      else chunks[0] = c.subarray(k)
    }
    buffered -= n
    return out
  }

  return (chunk) => {
    chunks.push(chunk)
    buffered += chunk.length
    for (;;) {
      if (need < 0) {
        if (buffered < 4) return
        need = take(4).readUInt32BE(0)
        if (need === 0 || need > MAX_PAYLOAD) throw new Error(`bad frame length ${need}`)
      }
      if (buffered < need) return
      const payload = take(need)
      need = -1
      onFrame(payload)
    }
  }
}

// ---------------------------------------------------------------- pinning

export const sha256Hex = (der) => createHash('sha256').update(der).digest('hex')

/** Node `tls` server options: TLS 1.3, client certificate requested, trust by pin (see pinnedPeer). */
export function tlsServerOptions(identity) {
  return {
    key: identity.keyPem,
    cert: identity.certPem,
    requestCert: true,
    rejectUnauthorized: false, // self-signed certificates: trust comes from the pin
    minVersion: 'TLSv1.3',
  }
}

/**
 * Node `tls` client options. The server certificate is self-signed, so OpenSSL's chain
 * check fails and Node skips checkServerIdentity (rejectUnauthorized is off): the pin is
 * checked on 'secureConnect' with pinnedPeer() instead, before the connection is used.
 */
export function tlsClientOptions(identity, port) {
  return {
    host: HOST,
    port,
    key: identity.keyPem,
    cert: identity.certPem,
    rejectUnauthorized: false, // self-signed certificates: trust comes from the pin
    minVersion: 'TLSv1.3',
    checkServerIdentity: () => undefined, // no host names here: the pin is the identity
  }
}

/** The fingerprint of the certificate a TLS socket's peer presented, or null. */
export function pinnedPeer(socket) {
  const peer = socket.getPeerCertificate(true)
  return peer?.raw ? sha256Hex(peer.raw) : null
}

// ---------------------------------------------------------------- payloads

/** A ~33-byte PING frame payload (the protocol's PING, padded to 33 bytes). */
export function pingPayload(i = 0) {
  return Buffer.from(JSON.stringify({ type: 'PING', timestamp: i % 1000 }).padEnd(33, ' '))
}

export const MONITOR_ID = '6f9619ff-8b86-4011-b42d-00c04fc964ff'
export const NOISE_BASE_TS = 1_700_000_000_000

/** NOISE_EVENT number `i`; its timestamp doubles as the sequence number (NOISE_BASE_TS + i). */
export function noiseEvent(i) {
  return { type: 'NOISE_EVENT', monitorId: MONITOR_ID, timestamp: NOISE_BASE_TS + i, peakLevel: i % 101 }
}

/** JSON with object keys sorted (what canonical JSON does for these flat messages). */
export function sortedJson(value) {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${sortedJson(value[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(value)
}

/** The one-word frame a sink sends back once it has received everything. */
export const DONE = Buffer.from('{"type":"DONE"}')

// ---------------------------------------------------------------- stats

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1))]
}

/** p50/p99 of raw samples (any order). */
export function quantiles(samples) {
  const sorted = Float64Array.from(samples).sort()
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) }
}

/** Median (mean of the two middle values for an even count), min and max. */
export function summarize(values) {
  const xs = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b)
  if (xs.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 }
  const mid = xs.length >> 1
  const median = xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2
  return { median, min: xs[0], max: xs[xs.length - 1], n: xs.length }
}

// ---------------------------------------------------------------- process metrics

/** process.cpuUsage() user + system, in ms. */
export function cpuMs() {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/** Runs a full GC (workers run with --expose-gc) a few times so RSS reflects live data. */
export async function fullGc() {
  if (typeof globalThis.gc !== 'function') return
  for (let i = 0; i < 3; i++) {
    globalThis.gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
}

// ---------------------------------------------------------------- worker IPC

/** Error text that survives IPC: the stack when there is one, with a code when set. */
export function describeError(error) {
  if (error instanceof Error) {
    const code = typeof error.code === 'string' ? ` [${error.code}]` : ''
    return `${error.stack ?? `${error.name}: ${error.message}`}${code}`
  }
  return String(error)
}

/**
 * The worker side of the orchestrator's protocol: requests {id, op, args} are answered
 * with {id, ok: true, result} or {id, ok: false, error}. `gc`, `rss`, `cpu` and `exit`
 * are built in. The worker exits when the orchestrator goes away (IPC disconnect), so no
 * worker outlives a crashed run.
 */
export function serveOps(ops) {
  if (typeof process.send !== 'function') {
    console.error('this is a benchmark worker: start it through bench/run.mjs')
    process.exit(2)
  }
  const builtins = {
    gc: async () => {
      await fullGc()
      return { rss: process.memoryUsage().rss }
    },
    rss: async ({ gc = false } = {}) => {
      if (gc) await fullGc()
      return { rss: process.memoryUsage().rss }
    },
    cpu: async () => ({ cpuMs: cpuMs(), at: monoMs() }),
    exit: async () => {
      setImmediate(() => process.exit(0))
      return {}
    },
  }
  const table = { ...builtins, ...ops }
  process.on('message', async (msg) => {
    if (msg === null || typeof msg !== 'object' || typeof msg.id !== 'number') return
    const fn = table[msg.op]
    try {
      if (typeof fn !== 'function') throw new Error(`unknown op ${JSON.stringify(msg.op)}`)
      const result = await fn(msg.args ?? {})
      process.send({ id: msg.id, ok: true, result: result ?? {} })
    } catch (error) {
      process.send({ id: msg.id, ok: false, error: describeError(error) })
    }
  })
  process.on('disconnect', () => process.exit(0))
  const fatal = (error) => {
    try {
      process.send?.({ id: -1, ok: false, error: `uncaught in worker: ${describeError(error)}` })
    } finally {
      setTimeout(() => process.exit(1), 50).unref()
    }
  }
  process.on('uncaughtException', fatal)
  process.on('unhandledRejection', fatal)
  process.send({ id: 0, ok: true, result: { ready: true, pid: process.pid } })
}

// ---------------------------------------------------------------- adapters

/** Implementations a worker can drive; each is bench/lib/impl-<name>.mjs. */
export const IMPLS = ['tls', 'quic', 'udp', 'matrixai']

/** Loads one adapter (dynamically, so a node:tls worker never loads dist/). */
export async function loadImpl(name) {
  if (!IMPLS.includes(name)) throw new Error(`unknown implementation ${JSON.stringify(name)}`)
  return import(new URL(`./impl-${name}.mjs`, import.meta.url).href)
}

/** Resolves when predicate() holds, re-checked whenever notify() is called; rejects after ms. */
export function condition() {
  const waiters = new Set()
  return {
    notify() {
      for (const w of waiters) w.check()
    },
    wait(predicate, ms, what) {
      return new Promise((resolve, reject) => {
        const w = {
          check() {
            let ok
            try {
              ok = predicate()
            } catch (error) {
              ok = error
            }
            if (ok === false) return
            waiters.delete(w)
            clearTimeout(w.timer)
            if (ok instanceof Error) reject(ok)
            else resolve()
          },
        }
        w.timer = setTimeout(() => {
          waiters.delete(w)
          reject(new Error(`timed out after ${ms} ms waiting for ${what}`))
        }, ms)
        waiters.add(w)
        w.check()
      })
    },
  }
}

// Ping-pong on loopback: cribcall-quic against @matrixai/quic (js-quic, the closest
// existing Node QUIC library: quiche driven from the JS main thread), both with pinned
// mutual TLS (P-256 self-signed certificates, SHA-256 fingerprint checks), the same
// 4-byte length framing and 5,000 round trips after a warm-up, in one run.
//
//   npm run build && node bench/vs-js-quic.mjs
import { execFileSync } from 'node:child_process'
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { existsSync, mkdirSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Endpoint, generateIdentity } from '../dist/index.js'

// The peer library is installed on demand (exact version) beside the project, not as a
// dependency: it is only needed here.
const JS_QUIC = '2.0.9'
const cache = fileURLToPath(new URL(`../node_modules/.cache/bench-js-quic-${JS_QUIC}/`, import.meta.url))
const entry = (pkg) => pathToFileURL(`${cache}node_modules/${pkg}/dist/index.js`).href
if (!existsSync(`${cache}node_modules/@matrixai/quic/package.json`)) {
  mkdirSync(cache, { recursive: true })
  console.log(`installing @matrixai/quic@${JS_QUIC} into ${cache}`)
  execFileSync('npm', ['install', '--prefix', cache, '--no-save', '--no-audit', '--no-fund', `@matrixai/quic@${JS_QUIC}`], { stdio: 'inherit' })
}
const jsquic = await import(entry('@matrixai/quic'))
const { default: Logger, LogLevel } = await import(entry('@matrixai/logger'))

const N = 5000
const WARMUP = 500
const HOST = '127.0.0.1'
const FRAME = Buffer.concat([Buffer.from([0, 0, 0, 31]), Buffer.from('{"timestamp":123,"type":"PING"}')])
const sha = (d) => createHash('sha256').update(d).digest('hex')

function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b)
  return { median: s[Math.floor(s.length / 2)], p99: s[Math.floor(s.length * 0.99)], perSec: N / (samples.reduce((a, b) => a + b, 0) / 1e6) }
}

async function cribcall(s, c) {
  const server = await Endpoint.bind({ host: HOST, port: 0, identity: s })
  server.listen({ acceptUnknown: false })
  server.setKnownPeers([c.fingerprint])
  server.on('connection', (conn) => conn.on('frame', (p) => conn.send(p)))
  const client = await Endpoint.bind({ host: HOST, port: 0, identity: c })
  const conn = await client.connect({ host: HOST, port: server.address.port, serverFingerprint: s.fingerprint })
  let wake = null
  conn.on('frame', () => wake?.())
  const payload = FRAME.subarray(4)
  const samples = []
  for (let i = 0; i < WARMUP + N; i++) {
    const t0 = performance.now()
    await new Promise((r) => {
      wake = r
      conn.send(payload)
    })
    if (i >= WARMUP) samples.push((performance.now() - t0) * 1000)
  }
  await client.close()
  await server.close()
  return summarize(samples)
}

async function jsQuic(s, c) {
  const logger = new Logger('bench', LogLevel.WARN)
  const key = randomBytes(32)
  const hmac = (k, d) => createHmac('sha256', Buffer.from(k)).update(Buffer.from(d)).digest()
  const server = new jsquic.QUICServer({
    logger,
    crypto: {
      key: key.buffer.slice(key.byteOffset, key.byteOffset + 32),
      ops: {
        sign: async (k, d) => { const h = hmac(k, d); return h.buffer.slice(h.byteOffset, h.byteOffset + h.length) },
        verify: async (k, d, sig) => { const h = hmac(k, d); return h.length === sig.byteLength && timingSafeEqual(h, Buffer.from(sig)) },
      },
    },
    config: { key: s.keyPem, cert: s.certPem, verifyPeer: true, verifyCallback: async (certs) => (sha(certs[0]) === c.fingerprint ? undefined : 42) },
  })
  server.addEventListener(jsquic.events.EventQUICServerConnection.name, (e) => {
    e.detail.addEventListener(jsquic.events.EventQUICConnectionStream.name, async (se) => {
      const w = se.detail.writable.getWriter()
      try {
        for await (const chunk of se.detail.readable) await w.write(chunk)
      } catch {
        // torn down at the end
      }
    })
  })
  await server.start({ host: HOST, port: 0 })
  const client = await jsquic.QUICClient.createQUICClient({
    logger,
    host: HOST,
    port: server.port,
    localHost: HOST,
    crypto: { ops: { randomBytes: async (data) => void randomBytes(data.byteLength).copy(Buffer.from(data)) } },
    config: { key: c.keyPem, cert: c.certPem, verifyPeer: true, verifyCallback: async (certs) => (sha(certs[0]) === s.fingerprint ? undefined : 42) },
  })
  const stream = client.connection.newStream()
  const w = stream.writable.getWriter()
  const r = stream.readable.getReader()
  const samples = []
  for (let i = 0; i < WARMUP + N; i++) {
    const t0 = performance.now()
    await w.write(FRAME)
    let got = 0
    while (got < FRAME.length) got += (await r.read()).value.length
    if (i >= WARMUP) samples.push((performance.now() - t0) * 1000)
  }
  process.on('uncaughtException', () => undefined) // js-quic throws from teardown timers
  await client.destroy({ force: true }).catch(() => undefined)
  await server.stop({ force: true }).catch(() => undefined)
  return summarize(samples)
}

const s = generateIdentity()
const c = generateIdentity()
const a = await cribcall(s, c)
const b = await jsQuic(s, c)
const row = (name, x) => `${name.padEnd(26)} ${x.median.toFixed(1).padStart(10)} µs ${x.p99.toFixed(1).padStart(10)} µs ${Math.round(x.perSec).toLocaleString('en-US').padStart(12)}/s`
console.log(`Loopback ping-pong, ${N} round trips of a 35-byte frame, pinned mutual TLS both sides`)
console.log('transport                   median RTT       p99 RTT   round trips')
console.log(row('cribcall-quic', a))
console.log(row('@matrixai/quic 2.0.9', b))
console.log(`ratio cribcall / js-quic   ${(a.median / b.median).toFixed(2).padStart(12)}× ${(a.p99 / b.p99).toFixed(2).padStart(12)}× ${(a.perSec / b.perSec).toFixed(2).padStart(14)}×`)
process.exit(0)

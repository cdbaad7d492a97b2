// Loopback benchmark: cribcall-quic (QUIC + pinned mutual TLS, native quiche core)
// against Node's own tls module over TCP with the same pinning (mutual, SHA-256 of the
// peer certificate DER) and the same 4-byte big-endian length framing.
//
//   npm run bench            (builds first)
//   node bench/pingpong.mjs  (uses the existing dist/)
//
// Modes: ping-pong (send one ~33-byte frame, wait for its echo, repeat) and one-way
// streaming (send all frames back to back, until the receiver has counted them all).
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import tls from 'node:tls'

import { Endpoint, generateIdentity } from '../dist/index.js'

const FRAMES = 5000
const WARMUP_ROUND_TRIPS = 500
const WARMUP_ONE_WAY = 1000
const HOST = '127.0.0.1'
const MAX_PAYLOAD = 65536

const payloadFor = (i) => Buffer.from(JSON.stringify({ type: 'PING', timestamp: i % 1000 }).padEnd(33, ' '))
const sha256 = (der) => createHash('sha256').update(der).digest('hex')

// ---------------------------------------------------------------- helpers

/** A resolver that the single 'frame' listener completes: one pending wait at a time. */
function frameWaiter() {
  let resolve = null
  return {
    next: () => new Promise((r) => (resolve = r)),
    deliver: (payload) => {
      const r = resolve
      resolve = null
      r?.(payload)
    },
  }
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

async function pingPong(send, waiter, n) {
  const samples = new Float64Array(n)
  const start = performance.now()
  for (let i = 0; i < n; i++) {
    const reply = waiter.next()
    const t0 = performance.now()
    send(payloadFor(i))
    await reply
    samples[i] = (performance.now() - t0) * 1000
  }
  const totalMs = performance.now() - start
  const sorted = Array.from(samples).sort((a, b) => a - b)
  return { medianUs: percentile(sorted, 0.5), p99Us: percentile(sorted, 0.99), perSecond: (n / totalMs) * 1000 }
}

async function oneWay(send, counter, n) {
  const done = counter.expect(n)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) send(payloadFor(i))
  await done
  const ms = performance.now() - t0
  return { perSecond: (n / ms) * 1000 }
}

/** Counts received frames; expect(n) resolves once n more have arrived. */
function frameCounter() {
  let target = 0
  let count = 0
  let resolve = null
  return {
    expect(n) {
      target = count + n
      return new Promise((r) => (resolve = r))
    },
    deliver() {
      count++
      if (resolve && count >= target) {
        const r = resolve
        resolve = null
        r()
      }
    },
  }
}

// ---------------------------------------------------------------- cribcall-quic

async function benchQuic(serverId, clientId) {
  const server = await Endpoint.bind({ host: HOST, port: 0, identity: serverId })
  const client = await Endpoint.bind({ host: HOST, port: 0, identity: clientId })
  server.setKnownPeers([clientId.fingerprint])
  server.listen({ acceptUnknown: false })

  let mode = 'echo'
  const counter = frameCounter()
  server.on('connection', (conn) => {
    conn.on('frame', (payload) => {
      if (mode === 'echo') conn.send(payload)
      else counter.deliver()
    })
  })
  const conn = await client.connect({ host: HOST, port: server.address.port, serverFingerprint: serverId.fingerprint })
  const waiter = frameWaiter()
  conn.on('frame', waiter.deliver)
  const send = (payload) => conn.send(payload)

  await pingPong(send, waiter, WARMUP_ROUND_TRIPS)
  const pp = await pingPong(send, waiter, FRAMES)
  mode = 'count'
  await oneWay(send, counter, WARMUP_ONE_WAY)
  const ow = await oneWay(send, counter, FRAMES)

  await conn.close()
  await Promise.all([client.close(), server.close()])
  return { pp, ow }
}

// ---------------------------------------------------------------- node:tls over TCP

function encodeFrame(payload) {
  const out = Buffer.allocUnsafe(4 + payload.length)
  out.writeUInt32BE(payload.length, 0)
  payload.copy(out, 4)
  return out
}

/** Parses the 4-byte big-endian length framing by hand. */
function frameParser(onFrame) {
  let pending = null
  return (chunk) => {
    let buf = pending === null ? chunk : Buffer.concat([pending, chunk])
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0)
      if (len === 0 || len > MAX_PAYLOAD) throw new Error(`bad frame length ${len}`)
      if (buf.length < 4 + len) break
      onFrame(buf.subarray(4, 4 + len))
      buf = buf.subarray(4 + len)
    }
    pending = buf.length > 0 ? buf : null
  }
}

async function benchTls(serverId, clientId) {
  let mode = 'echo'
  const counter = frameCounter()
  const server = tls.createServer({
    key: serverId.keyPem,
    cert: serverId.certPem,
    requestCert: true,
    rejectUnauthorized: false, // self-signed: trust comes from the pin below
    minVersion: 'TLSv1.3',
  })
  server.on('secureConnection', (socket) => {
    const peer = socket.getPeerCertificate(true)
    if (!peer?.raw || sha256(peer.raw) !== clientId.fingerprint) {
      socket.destroy(new Error('client certificate pin mismatch'))
      return
    }
    socket.setNoDelay(true)
    socket.on(
      'data',
      frameParser((payload) => {
        if (mode === 'echo') socket.write(encodeFrame(payload))
        else counter.deliver()
      }),
    )
  })
  server.listen(0, HOST)
  await once(server, 'listening')

  const socket = tls.connect({
    host: HOST,
    port: server.address().port,
    key: clientId.keyPem,
    cert: clientId.certPem,
    rejectUnauthorized: false, // self-signed: trust comes from the pin below
    minVersion: 'TLSv1.3',
    checkServerIdentity: () => undefined,
  })
  await once(socket, 'secureConnect')
  const serverCert = socket.getPeerCertificate(true)
  if (!serverCert?.raw || sha256(serverCert.raw) !== serverId.fingerprint) {
    socket.destroy()
    throw new Error('server certificate pin mismatch')
  }
  socket.setNoDelay(true)
  const waiter = frameWaiter()
  socket.on('data', frameParser(waiter.deliver))
  const send = (payload) => socket.write(encodeFrame(payload))

  await pingPong(send, waiter, WARMUP_ROUND_TRIPS)
  const pp = await pingPong(send, waiter, FRAMES)
  mode = 'count'
  await oneWay(send, counter, WARMUP_ONE_WAY)
  const ow = await oneWay(send, counter, FRAMES)

  socket.end()
  await once(socket, 'close')
  await new Promise((resolve) => server.close(resolve))
  return { pp, ow }
}

// ---------------------------------------------------------------- report

const serverId = generateIdentity({ keyType: 'p256' })
const clientId = generateIdentity({ keyType: 'p256' })

console.log(`Loopback ${HOST}, P-256 identities pinned both ways, ${FRAMES} frames of ${payloadFor(0).length} bytes`)
console.log(`(warm-up: ${WARMUP_ROUND_TRIPS} round trips and ${WARMUP_ONE_WAY} one-way frames per transport)\n`)

const quic = await benchQuic(serverId, clientId)
const tcp = await benchTls(serverId, clientId)

const us = (v) => `${v.toFixed(1)} µs`
const rate = (v) => `${Math.round(v).toLocaleString('en-US')}/s`
const ratio = (a, b) => `${(a / b).toFixed(2)}×`
const row = (cells, widths) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')

const w1 = [26, 12, 12, 16]
console.log('Ping-pong (one frame in flight)')
console.log(row(['transport', 'median RTT', 'p99 RTT', 'round trips'], w1))
console.log(row(['cribcall-quic (QUIC/UDP)', us(quic.pp.medianUs), us(quic.pp.p99Us), rate(quic.pp.perSecond)], w1))
console.log(row(['node:tls (TLS 1.3/TCP)', us(tcp.pp.medianUs), us(tcp.pp.p99Us), rate(tcp.pp.perSecond)], w1))
console.log(
  row(
    [
      'ratio cribcall / tls',
      ratio(quic.pp.medianUs, tcp.pp.medianUs),
      ratio(quic.pp.p99Us, tcp.pp.p99Us),
      ratio(quic.pp.perSecond, tcp.pp.perSecond),
    ],
    w1,
  ),
)
console.log('')
const w2 = [26, 16]
console.log(`One-way streaming (${FRAMES} frames back to back)`)
console.log(row(['transport', 'frames'], w2))
console.log(row(['cribcall-quic (QUIC/UDP)', rate(quic.ow.perSecond)], w2))
console.log(row(['node:tls (TLS 1.3/TCP)', rate(tcp.ow.perSecond)], w2))
console.log(row(['ratio cribcall / tls', ratio(quic.ow.perSecond, tcp.ow.perSecond)], w2))
console.log('\n(RTT: lower is better; frames/s and round trips/s: higher is better)')

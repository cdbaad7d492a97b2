// Control-channel benchmark on loopback: NOISE_EVENT fan-out to 100 listeners and the
// application-level PING round trip, cribcall-quic (ControlChannel over QUIC) against
// Node's tls doing the same work (pinned mutual TLS, the same length framing, the same
// canonical JSON out and JSON parsing in).
//
//   npm run build && node bench/fanout.mjs
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import tls from 'node:tls'

import { ControlChannel, Endpoint, canonicalBytes, generateIdentity, parseStrictJson } from '../dist/index.js'

const HOST = '127.0.0.1'
const LISTENERS = 100
const EVENTS = 1000
const PINGS = 2000
const MONITOR_ID = '6f9619ff-8b86-4011-b42d-00c04fc964ff'
const sha256 = (der) => createHash('sha256').update(der).digest('hex')

function noise(i) {
  return { type: 'NOISE_EVENT', monitorId: MONITOR_ID, timestamp: 1_700_000_000_000 + i, peakLevel: i % 101 }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

// ---------------------------------------------------------------- cribcall-quic

async function cribcall() {
  const monitorId = generateIdentity()
  const monitor = await Endpoint.bind({ host: HOST, port: 0, identity: monitorId })
  const ids = Array.from({ length: 10 }, () => generateIdentity())
  monitor.setKnownPeers(ids.map((i) => i.fingerprint))
  monitor.listen({ acceptUnknown: false })
  const serverChannels = []
  monitor.on('connection', (conn) => serverChannels.push(ControlChannel.accept(conn)))
  const endpoints = await Promise.all(ids.map((identity) => Endpoint.bind({ host: HOST, port: 0, identity })))
  const channels = []
  for (let i = 0; i < LISTENERS; i++) {
    channels.push(
      await ControlChannel.connect(endpoints[i % endpoints.length], {
        host: HOST,
        port: monitor.address.port,
        serverFingerprint: monitorId.fingerprint,
      }),
    )
  }
  while (serverChannels.length < LISTENERS) await new Promise((r) => setTimeout(r, 5))

  // Fan-out: 1,000 NOISE_EVENTs to 100 listeners, counted and checked in order.
  let received = 0
  let resolveAll
  const all = new Promise((r) => (resolveAll = r))
  for (const ch of channels) {
    let next = 0
    ch.on('noise', (ev) => {
      if (ev.timestamp !== 1_700_000_000_000 + next) throw new Error('out of order')
      next++
      if (++received === LISTENERS * EVENTS) resolveAll()
    })
  }
  const t0 = performance.now()
  for (let i = 0; i < EVENTS; i++) ControlChannel.broadcast(noise(i), serverChannels)
  await all
  const fanoutMs = performance.now() - t0

  // PING round trips (PONG answered automatically by the monitor's channel).
  const rtts = []
  for (let i = 0; i < PINGS; i++) rtts.push(await channels[0].ping())
  await Promise.all(endpoints.map((e) => e.close()))
  await monitor.close()
  return { eventsPerSec: (LISTENERS * EVENTS) / (fanoutMs / 1000), fanoutMs, pingMedianUs: median(rtts) * 1000 }
}

// ---------------------------------------------------------------- node:tls

function encodeFrame(payload) {
  const b = Buffer.allocUnsafe(4 + payload.length)
  b.writeUInt32BE(payload.length, 0)
  Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).copy(b, 4)
  return b
}

function frameParser(onFrame) {
  let pending = null
  return (chunk) => {
    let buf = pending === null ? chunk : Buffer.concat([pending, chunk])
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0)
      if (buf.length < 4 + len) break
      onFrame(buf.subarray(4, 4 + len))
      buf = buf.subarray(4 + len)
    }
    pending = buf.length > 0 ? buf : null
  }
}

async function nodeTls() {
  const monitorId = generateIdentity()
  const ids = Array.from({ length: 10 }, () => generateIdentity())
  const known = new Set(ids.map((i) => i.fingerprint))
  const sockets = []
  const server = tls.createServer({ key: monitorId.keyPem, cert: monitorId.certPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' })
  server.on('secureConnection', (socket) => {
    const peer = socket.getPeerCertificate(true)
    if (!peer?.raw || !known.has(sha256(peer.raw))) return socket.destroy()
    socket.setNoDelay(true)
    sockets.push(socket)
    socket.on(
      'data',
      frameParser((payload) => {
        const m = parseStrictJson(payload)
        if (m.type === 'PING') socket.write(encodeFrame(canonicalBytes({ type: 'PONG', timestamp: m.timestamp })))
      }),
    )
  })
  server.listen(0, HOST)
  await once(server, 'listening')
  const clients = []
  for (let i = 0; i < LISTENERS; i++) {
    const id = ids[i % ids.length]
    const s = tls.connect({ host: HOST, port: server.address().port, key: id.keyPem, cert: id.certPem, rejectUnauthorized: false, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined })
    await once(s, 'secureConnect')
    if (sha256(s.getPeerCertificate(true).raw) !== monitorId.fingerprint) throw new Error('pin mismatch')
    s.setNoDelay(true)
    clients.push(s)
  }
  while (sockets.length < LISTENERS) await new Promise((r) => setTimeout(r, 5))

  let received = 0
  let resolveAll
  const all = new Promise((r) => (resolveAll = r))
  let pong = null
  for (const s of clients) {
    let next = 0
    s.on(
      'data',
      frameParser((payload) => {
        const m = parseStrictJson(payload)
        if (m.type === 'PONG') return pong?.()
        if (m.timestamp !== 1_700_000_000_000 + next) throw new Error('out of order')
        next++
        if (++received === LISTENERS * EVENTS) resolveAll()
      }),
    )
  }
  const t0 = performance.now()
  for (let i = 0; i < EVENTS; i++) {
    const frame = encodeFrame(canonicalBytes(noise(i))) // serialized once, like broadcast
    for (const s of sockets) s.write(frame)
  }
  await all
  const fanoutMs = performance.now() - t0

  const rtts = []
  for (let i = 0; i < PINGS; i++) {
    const t = performance.now()
    await new Promise((r) => {
      pong = r
      clients[0].write(encodeFrame(canonicalBytes({ type: 'PING', timestamp: i })))
    })
    rtts.push(performance.now() - t)
  }
  for (const s of clients) s.destroy()
  for (const s of sockets) s.destroy()
  server.close()
  return { eventsPerSec: (LISTENERS * EVENTS) / (fanoutMs / 1000), fanoutMs, pingMedianUs: median(rtts) * 1000 }
}

const q = await cribcall()
const t = await nodeTls()
const fmt = (n) => Math.round(n).toLocaleString('en-US')
console.log(`Loopback ${HOST}: ${LISTENERS} listeners × ${EVENTS} NOISE_EVENTs (broadcast), then ${PINGS} application PINGs`)
console.log('transport                        fan-out events/s   fan-out ms   PING median RTT')
console.log(`cribcall-quic (ControlChannel)   ${fmt(q.eventsPerSec).padStart(16)}   ${q.fanoutMs.toFixed(0).padStart(10)}   ${q.pingMedianUs.toFixed(1).padStart(12)} µs`)
console.log(`node:tls (same work)             ${fmt(t.eventsPerSec).padStart(16)}   ${t.fanoutMs.toFixed(0).padStart(10)}   ${t.pingMedianUs.toFixed(1).padStart(12)} µs`)
console.log(`ratio cribcall / tls             ${(q.eventsPerSec / t.eventsPerSec).toFixed(2).padStart(15)}×   ${''.padStart(10)}   ${(q.pingMedianUs / t.pingMedianUs).toFixed(2).padStart(14)}×`)

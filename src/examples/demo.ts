/**
 * cribcall-quic demo: a monitor (QUIC server, P-256 identity) and a listener (QUIC
 * client, Ed25519 identity) on loopback. The listener pins the monitor's certificate
 * fingerprint, they exchange the protocol brief's PING frame, measure round-trip
 * time, and a connection with a wrong pin is refused. Exits by itself.
 *
 * Run: npm run demo   (builds, then runs node dist/examples/demo.js)
 */
import { performance } from 'node:perf_hooks'

import { Endpoint, PinMismatchError, generateIdentity, type Connection } from '../index.js'

const ROUND_TRIPS = 200
const WARMUP = 20

function step(text: string): void {
  console.log(`• ${text}`)
}

function nextFrame(conn: Connection): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onFrame = (payload: Buffer): void => {
      conn.off('close', onClose)
      resolve(payload)
    }
    const onClose = (): void => {
      conn.off('frame', onFrame)
      reject(new Error('connection closed while waiting for a frame'))
    }
    conn.once('frame', onFrame)
    conn.once('close', onClose)
  })
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex').replace(/(..)(?!$)/g, '$1 ')
}

function formatMicros(us: number): string {
  return us >= 1000 ? `${(us / 1000).toFixed(3)} ms` : `${us.toFixed(1)} µs`
}

async function main(): Promise<void> {
  const monitorId = generateIdentity({ keyType: 'p256' })
  const listenerId = generateIdentity({ keyType: 'ed25519' })
  step(`monitor identity  (P-256)   deviceId ${monitorId.deviceId}`)
  console.log(`    fingerprint ${monitorId.fingerprint}`)
  step(`listener identity (Ed25519) deviceId ${listenerId.deviceId}`)
  console.log(`    fingerprint ${listenerId.fingerprint}`)

  const monitor = await Endpoint.bind({ host: '127.0.0.1', port: 0, identity: monitorId })
  const listener = await Endpoint.bind({ host: '127.0.0.1', port: 0, identity: listenerId })
  step(`monitor bound on ${monitor.address.host}:${monitor.address.port}, listener on ${listener.address.host}:${listener.address.port}`)

  monitor.listen({ acceptUnknown: true })
  step('monitor listening (unknown clients admitted: pairing possible)')

  monitor.on('connection', (conn) => {
    step(
      `monitor: connection from ${conn.remoteAddress.host}:${conn.remoteAddress.port}, ` +
        `client fingerprint ${conn.peerFingerprint}, peerKnown=${conn.peerKnown}`,
    )
    // Echo every frame back.
    conn.on('frame', (payload) => {
      conn.send(payload)
    })
  })

  const conn = await listener.connect({
    host: '127.0.0.1',
    port: monitor.address.port,
    serverFingerprint: monitorId.fingerprint,
  })
  step(`listener: connection established, server fingerprint ${conn.peerFingerprint} (pinned), peerKnown=${conn.peerKnown}`)

  const ping = Buffer.from('{"type":"PING","timestamp":123}', 'utf8')
  const header = Buffer.alloc(4)
  header.writeUInt32BE(ping.length)
  step(`listener → monitor: ${ping.toString('utf8')} (${ping.length} bytes)`)
  console.log(`    on the wire: ${hex(Buffer.concat([header, ping]))}`)
  const echoed = nextFrame(conn)
  conn.send(ping)
  const echo = await echoed
  step(`monitor → listener (echo): ${echo.toString('utf8')} — ${echo.equals(ping) ? 'byte-exact' : 'DIFFERENT'}`)

  const samples: number[] = []
  for (let i = 0; i < WARMUP + ROUND_TRIPS; i++) {
    const payload = Buffer.from(JSON.stringify({ type: 'PING', timestamp: i }))
    const reply = nextFrame(conn)
    const t0 = performance.now()
    conn.send(payload)
    await reply
    if (i >= WARMUP) samples.push((performance.now() - t0) * 1000)
  }
  samples.sort((a, b) => a - b)
  const median = samples[Math.floor(samples.length / 2)] ?? 0
  const p99 = samples[Math.min(samples.length - 1, Math.floor(samples.length * 0.99))] ?? 0
  step(`round-trip time over ${ROUND_TRIPS} frames: median ${formatMicros(median)}, p99 ${formatMicros(p99)}`)

  // A listener that pins the wrong fingerprint never talks to the monitor.
  const wrongPin = listenerId.fingerprint
  try {
    const impostor = await listener.connect({ host: '127.0.0.1', port: monitor.address.port, serverFingerprint: wrongPin })
    await impostor.close()
    throw new Error('connection with a wrong pin was established')
  } catch (error) {
    if (!(error instanceof PinMismatchError)) throw error
    step(`wrong pin refused: ${error.code}`)
    console.log(`    expected ${error.expected}`)
    console.log(`    actual   ${error.actual}`)
  }

  const info = await conn.close(0, 'demo done')
  step(`connection closed (code ${info.code}, reason '${info.reason}')`)
  await Promise.all([listener.close(), monitor.close()])
  step('endpoints closed; the process exits by itself')
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})

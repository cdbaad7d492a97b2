'use strict'
// CommonJS consumer of the packed cribcall-quic tarball (run by scripts/pack-check.mjs in
// a fresh project with no Rust toolchain on PATH). The package is ESM; this synchronous
// require() goes through the "require" export condition and Node's require(esm)
// (Node ^20.19.0 || >=22.12.0, the package's engines range).
const cribcall = require('cribcall-quic')
const { Monitor, Listener, MemoryTrustStore, generateIdentity } = cribcall

async function main() {
  if (typeof Monitor !== 'function' || typeof generateIdentity !== 'function') {
    throw new Error(`require('cribcall-quic') did not return the module namespace: ${Object.keys(cribcall).slice(0, 10)}`)
  }
  if (require('cribcall-quic/transport').Endpoint !== cribcall.Endpoint) {
    throw new Error("require('cribcall-quic/transport') is not the transport layer of cribcall-quic")
  }
  const monitor = await Monitor.start({
    identity: generateIdentity(),
    trustStore: new MemoryTrustStore(),
    host: '127.0.0.1',
    port: 0,
    name: 'Nursery',
  })
  monitor.openPairing({ durationMs: 60_000 })
  const listener = new Listener({
    identity: generateIdentity({ keyType: 'ed25519' }),
    trustStore: new MemoryTrustStore(),
    name: 'Phone',
  })
  const entry = await listener.pairWithQr(monitor.pairingQrPayload(), { host: '127.0.0.1', port: monitor.address.port })
  const connected = new Promise((resolve) => monitor.once('listener-connected', resolve))
  const channel = await listener.connect(entry.deviceId)
  await connected
  const noise = new Promise((resolve) => channel.once('noise', resolve))
  monitor.broadcastNoise({ peakLevel: 42 })
  const ev = await noise
  await listener.close()
  await monitor.close()

  if (ev.type !== 'NOISE_EVENT' || ev.peakLevel !== 42) {
    throw new Error(`unexpected noise event: ${JSON.stringify(ev)}`)
  }
  console.log(`consumer.cjs: ok — paired by QR, received ${ev.type} peakLevel=${ev.peakLevel} (node ${process.version})`)
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

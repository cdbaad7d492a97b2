// ESM consumer of the packed cribcall-quic tarball (run by scripts/pack-check.mjs in a
// fresh project with no Rust toolchain on PATH): pairs a monitor and a listener by QR
// and receives one NOISE_EVENT over the control channel.
import { Monitor, Listener, MemoryTrustStore, generateIdentity, Endpoint } from 'cribcall-quic'
import * as transport from 'cribcall-quic/transport'

// The transport subpath exports the very same classes as the root (one shared chunk).
if (transport.Endpoint !== Endpoint || typeof transport.generateIdentity !== 'function' || 'Monitor' in transport) {
  throw new Error('cribcall-quic/transport is not the transport layer of cribcall-quic')
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
console.log(`consumer.mjs: ok — paired by QR, received ${ev.type} peakLevel=${ev.peakLevel} (node ${process.version})`)

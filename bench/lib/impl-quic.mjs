// Benchmark adapter for cribcall-quic at the transport level: one `Endpoint` per process
// (server: listen() with the clients' fingerprints as known peers, acceptUnknown off;
// client: connect() pinning the server fingerprint), frames through `Connection`.
//
// Every adapter (impl-*.mjs) exports the same two factories, used by bench/workers/*:
//   createServer({ identity, peers, options }) -> { port, onConnection(fn), serialize(obj),
//     broadcaster(conns) -> (payload) => void, close() }
//   createClient({ identity, options }) -> { connect({ port, serverFingerprint, timeoutMs }), close() }
// and connections shaped { send(p), write(p) -> undefined | Promise (backpressure),
//   onFrame(fn), onClose(fn), close() -> Promise }.
import { Endpoint, canonicalBytes } from '../../dist/index.js'
import { HOST } from './common.mjs'

export const label = 'cribcall-quic'

/** Endpoint options the workers may pass through (names as in src/transport/endpoint.ts). */
const OPTION_NAMES = ['maxConnections', 'maxHalfOpen', 'retryThreshold', 'keepAliveMs', 'idleTimeoutMs', 'handshakeTimeoutMs', 'maxSendBuffer']

function endpointOptions(identity, options = {}) {
  const out = { host: HOST, port: 0, identity: { certPem: identity.certPem, keyPem: identity.keyPem } }
  for (const name of OPTION_NAMES) if (options[name] !== undefined) out[name] = options[name]
  return out
}

/** Waits for 'drain' (or rejects when the connection closes first). */
function drained(conn) {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      conn.off('close', onClose)
      resolve()
    }
    const onClose = () => {
      conn.off('drain', onDrain)
      reject(new Error(`connection ${conn.connId} closed while waiting for 'drain'`))
    }
    conn.once('drain', onDrain)
    conn.once('close', onClose)
  })
}

function wrap(conn) {
  let handler = null
  return {
    raw: conn,
    send: (payload) => conn.send(payload),
    /**
     * send() while the native queue has room; when it is full (SendBufferFullError), the
     * library's write() waits for 'drain' and queues the frame. A send() that reports
     * backpressure by returning false (a possible future API) waits for 'drain' too.
     */
    write(payload) {
      let queued
      try {
        queued = conn.send(payload)
      } catch (error) {
        if (error?.code === 'ERR_SEND_BUFFER_FULL') return conn.write(payload)
        throw error
      }
      return queued === false ? drained(conn) : undefined
    },
    /** Sets the frame handler (replacing the previous one); frames wait in the library until then. */
    onFrame(fn) {
      if (handler !== null) conn.off('frame', handler)
      handler = fn
      conn.on('frame', fn)
    },
    onClose: (fn) => conn.on('close', fn),
    close: () => conn.close(),
    get closed() {
      return conn.isClosed
    },
  }
}

export async function createServer({ identity, peers, options }) {
  const endpoint = await Endpoint.bind(endpointOptions(identity, options))
  const errors = []
  endpoint.on('error', (error) => errors.push(String(error?.message ?? error)))
  endpoint.setKnownPeers(peers)
  endpoint.listen({ acceptUnknown: false })
  let onConnection = () => undefined
  endpoint.on('connection', (conn) => {
    conn.on('error', (error) => errors.push(String(error?.message ?? error)))
    onConnection(wrap(conn))
  })
  return {
    port: endpoint.address.port,
    errors,
    onConnection: (fn) => (onConnection = fn),
    /** Canonical JSON (RFC 8785), as the library's monitor serialises a NOISE_EVENT. */
    serialize: (obj) => canonicalBytes(obj),
    /** One native crossing per payload for all listeners: Endpoint.broadcast. */
    broadcaster(conns) {
      const raw = conns.map((c) => c.raw)
      return (payload) => endpoint.broadcast(raw, payload)
    },
    close: () => endpoint.close(),
  }
}

export async function createClient({ identity, options }) {
  const endpoint = await Endpoint.bind(endpointOptions(identity, options))
  const errors = []
  endpoint.on('error', (error) => errors.push(String(error?.message ?? error)))
  return {
    errors,
    async connect({ port, serverFingerprint, timeoutMs }) {
      const conn = await endpoint.connect({ host: HOST, port, serverFingerprint, timeoutMs })
      conn.on('error', (error) => errors.push(String(error?.message ?? error)))
      return wrap(conn)
    },
    close: async () => {
      await endpoint.close()
    },
  }
}

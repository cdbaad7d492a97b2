// Benchmark adapter for Node's own `tls`: TLS 1.3 over TCP with mutual TLS and the same
// pinning as cribcall-quic — the server requests the client certificate and admits only
// the known fingerprints (SHA-256 of the DER), the client checks the server certificate
// against its pin on 'secureConnect' before the connection counts as ready — and the same
// 4-byte big-endian length-prefixed framing. Nagle is off on every socket.
//
// Same interface as bench/lib/impl-quic.mjs (see its header). It does not import dist/.
import tls from 'node:tls'

import { HOST, encodeFrame, frameParser, pinnedPeer, sortedJson, tlsClientOptions, tlsServerOptions } from './common.mjs'

export const label = 'node:tls'

/** Frames above this size are written as header + payload (corked) instead of copied into one buffer. */
const COPY_LIMIT = 4096

function wrap(socket) {
  let closed = false
  let handler = null
  socket.once('close', () => (closed = true))
  const drained = () =>
    new Promise((resolve, reject) => {
      const onDrain = () => {
        socket.off('close', onClose)
        resolve()
      }
      const onClose = () => {
        socket.off('drain', onDrain)
        reject(new Error('socket closed while waiting for drain'))
      }
      socket.once('drain', onDrain)
      socket.once('close', onClose)
    })
  return {
    raw: socket,
    send: (payload) => socket.write(encodeFrame(payload)),
    /** socket.write()'s return value is the backpressure signal; false waits for 'drain'. */
    write(payload) {
      let ok
      if (payload.length <= COPY_LIMIT) {
        ok = socket.write(encodeFrame(payload))
      } else {
        const header = Buffer.allocUnsafe(4)
        header.writeUInt32BE(payload.length, 0)
        socket.cork()
        socket.write(header)
        ok = socket.write(payload)
        socket.uncork()
      }
      return ok ? undefined : drained()
    },
    /**
     * Sets the frame handler (replacing the previous one). The parser is attached with
     * the first handler: until then the socket stays paused and keeps its data.
     */
    onFrame(fn) {
      if (handler === null) socket.on('data', frameParser((payload) => handler(payload)))
      handler = fn
    },
    onClose: (fn) => socket.once('close', fn),
    close() {
      if (closed) return Promise.resolve()
      return new Promise((resolve) => {
        socket.once('close', resolve)
        socket.end()
      })
    },
    get closed() {
      return closed
    },
  }
}

export async function createServer({ identity, peers }) {
  const known = new Set(peers)
  const errors = []
  let onConnection = () => undefined
  const server = tls.createServer(tlsServerOptions(identity))
  server.on('secureConnection', (socket) => {
    socket.on('error', (error) => errors.push(String(error?.message ?? error)))
    if (!known.has(pinnedPeer(socket))) {
      socket.destroy()
      errors.push('client certificate pin mismatch')
      return
    }
    socket.setNoDelay(true)
    onConnection(wrap(socket))
  })
  server.on('tlsClientError', (error) => errors.push(String(error?.message ?? error)))
  server.on('error', (error) => errors.push(String(error?.message ?? error)))
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: HOST, port: 0, backlog: 4096 }, resolve)
  })
  const sockets = new Set()
  server.on('secureConnection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  return {
    port: server.address().port,
    errors,
    onConnection: (fn) => (onConnection = fn),
    /** Sorted-key JSON: the same bytes canonical JSON gives for these flat messages. */
    serialize: (obj) => Buffer.from(sortedJson(obj)),
    /** The frame is built once per payload and written to every socket. */
    broadcaster(conns) {
      const raw = conns.map((c) => c.raw)
      return (payload) => {
        const frame = encodeFrame(payload)
        for (const s of raw) s.write(frame)
      }
    },
    close() {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

export async function createClient({ identity }) {
  const errors = []
  const sockets = new Set()
  return {
    errors,
    connect({ port, serverFingerprint, timeoutMs }) {
      return new Promise((resolve, reject) => {
        const socket = tls.connect(tlsClientOptions(identity, port))
        let timer
        const fail = (error) => {
          clearTimeout(timer)
          socket.destroy()
          reject(error)
        }
        if (timeoutMs !== undefined) {
          timer = setTimeout(() => fail(new Error(`no TLS handshake with port ${port} within ${timeoutMs} ms`)), timeoutMs)
        }
        socket.once('error', fail)
        socket.once('secureConnect', () => {
          clearTimeout(timer)
          socket.off('error', fail)
          socket.on('error', (error) => errors.push(String(error?.message ?? error)))
          if (pinnedPeer(socket) !== serverFingerprint) return fail(new Error('server certificate pin mismatch'))
          socket.setNoDelay(true)
          sockets.add(socket)
          socket.once('close', () => sockets.delete(socket))
          resolve(wrap(socket))
        })
      })
    },
    async close() {
      for (const s of sockets) s.destroy()
    },
  }
}

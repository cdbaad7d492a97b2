// Benchmark adapter for @matrixai/quic (js-quic: quiche driven from the JS main thread),
// the optional third implementation (--with-matrixai; installed on demand by
// bench/lib/matrixai-install.mjs). Pinned mutual TLS both ways through verifyCallback
// (SHA-256 of the peer's leaf certificate DER), one bidirectional stream per
// connection opened by the client, the same 4-byte length framing. One QUICClient per
// connection (its API has no shared client endpoint). Backpressure: the WHATWG writer's
// desiredSize / ready.
//
// Same interface as bench/lib/impl-quic.mjs (see its header).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

import { HOST, encodeFrame, frameParser, sha256Hex, sortedJson } from './common.mjs'
import { matrixaiEntry } from './matrixai-install.mjs'

export const label = '@matrixai/quic'

const quic = await import(matrixaiEntry('@matrixai/quic'))
const { default: Logger, LogLevel } = await import(matrixaiEntry('@matrixai/logger'))
const logger = new Logger('bench', LogLevel.ERROR)

const REJECT = 42 // a CryptoError code: any non-undefined return refuses the peer
const pinTo = (allowed) => async (certs) => (certs.length > 0 && allowed.has(sha256Hex(Buffer.from(certs[0]))) ? undefined : REJECT)

function wrap(stream, destroy) {
  const writer = stream.writable.getWriter()
  let handler = null
  let closed = false
  const closeFns = []
  const end = () => {
    if (closed) return
    closed = true
    for (const fn of closeFns) fn()
  }
  const parse = frameParser((payload) => handler?.(payload))
  const pump = async () => {
    try {
      for await (const chunk of stream.readable) parse(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
    } catch {
      // stream reset or connection torn down
    }
    end()
  }
  const ignore = () => undefined
  return {
    send(payload) {
      writer.write(encodeFrame(payload)).catch(ignore)
    },
    write(payload) {
      writer.write(encodeFrame(payload)).catch(ignore)
      return writer.desiredSize !== null && writer.desiredSize <= 0 ? writer.ready : undefined
    },
    onFrame(fn) {
      if (handler === null) void pump()
      handler = fn
    },
    onClose: (fn) => closeFns.push(fn),
    close: async () => {
      await writer.close().catch(ignore)
      await destroy?.()
      end()
    },
    get closed() {
      return closed
    },
  }
}

export async function createServer({ identity, peers }) {
  const key = randomBytes(32)
  const hmac = (k, d) => createHmac('sha256', Buffer.from(k)).update(Buffer.from(d)).digest()
  const server = new quic.QUICServer({
    logger,
    crypto: {
      key: key.buffer.slice(key.byteOffset, key.byteOffset + 32),
      ops: {
        sign: async (k, d) => {
          const h = hmac(k, d)
          return h.buffer.slice(h.byteOffset, h.byteOffset + h.length)
        },
        verify: async (k, d, sig) => {
          const h = hmac(k, d)
          return h.length === sig.byteLength && timingSafeEqual(h, Buffer.from(sig))
        },
      },
    },
    config: { key: identity.keyPem, cert: identity.certPem, verifyPeer: true, verifyCallback: pinTo(new Set(peers)) },
  })
  let onConnection = () => undefined
  // A connection becomes visible with its client's first stream (the first frame sent).
  server.addEventListener(quic.events.EventQUICServerConnection.name, (e) => {
    e.detail.addEventListener(quic.events.EventQUICConnectionStream.name, (se) => onConnection(wrap(se.detail)))
  })
  await server.start({ host: HOST, port: 0 })
  return {
    port: server.port,
    errors: [],
    onConnection: (fn) => (onConnection = fn),
    serialize: (obj) => Buffer.from(sortedJson(obj)),
    broadcaster(conns) {
      return (payload) => {
        for (const c of conns) c.send(payload)
      }
    },
    close: () => server.stop({ force: true }).catch(() => undefined),
  }
}

export async function createClient({ identity }) {
  const clients = new Set()
  return {
    errors: [],
    async connect({ port, serverFingerprint, timeoutMs }) {
      const client = await quic.QUICClient.createQUICClient(
        {
          logger,
          host: HOST,
          port,
          localHost: HOST,
          crypto: { ops: { randomBytes: async (data) => void randomBytes(data.byteLength).copy(Buffer.from(data)) } },
          config: { key: identity.keyPem, cert: identity.certPem, verifyPeer: true, verifyCallback: pinTo(new Set([serverFingerprint])) },
        },
        timeoutMs === undefined ? undefined : { timer: timeoutMs },
      )
      clients.add(client)
      return wrap(client.connection.newStream(), async () => {
        clients.delete(client)
        await client.destroy({ force: true }).catch(() => undefined)
      })
    },
    async close() {
      await Promise.all([...clients].map((c) => c.destroy({ force: true }).catch(() => undefined)))
    },
  }
}

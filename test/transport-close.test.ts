// The QUIC transport over real loopback: aborted and timed-out connects, closing
// connections and endpoints.
import { describe, expect, it } from 'vitest'

import {
  AbortError,
  ConnectionClosedError,
  Endpoint,
  EndpointClosedError,
  HandshakeTimeoutError,
  InvalidArgumentError,
  generateIdentity,
} from '../src/index.js'
import {
  LOOPBACK,
  PING,
  closeEvent,
  closeSocket,
  connectedPair,
  freeUdpPort,
  harnessPerTest,
  nextFrame,
  rejectionOf,
  silentUdpPeer,
} from './helpers.js'

const h = harnessPerTest()

describe('abort and timeouts', () => {
  it('an AbortSignal aborts a connect to a port where nothing listens', async () => {
    const client = await h.bind(generateIdentity())
    const port = await freeUdpPort()
    const controller = new AbortController()
    const reason = new Error('user gave up')
    setTimeout(() => controller.abort(reason), 100)
    const started = Date.now()
    const error = await rejectionOf(
      client.connect({ host: LOOPBACK, port, serverFingerprint: generateIdentity().fingerprint, signal: controller.signal }),
    )
    const elapsed = Date.now() - started
    expect(error).toBeInstanceOf(AbortError)
    expect((error as AbortError).code).toBe('ABORT_ERR')
    expect((error as AbortError).name).toBe('AbortError')
    expect((error as AbortError).cause).toBe(reason)
    expect(elapsed).toBeGreaterThanOrEqual(90)
    expect(elapsed).toBeLessThan(2000)

    // Already aborted: rejects at once. AbortSignal.timeout's reason is carried as cause.
    const aborted = AbortSignal.abort('stop')
    const early = await rejectionOf(client.connect({ host: LOOPBACK, port, serverFingerprint: 'a'.repeat(64), signal: aborted }))
    expect(early).toBeInstanceOf(AbortError)
    expect((early as AbortError).cause).toBe('stop')
    const timed = AbortSignal.timeout(100)
    const late = await rejectionOf(client.connect({ host: LOOPBACK, port, serverFingerprint: 'b'.repeat(64), signal: timed }))
    expect(late).toBeInstanceOf(AbortError)
    expect((late as AbortError).cause).toBe(timed.reason)

    // The endpoint still works after abandoned attempts.
    const serverId = generateIdentity()
    const server = await h.bind(serverId)
    server.listen({ acceptUnknown: true })
    const conn = await client.connect({ host: LOOPBACK, port: server.address.port, serverFingerprint: serverId.fingerprint })
    expect(conn.peerFingerprint).toBe(serverId.fingerprint)
  })

  it('handshakeTimeoutMs: a silent UDP peer gives HandshakeTimeoutError', async () => {
    const silent = await silentUdpPeer()
    try {
      const client = await h.bind(generateIdentity(), { handshakeTimeoutMs: 300 })
      const started = Date.now()
      const error = await rejectionOf(
        client.connect({ host: LOOPBACK, port: silent.port, serverFingerprint: generateIdentity().fingerprint }),
      )
      const elapsed = Date.now() - started
      expect(error).toBeInstanceOf(HandshakeTimeoutError)
      expect((error as HandshakeTimeoutError).code).toBe('ERR_HANDSHAKE_TIMEOUT')
      expect(elapsed).toBeGreaterThanOrEqual(250)
      expect(elapsed).toBeLessThan(5000)
      expect(silent.received()).toBeGreaterThan(0) // the client did send its Initial
    } finally {
      await closeSocket(silent.socket)
    }
  })

  it('connect timeoutMs: a silent UDP peer gives HandshakeTimeoutError', async () => {
    const silent = await silentUdpPeer()
    try {
      const client = await h.bind(generateIdentity())
      const started = Date.now()
      const error = await rejectionOf(
        client.connect({ host: LOOPBACK, port: silent.port, serverFingerprint: generateIdentity().fingerprint, timeoutMs: 300 }),
      )
      const elapsed = Date.now() - started
      expect(error).toBeInstanceOf(HandshakeTimeoutError)
      expect(elapsed).toBeGreaterThanOrEqual(250)
      expect(elapsed).toBeLessThan(3000)
    } finally {
      await closeSocket(silent.socket)
    }
  })
})

describe('closing', () => {
  it('close(4, "bye") reaches the peer as an application close', async () => {
    const { conn, sconn } = await connectedPair(h)
    // Open the stream so both sides have exchanged data first.
    const got = nextFrame(sconn)
    conn.send(PING)
    await got
    const serverClose = closeEvent(sconn)
    const clientClose = closeEvent(conn)
    const closing = conn.close(4, 'bye')
    expect(() => conn.send(PING)).toThrow(ConnectionClosedError)
    expect(await serverClose).toEqual({ code: 4, reason: 'bye', byPeer: true, application: true })
    const own = await clientClose
    expect(own).toEqual({ code: 4, reason: 'bye', byPeer: false, application: true })
    expect(await closing).toEqual(own)
    expect(await conn.closed).toEqual(own)
    expect(conn.isClosed).toBe(true)
    expect(sconn.isClosed).toBe(true)
    expect(() => conn.send(PING)).toThrow(ConnectionClosedError)
    expect(() => sconn.send(PING)).toThrow(ConnectionClosedError)
    await conn.close(1, 'again') // idempotent
    expect(await conn.closed).toEqual(own)
    expect(() => conn.close(-1)).toThrow(InvalidArgumentError)
  })

  it('closing an endpoint closes its connections, rejects pending connects, and is idempotent', async () => {
    const { client, conn, sconn } = await connectedPair(h)
    const silent = await silentUdpPeer()
    try {
      const pending = client.connect({ host: LOOPBACK, port: silent.port, serverFingerprint: generateIdentity().fingerprint })
      const pendingError = rejectionOf(pending)
      const clientClose = closeEvent(conn)
      const serverClose = closeEvent(sconn)
      const first = client.close()
      const second = client.close()
      expect(second).toBe(first)
      expect(client.isClosed).toBe(true)
      expect(await pendingError).toBeInstanceOf(EndpointClosedError)
      await first
      expect(conn.isClosed).toBe(true)
      expect(await clientClose).toMatchObject({ code: 0, byPeer: false })
      expect(await serverClose).toMatchObject({ code: 0, byPeer: true })
      expect(await rejectionOf(client.connect({ host: LOOPBACK, port: 1, serverFingerprint: 'a'.repeat(64) }))).toBeInstanceOf(
        EndpointClosedError,
      )
      expect(() => client.listen({ acceptUnknown: true })).toThrow(EndpointClosedError)
      expect(() => conn.send(PING)).toThrow(ConnectionClosedError)
      await client[Symbol.asyncDispose]()
    } finally {
      await closeSocket(silent.socket)
    }
  })

  it('an AbortSignal passed to bind closes the endpoint', async () => {
    const controller = new AbortController()
    const endpoint = await h.bind(generateIdentity(), { signal: controller.signal })
    expect(endpoint.address.port).toBeGreaterThan(0)
    controller.abort()
    expect(endpoint.isClosed).toBe(true)
    await endpoint.close()
    expect(await rejectionOf(Endpoint.bind({ host: LOOPBACK, port: 0, identity: generateIdentity(), signal: controller.signal }))).toBeInstanceOf(
      AbortError,
    )
  })
})

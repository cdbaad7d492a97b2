import { spawn } from 'node:child_process'
import { X509Certificate, createHash, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import {
  AbortError,
  ConnectionClosedError,
  CribcallError,
  Endpoint,
  EndpointClosedError,
  FrameTooLargeError,
  HandlerError,
  HandshakeTimeoutError,
  InvalidArgumentError,
  MAX_BUFFERED_FRAMES,
  PeerRejectedError,
  PinMismatchError,
  fingerprintOf,
  generateIdentity,
  type CloseInfo,
  type Connection,
  type KeyType,
} from '../src/index.js'
import {
  Harness,
  LOOPBACK,
  PING,
  closeSocket,
  connectedPair,
  freeUdpPort,
  nextFrame,
  rejectionOf,
  silentUdpPeer,
  sleep,
  waitUntil,
  withTimeout,
} from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))

let h: Harness
beforeEach(() => {
  h = new Harness()
})
afterEach(async () => {
  await h.closeAll()
})

function closeEvent(conn: Connection, ms = 5000): Promise<CloseInfo> {
  return withTimeout(
    new Promise<CloseInfo>((resolve) => {
      conn.once('close', resolve)
    }),
    ms,
    `'close' on connection ${conn.connId} (${conn.role})`,
  )
}

describe('identity', () => {
  it('PING example: the brief’s body bytes are 31 bytes, so the frame header is 00 00 00 1f', () => {
    // The brief lists the body as these bytes but calls it 33 bytes with header
    // 00 00 00 21 — an erratum of v0.2: the header must equal the body length.
    const briefBody = '7b 22 74 79 70 65 22 3a 22 50 49 4e 47 22 2c 22 74 69 6d 65 73 74 61 6d 70 22 3a 31 32 33 7d'
    expect(PING.toString('hex')).toBe(briefBody.replaceAll(' ', ''))
    expect(PING.length).toBe(31)
  })

  for (const keyType of ['p256', 'ed25519'] as const) {
    it(`${keyType}: certificate, key and fingerprint are consistent`, () => {
      const deviceId = '0f8fad5b-d9cb-469f-a165-70867728950e'
      const id = generateIdentity({ keyType, deviceId })
      expect(id.keyType).toBe(keyType)
      expect(id.deviceId).toBe(deviceId)
      expect(id.fingerprint).toMatch(/^[0-9a-f]{64}$/)
      expect(id.fingerprint).toBe(createHash('sha256').update(id.certDer).digest('hex'))
      expect(fingerprintOf(id.certDer)).toBe(id.fingerprint)
      expect(fingerprintOf(id.certPem)).toBe(id.fingerprint)
      expect(fingerprintOf(new Uint8Array(id.certDer))).toBe(id.fingerprint)

      const cert = new X509Certificate(id.certPem)
      expect(cert.raw.equals(id.certDer)).toBe(true)
      expect(cert.subjectAltName).toContain(`URI:cribcall:${deviceId}`)
      const key = createPrivateKey(id.keyPem)
      expect(key.asymmetricKeyType).toBe(keyType === 'p256' ? 'ec' : 'ed25519')
      if (keyType === 'p256') expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1')
      expect(cert.checkPrivateKey(key)).toBe(true)
      const spki = createPublicKey(key).export({ type: 'spki', format: 'der' })
      expect(id.publicKey).toBe(spki.toString('base64'))
      expect(cert.publicKey.export({ type: 'spki', format: 'der' }).equals(spki)).toBe(true)
    })
  }

  it('generates a random UUID v4 deviceId and distinct keys', () => {
    const a = generateIdentity()
    const b = generateIdentity()
    expect(a.keyType).toBe('p256')
    expect(a.deviceId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(a.deviceId).not.toBe(b.deviceId)
    expect(a.fingerprint).not.toBe(b.fingerprint)
  })

  it('rejects bad arguments with InvalidArgumentError', () => {
    expect(() => generateIdentity({ keyType: 'rsa' as KeyType })).toThrow(InvalidArgumentError)
    expect(() => fingerprintOf('not a certificate')).toThrow(CribcallError)
    expect(() => fingerprintOf(42 as unknown as string)).toThrow(InvalidArgumentError)
  })
})

describe('handshake with pinned mutual TLS, all key-type combinations', () => {
  const combos: Array<[KeyType, KeyType]> = [
    ['p256', 'p256'],
    ['p256', 'ed25519'],
    ['ed25519', 'p256'],
    ['ed25519', 'ed25519'],
  ]
  for (const [serverKey, clientKey] of combos) {
    it(`server ${serverKey} ↔ client ${clientKey}: correct pin establishes, PING arrives byte-exact and echoes`, async () => {
      const { serverId, clientId, server, client, conn, sconn } = await connectedPair(h, { serverKey, clientKey })

      expect(conn.role).toBe('client')
      expect(conn.peerFingerprint).toBe(serverId.fingerprint)
      expect(conn.peerKnown).toBe(true)
      expect(conn.remoteAddress).toEqual({ host: LOOPBACK, port: server.address.port })
      expect(sconn.role).toBe('server')
      expect(sconn.peerFingerprint).toBe(clientId.fingerprint)
      expect(sconn.peerKnown).toBe(false)
      expect(sconn.remoteAddress).toEqual({ host: LOOPBACK, port: client.address.port })
      expect(conn.isClosed).toBe(false)

      const arrived = nextFrame(sconn)
      expect(conn.send(PING)).toBeGreaterThanOrEqual(0)
      const frame = await arrived
      expect(frame.length).toBe(31)
      expect(frame.equals(PING)).toBe(true)
      expect(frame.toString('utf8')).toBe('{"type":"PING","timestamp":123}')

      const echoed = nextFrame(conn)
      sconn.send(frame)
      expect((await echoed).equals(PING)).toBe(true)

      const stats = server.stats()
      expect(stats.framesReceived).toBe(1)
      expect(stats.streamBytesReceived).toBe(4 + 31)
      expect(stats.connections).toBe(1)
    })
  }
})

describe('pinning and admission', () => {
  it('a wrong pin rejects with PinMismatchError and the server never sees the client', async () => {
    const serverId = generateIdentity()
    const server = await h.bind(serverId)
    const client = await h.bind(generateIdentity({ keyType: 'ed25519' }))
    server.listen({ acceptUnknown: true })
    let connections = 0
    server.on('connection', () => {
      connections++
    })
    const wrong = generateIdentity().fingerprint

    const error = await rejectionOf(
      client.connect({ host: LOOPBACK, port: server.address.port, serverFingerprint: wrong }),
    )
    expect(error).toBeInstanceOf(PinMismatchError)
    const pinError = error as PinMismatchError
    expect(pinError.code).toBe('ERR_PIN_MISMATCH')
    expect(pinError.expected).toBe(wrong)
    expect(pinError.actual).toBe(serverId.fingerprint)

    await sleep(300)
    expect(connections).toBe(0)
    const stats = server.stats()
    expect(stats.streamBytesReceived).toBe(0)
    expect(stats.framesReceived).toBe(0)
  })

  it('an upper-case pin is accepted; a malformed pin is an InvalidArgumentError', async () => {
    const serverId = generateIdentity()
    const server = await h.bind(serverId)
    const client = await h.bind(generateIdentity())
    server.listen({ acceptUnknown: true })
    const conn = await client.connect({
      host: LOOPBACK,
      port: server.address.port,
      serverFingerprint: serverId.fingerprint.toUpperCase(),
    })
    expect(conn.peerFingerprint).toBe(serverId.fingerprint)
    for (const bad of ['', 'abc', serverId.fingerprint.slice(1) + 'g', 42]) {
      const error = await rejectionOf(
        client.connect({ host: LOOPBACK, port: server.address.port, serverFingerprint: bad as string }),
      )
      expect(error).toBeInstanceOf(InvalidArgumentError)
    }
  })

  it('known-only policy rejects an unknown client; setKnownPeers admits it; acceptUnknown admits unknown ones', async () => {
    const serverId = generateIdentity()
    const clientId = generateIdentity({ keyType: 'ed25519' })
    const otherId = generateIdentity()
    const server = await h.bind(serverId)
    const client = await h.bind(clientId)
    const other = await h.bind(otherId)
    const target = { host: LOOPBACK, port: server.address.port, serverFingerprint: serverId.fingerprint }
    server.listen({ acceptUnknown: false })
    const seen: Connection[] = []
    server.on('connection', (c) => {
      seen.push(c)
    })

    const rejected = await rejectionOf(client.connect(target))
    expect(rejected).toBeInstanceOf(PeerRejectedError)
    expect((rejected as PeerRejectedError).code).toBe('ERR_PEER_REJECTED')
    await sleep(200)
    expect(seen).toHaveLength(0)
    expect(server.stats().handshakesRejected).toBeGreaterThanOrEqual(1)
    expect(server.stats().streamBytesReceived).toBe(0)

    server.setKnownPeers([clientId.fingerprint])
    const conn = await client.connect(target)
    await waitUntil(() => seen.length === 1, 5000, "the server's 'connection' event")
    expect(seen[0]!.peerFingerprint).toBe(clientId.fingerprint)
    expect(seen[0]!.peerKnown).toBe(true)
    expect(conn.peerKnown).toBe(true)

    // Another client is still unknown: rejected until acceptUnknown is switched on.
    expect(await rejectionOf(other.connect(target))).toBeInstanceOf(PeerRejectedError)
    server.setAcceptUnknown(true)
    await other.connect(target)
    await waitUntil(() => seen.length === 2, 5000, "the second 'connection' event")
    expect(seen[1]!.peerFingerprint).toBe(otherId.fingerprint)
    expect(seen[1]!.peerKnown).toBe(false)
  })

  it('stopListening refuses new connections and keeps established ones', async () => {
    const { server, client, serverId, conn, sconn } = await connectedPair(h)
    server.stopListening()
    let connections = 0
    server.on('connection', () => {
      connections++
    })
    const error = await rejectionOf(
      client.connect({ host: LOOPBACK, port: server.address.port, serverFingerprint: serverId.fingerprint, timeoutMs: 1500 }),
    )
    expect(error).toBeInstanceOf(CribcallError)
    expect(connections).toBe(0)
    const got = nextFrame(sconn)
    conn.send(PING)
    expect((await got).equals(PING)).toBe(true)
  })
})

describe('frames', () => {
  it('1,000 frames each way arrive complete and in order', async () => {
    const { conn, sconn } = await connectedPair(h)
    const N = 1000
    const payload = (side: string, seq: number): Buffer =>
      Buffer.from(JSON.stringify({ type: 'SEQ', side, seq, pad: 'x'.repeat((seq * 37) % 300) }))
    const atServer: Buffer[] = []
    const atClient: Buffer[] = []
    sconn.on('frame', (p) => {
      atServer.push(p)
    })
    conn.on('frame', (p) => {
      atClient.push(p)
    })
    // The server queues before the client opened the stream; the client then sends.
    for (let i = 0; i < N; i++) sconn.send(payload('S', i))
    for (let i = 0; i < N; i++) conn.send(payload('C', i))
    await waitUntil(() => atServer.length >= N && atClient.length >= N, 15000, '1,000 frames each way')
    await sleep(50)
    expect(atServer).toHaveLength(N)
    expect(atClient).toHaveLength(N)
    for (let i = 0; i < N; i++) {
      expect(atServer[i]!.equals(payload('C', i))).toBe(true)
      expect(atClient[i]!.equals(payload('S', i))).toBe(true)
    }
  })

  it('a 65,536-byte frame passes; 65,537 throws FrameTooLargeError; empty throws; the connection stays usable', async () => {
    const { conn, sconn } = await connectedPair(h)
    const big = randomBytes(65536)
    const got = nextFrame(sconn)
    conn.send(big)
    expect((await got).equals(big)).toBe(true)

    expect(() => conn.send(Buffer.alloc(65537))).toThrow(FrameTooLargeError)
    try {
      conn.send(Buffer.alloc(65537))
    } catch (error) {
      expect((error as CribcallError).code).toBe('ERR_FRAME_TOO_LARGE')
    }
    expect(() => conn.send(Buffer.alloc(0))).toThrow(InvalidArgumentError)
    expect(() => conn.send(new Uint8Array(0))).toThrow(InvalidArgumentError)
    expect(() => conn.send('text' as unknown as Uint8Array)).toThrow(InvalidArgumentError)

    // A Uint8Array view (not a Buffer) into a larger buffer is sent exactly.
    const backing = new Uint8Array(100).fill(0x41)
    backing.set(PING, 10)
    const view = backing.subarray(10, 10 + PING.length)
    const next = nextFrame(sconn)
    conn.send(view)
    expect((await next).equals(PING)).toBe(true)
  })

  it('maxFramePayload is configurable', async () => {
    const { conn, sconn } = await connectedPair(h, { client: { maxFramePayload: 1024 }, server: { maxFramePayload: 1024 } })
    const ok = randomBytes(1024)
    const got = nextFrame(sconn)
    conn.send(ok)
    expect((await got).equals(ok)).toBe(true)
    expect(() => conn.send(Buffer.alloc(1025))).toThrow(FrameTooLargeError)
  })

  it('a frame whose header exceeds the receiver’s maximum closes the connection with PROTOCOL_ERROR', async () => {
    // The client allows 65,536 bytes, the server only 1,024: the server sees L = 2,000.
    const { conn, sconn } = await connectedPair(h, { server: { maxFramePayload: 1024 } })
    let framesAtServer = 0
    sconn.on('frame', () => {
      framesAtServer++
    })
    const clientClose = closeEvent(conn)
    const serverClose = closeEvent(sconn)
    conn.send(Buffer.alloc(2000, 0x20))
    expect(await clientClose).toMatchObject({ code: 1, byPeer: true, application: true })
    expect(await serverClose).toMatchObject({ code: 1, byPeer: false, application: true })
    expect(framesAtServer).toBe(0)
  })

  it('frames that arrive before a frame listener is attached are delivered to it, in order', async () => {
    const { conn, sconn } = await connectedPair(h)
    const frames = Array.from({ length: 5 }, (_, i) => Buffer.from(`{"type":"SEQ","seq":${i}}`))
    for (const f of frames) conn.send(f)
    await sleep(300) // frames are in by now, buffered
    const a: Buffer[] = []
    const b: Buffer[] = []
    sconn.on('frame', (p) => {
      a.push(p)
    })
    sconn.on('frame', (p) => {
      b.push(p)
    })
    expect(a).toHaveLength(0) // never called from inside on()
    await waitUntil(() => a.length === 5 && b.length === 5, 2000, 'buffered frames')
    for (let i = 0; i < 5; i++) {
      expect(a[i]!.equals(frames[i]!)).toBe(true)
      expect(b[i]!.equals(frames[i]!)).toBe(true)
    }
    const late = Buffer.from('{"type":"SEQ","seq":5}')
    conn.send(late)
    await waitUntil(() => a.length === 6, 2000, 'a later frame')
    expect(a[5]!.equals(late)).toBe(true)
  })

  it(`more than ${MAX_BUFFERED_FRAMES} unread frames close the connection with INTERNAL_ERROR`, async () => {
    const { conn, sconn } = await connectedPair(h)
    const clientClose = closeEvent(conn, 20000)
    const serverClose = closeEvent(sconn, 20000)
    const frame = Buffer.from('{"type":"X"}')
    for (let i = 0; i <= MAX_BUFFERED_FRAMES; i++) conn.send(frame)
    expect(await clientClose).toEqual({ code: 5, reason: 'receive buffer overflow', byPeer: true, application: true })
    expect(await serverClose).toEqual({ code: 5, reason: 'receive buffer overflow', byPeer: false, application: true })
  })
})

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

describe('listener failures never crash the process', () => {
  let uncaught: unknown[] = []
  const onUncaught = (error: unknown): void => {
    uncaught.push(error)
  }
  beforeEach(() => {
    uncaught = []
    process.on('uncaughtException', onUncaught)
    process.on('unhandledRejection', onUncaught)
  })
  afterEach(() => {
    process.off('uncaughtException', onUncaught)
    process.off('unhandledRejection', onUncaught)
    vi.restoreAllMocks()
  })

  it('a throwing or rejecting frame handler is reported via the connection’s error event; other connections keep working', async () => {
    const serverId = generateIdentity()
    const server = await h.bind(serverId)
    server.listen({ acceptUnknown: true })
    const errors: CribcallError[] = []
    server.on('connection', (sconn) => {
      sconn.on('error', (error) => {
        errors.push(error)
      })
      sconn.on('frame', (payload) => {
        const text = payload.toString()
        if (text === '{"type":"THROW"}') throw new Error('boom sync')
        if (text === '{"type":"REJECT"}') return Promise.reject(new Error('boom async'))
        sconn.send(payload)
        return undefined
      })
    })
    const target = { host: LOOPBACK, port: server.address.port, serverFingerprint: serverId.fingerprint }
    const a = await (await h.bind(generateIdentity())).connect(target)
    const b = await (await h.bind(generateIdentity({ keyType: 'ed25519' }))).connect(target)

    a.send(Buffer.from('{"type":"THROW"}'))
    a.send(Buffer.from('{"type":"REJECT"}'))
    const echoA = nextFrame(a)
    a.send(PING)
    expect((await echoA).equals(PING)).toBe(true)
    await waitUntil(() => errors.length === 2, 2000, 'two handler errors')
    expect(errors[0]).toBeInstanceOf(HandlerError)
    expect(errors[0]!.code).toBe('ERR_HANDLER')
    expect((errors[0] as HandlerError).event).toBe('frame')
    expect((errors[0]!.cause as Error).message).toBe('boom sync')
    expect((errors[1]!.cause as Error).message).toBe('boom async')

    const echoB = nextFrame(b)
    b.send(PING)
    expect((await echoB).equals(PING)).toBe(true)
    expect(a.isClosed).toBe(false)
    expect(uncaught).toEqual([])
  })

  it('without a connection error listener the endpoint’s error event gets it; without that, a process warning', async () => {
    const serverId = generateIdentity()
    const server = await h.bind(serverId)
    server.listen({ acceptUnknown: true })
    const endpointErrors: CribcallError[] = []
    server.on('error', (error) => {
      endpointErrors.push(error)
    })
    server.on('connection', (sconn) => {
      sconn.on('frame', () => {
        throw new Error('unhandled in frame')
      })
      throw new Error('unhandled in connection')
    })
    const target = { host: LOOPBACK, port: server.address.port, serverFingerprint: serverId.fingerprint }
    const conn = await (await h.bind(generateIdentity())).connect(target)
    conn.send(PING)
    await waitUntil(() => endpointErrors.length === 2, 2000, 'endpoint errors')
    expect(endpointErrors.map((e) => (e as HandlerError).event).sort()).toEqual(['connection', 'frame'])

    // No listener anywhere: a process warning, nothing thrown.
    server.removeAllListeners('error')
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
    conn.send(PING)
    await waitUntil(() => warn.mock.calls.length >= 1, 2000, 'a process warning')
    expect(warn.mock.calls[0]![0]).toBeInstanceOf(HandlerError)

    // An error listener that itself throws ends up as a warning as well.
    server.on('error', () => {
      throw new Error('error handler broken')
    })
    conn.send(PING)
    await waitUntil(() => warn.mock.calls.length >= 2, 2000, 'a second warning')
    expect(((warn.mock.calls[1]![0] as HandlerError).cause as Error).message).toBe('error handler broken')

    const echoed = nextFrame(conn, 500).catch(() => 'no echo')
    expect(await echoed).toBe('no echo') // the handler threw before echoing; the connection is still open
    expect(conn.isClosed).toBe(false)
    expect(uncaught).toEqual([])
  })
})

describe('process-level behaviour (child processes using dist/)', () => {
  const dist = `${root}dist/index.js`

  function runFixture(
    name: string,
    onLine?: (line: string, child: ReturnType<typeof spawn>) => void,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; lines: string[]; stderr: string; exitedAt: number }> {
    if (!existsSync(dist)) throw new Error(`${dist} is missing: run \`npm run build\` first (npm test does)`)
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [`${root}test/fixtures/${name}`], { stdio: ['ignore', 'pipe', 'pipe'] })
      const lines: string[] = []
      let stderr = ''
      let partial = ''
      child.stdout!.setEncoding('utf8')
      child.stdout!.on('data', (chunk: string) => {
        partial += chunk
        let nl: number
        while ((nl = partial.indexOf('\n')) >= 0) {
          const line = partial.slice(0, nl)
          partial = partial.slice(nl + 1)
          lines.push(line)
          onLine?.(line, child)
        }
      })
      child.stderr!.setEncoding('utf8')
      child.stderr!.on('data', (chunk: string) => {
        stderr += chunk
      })
      child.on('error', reject)
      child.on('exit', (code, signal) => {
        resolve({ code, signal, lines, stderr, exitedAt: Date.now() })
      })
    })
  }

  it('10 idle connections over 5 s: at most one PING and one ACK per connection, < 50 ms of IO-thread CPU', async () => {
    const result = await runFixture('idle.mjs')
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const report = JSON.parse(result.lines.at(-1) ?? '{}') as {
      ioThreadsCpuMs?: number
      packetsSent: number
      cpuMs: number
      wallMs: number
      serverConnections: number
      clientConnectionsOpen: number
    }
    expect(report.serverConnections).toBe(10)
    expect(report.clientConnectionsOpen).toBe(10)
    expect(report.wallMs).toBeGreaterThanOrEqual(4900)
    // Keep-alive every 5 s: one PING from one end and its ACK from the other (plus at
    // most one more exchange at the edge of the window) per connection.
    expect(report.packetsSent).toBeLessThanOrEqual(10 * 4)
    // Our threads only: the process total also holds V8's own idle work (a clean-up
    // garbage collection some seconds after start-up), which is not ours to bound.
    expect(report.ioThreadsCpuMs ?? report.cpuMs).toBeLessThan(50)
  })

  it('a script that binds, connects, exchanges frames and closes exits within 1 s of close(); the native threads are gone', async () => {
    let closedAt = 0
    let lateKill: NodeJS.Timeout | undefined
    let killedLate = false
    const result = await runFixture('exit.mjs', (line, child) => {
      const msg = JSON.parse(line) as { event: string; t: number }
      if (msg.event === 'closed') {
        closedAt = msg.t
        lateKill = setTimeout(() => {
          killedLate = true
          child.kill('SIGKILL')
        }, 1000)
      }
    })
    clearTimeout(lateKill)
    expect(result.stderr).toBe('')
    expect(killedLate, 'the process had not exited 1000 ms after close() resolved').toBe(false)
    expect(result.code).toBe(0)
    expect(closedAt).toBeGreaterThan(0)
    expect(result.exitedAt - closedAt).toBeLessThanOrEqual(1000)
    const closed = JSON.parse(result.lines.find((l) => l.includes('"closed"'))!) as {
      framesEchoed: number
      tasksBefore: number
      tasksAfterClose: number
      tasksSettled: number
      tasksWhileOpen: number
    }
    expect(closed.framesEchoed).toBe(10)
    expect(closed.tasksWhileOpen).toBeGreaterThan(closed.tasksBefore) // the IO threads existed
    expect(closed.tasksSettled).toBeLessThanOrEqual(closed.tasksBefore)
  })
})

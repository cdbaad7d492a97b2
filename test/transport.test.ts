// The QUIC transport over real loopback: identities, the pinned mutual-TLS handshake for
// every key-type combination, pinning and admission of peers.
import { X509Certificate, createHash, createPrivateKey, createPublicKey } from 'node:crypto'

import { describe, expect, it } from 'vitest'

import {
  CribcallError,
  InvalidArgumentError,
  PeerRejectedError,
  PinMismatchError,
  fingerprintOf,
  generateIdentity,
  type Connection,
  type KeyType,
} from '../src/index.js'
import { LOOPBACK, PING, connectedPair, harnessPerTest, nextFrame, rejectionOf, sleep, waitUntil } from './helpers.js'

const h = harnessPerTest()

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

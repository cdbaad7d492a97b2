// The QUIC transport over real loopback: a throwing or rejecting 'frame' / 'connection'
// handler is reported (connection 'error', endpoint 'error', process warning) and never
// crashes the process.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { CribcallError, HandlerError, generateIdentity } from '../src/index.js'
import { LOOPBACK, PING, harnessPerTest, nextFrame, waitUntil } from './helpers.js'

const h = harnessPerTest()

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

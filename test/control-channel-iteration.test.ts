// ControlChannel behaviour over real loopback QUIC: async iteration of messages, and the
// send-side checks.
import { describe, expect, it } from 'vitest'

import {
  AbortError,
  ConnectionClosedError,
  ControlChannel,
  InvalidMessageError,
  NotAllowedError,
  SessionConflictError,
  generateIdentity,
  type CribcallError,
  type Message,
  type NoiseEventMessage,
} from '../src/index.js'
import { LOOPBACK, rejectionOf, sleep, withTimeout } from './helpers.js'
import { MONITOR_ID, validMessages, waitFor } from './protocol-helpers.js'
import { useChannelTestContext } from './control-channel-helpers.js'

const { h, uncaught, monitorWithChannels } = useChannelTestContext()

describe('async iteration', () => {
  async function trustedPair(): Promise<{ listener: ControlChannel; monitor: ControlChannel }> {
    const a = generateIdentity()
    const m = await monitorWithChannels({ known: [a] })
    const incoming = m.next()
    const listener = await ControlChannel.connect(await h.bind(a), { host: LOOPBACK, port: m.monitor.address.port, serverFingerprint: m.id.fingerprint })
    const monitor = await incoming
    // Wait for the opening PING's PONG so that it is not in the iterations below.
    await waitFor(() => monitor.stats.accepted === 1, 5000, 'the opening PING')
    await sleep(20)
    return { listener, monitor }
  }
  const noise = (i: number): NoiseEventMessage => ({ type: 'NOISE_EVENT', monitorId: MONITOR_ID, timestamp: 1000 + i, peakLevel: i % 101 })

  it('for await receives messages in order and ends when the channel closes', async () => {
    const { listener, monitor } = await trustedPair()
    const controller = new AbortController()
    const received: Message[] = []
    const loop = (async () => {
      for await (const m of listener.messages({ signal: controller.signal })) received.push(m)
      return 'ended'
    })()
    for (let i = 0; i < 50; i++) monitor.send(noise(i))
    await waitFor(() => received.length === 50, 5000, '50 messages')
    await monitor.close(0, 'bye')
    expect(await withTimeout(loop, 5000, 'the loop to end')).toBe('ended')
    expect(received).toEqual(Array.from({ length: 50 }, (_, i) => noise(i)))
  })

  it('messages that arrived before the close are still yielded, then the iteration ends', async () => {
    const { listener, monitor } = await trustedPair()
    const it1 = listener.messages()
    const it2 = listener[Symbol.asyncIterator]()
    let delivered = 0
    listener.on('message', () => {
      delivered++
    })
    for (let i = 0; i < 20; i++) monitor.send(noise(i))
    await waitFor(() => delivered === 20, 5000, '20 deliveries')
    await listener.close()
    for (const iterator of [it1, it2]) {
      const got: Message[] = []
      for await (const m of { [Symbol.asyncIterator]: () => iterator }) got.push(m)
      expect(got).toEqual(Array.from({ length: 20 }, (_, i) => noise(i)))
    }
    // A new iterator on a closed channel ends at once.
    const late = await listener.messages().next()
    expect(late.done).toBe(true)
  })

  it('aborting the signal rejects the iteration with AbortError (waiting or not), and detaches it', async () => {
    const { listener, monitor } = await trustedPair()
    // Aborted while waiting for the next message.
    const controller = new AbortController()
    const reason = new Error('user left')
    const received: Message[] = []
    const loop = (async () => {
      for await (const m of listener.messages({ signal: controller.signal })) {
        received.push(m)
        if (received.length === 3) setTimeout(() => controller.abort(reason), 20)
      }
    })()
    for (let i = 0; i < 3; i++) monitor.send(noise(i))
    const error = await withTimeout(rejectionOf(loop), 5000, 'the aborted loop')
    expect(error).toBeInstanceOf(AbortError)
    expect((error as AbortError).cause).toBe(reason)
    expect(received).toEqual([noise(0), noise(1), noise(2)])

    // Aborted while messages are queued: the next next() rejects.
    const c2 = new AbortController()
    const it2 = listener.messages({ signal: c2.signal })
    let delivered = 0
    listener.on('message', () => {
      delivered++
    })
    monitor.send(noise(10))
    monitor.send(noise(11))
    await waitFor(() => delivered === 2, 5000, 'two deliveries')
    c2.abort()
    expect(await rejectionOf(it2.next())).toBeInstanceOf(AbortError)
    expect((await it2.next()).done).toBe(true)

    // Already aborted: the first next() rejects; nothing is thrown synchronously.
    const it3 = listener.messages({ signal: AbortSignal.abort('early') })
    const early = await rejectionOf(it3.next())
    expect(early).toBeInstanceOf(AbortError)
    expect((early as AbortError).cause).toBe('early')

    // break detaches the iterator; the channel keeps working.
    const got: Message[] = []
    const loop4 = (async () => {
      for await (const m of listener.messages()) {
        got.push(m)
        break
      }
    })()
    monitor.send(noise(20))
    await withTimeout(loop4, 5000, 'the loop with break')
    expect(got).toEqual([noise(20)])
    expect(await listener.ping()).toBeGreaterThanOrEqual(0)
    expect(uncaught).toEqual([])
  })

  it('an iterator that falls more than iteratorBuffer behind fails with IteratorOverflowError', async () => {
    const a = generateIdentity()
    const m = await monitorWithChannels({ known: [a] })
    const incoming = m.next()
    const conn = await (await h.bind(a)).connect({ host: LOOPBACK, port: m.monitor.address.port, serverFingerprint: m.id.fingerprint })
    const listener = new ControlChannel(conn, { role: 'listener', trust: 'trusted', iteratorBuffer: 5 })
    listener.send({ type: 'PING', timestamp: 1 })
    const monitor = await incoming
    const it = listener.messages()
    let delivered = 0
    listener.on('message', () => {
      delivered++
    })
    await waitFor(() => delivered === 1, 5000, 'the PONG')
    for (let i = 0; i < 5; i++) monitor.send(noise(i))
    await waitFor(() => delivered === 6, 5000, 'six deliveries')
    const error = await rejectionOf(it.next())
    expect((error as CribcallError).code).toBe('ERR_ITERATOR_OVERFLOW')
    expect(listener.isClosed).toBe(false)
  })
})

describe('send-side checks', () => {
  it('role, trust, schema, serializability and session conflicts are refused before anything is sent', async () => {
    const a = generateIdentity()
    const { monitor, id, next } = await monitorWithChannels({ known: [a] })
    const incoming = next()
    const listener = await ControlChannel.connect(await h.bind(a), { host: LOOPBACK, port: monitor.address.port, serverFingerprint: id.fingerprint })
    const channel = await incoming
    await waitFor(() => channel.stats.accepted === 1, 5000, 'the opening PING')
    const framesBefore = monitor.stats().framesReceived

    const role = (() => {
      try {
        listener.send(validMessages().NOISE_EVENT)
      } catch (e) {
        return e
      }
      return undefined
    })()
    expect(role).toBeInstanceOf(NotAllowedError)
    expect((role as NotAllowedError).rule).toBe('role')
    expect((role as NotAllowedError).code).toBe('ERR_NOT_ALLOWED')
    expect(() => listener.send({ type: 'PING', timestamp: -1 })).toThrow(InvalidMessageError)
    expect(() => listener.send({ type: 'PING', timestamp: 1, extra: true } as unknown as Message)).toThrow(InvalidMessageError)
    expect(() => listener.send({ type: 'NOPE' } as unknown as Message)).toThrow(InvalidMessageError)
    expect(() => listener.send(null as unknown as Message)).toThrow(InvalidMessageError)
    // A lone surrogate passes the schema but is not serializable: InvalidMessageError too.
    expect(() => listener.send({ ...validMessages().PAIR_REQUEST, listenerName: 'a\ud800' })).toThrow(InvalidMessageError)
    listener.send({ type: 'START_STREAM_REQUEST', sessionId: 'x', mediaType: 'audio' })
    expect(() => listener.send({ type: 'START_STREAM_REQUEST', sessionId: 'x', mediaType: 'audio' })).toThrow(SessionConflictError)
    listener.send({ type: 'END_STREAM', sessionId: 'x' })
    listener.send({ type: 'START_STREAM_REQUEST', sessionId: 'x', mediaType: 'audio_video' })
    await waitFor(() => monitor.stats().framesReceived === framesBefore + 3, 5000, 'the three valid frames')
    await sleep(50)
    expect(monitor.stats().framesReceived).toBe(framesBefore + 3)
    expect(channel.stats).toEqual({ accepted: 4, rejected: 0 })
    await listener.close()
    expect(() => listener.send({ type: 'PING', timestamp: 1 })).toThrow(ConnectionClosedError)
  })
})

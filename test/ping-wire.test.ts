// The PING example of SPEC.md §3 on the wire, over real loopback QUIC: the frame header
// and the canonical (JCS) bytes this library sends, and the SPEC's member order accepted.
import { afterAll, describe, expect, it } from 'vitest'

import { ControlChannel, generateIdentity, type Message } from '../src/index.js'
import { Harness, LOOPBACK, nextConnection, sleep, withTimeout } from './helpers.js'
import { waitFor } from './protocol-helpers.js'

describe('PING example on the wire (SPEC.md §3)', () => {
  const h = new Harness()
  afterAll(async () => {
    await h.closeAll()
  })

  it('send({type:"PING",timestamp:123}) on a trusted listener channel is one frame with header 00 00 00 1f and 31 canonical bytes', async () => {
    const monitorId = generateIdentity()
    const monitor = await h.bind(monitorId)
    monitor.listen({ acceptUnknown: true })
    const listener = await h.bind(generateIdentity())
    const incoming = nextConnection(monitor)
    const conn = await listener.connect({ host: LOOPBACK, port: monitor.address.port, serverFingerprint: monitorId.fingerprint })
    const raw = await incoming
    const channel = new ControlChannel(conn, { role: 'listener', trust: 'trusted' })
    const frames: Buffer[] = []
    raw.on('frame', (p) => {
      frames.push(p)
    })

    channel.send({ type: 'PING', timestamp: 123 })
    await waitFor(() => frames.length === 1, 5000, 'the PING frame')
    const payload = frames[0]!

    // SPEC.md §3 lists the body {"type":"PING","timestamp":123}; SPEC.md §4 requires every
    // frame this library sends to be JCS, which orders members by name: "timestamp" <
    // "type". Same 31 bytes, so the same header 00 00 00 1f (v0.2's 0x21 is wrong).
    const specBody = Buffer.from('7b2274797065223a2250494e47222c2274696d657374616d70223a3132337d', 'hex')
    expect(specBody.toString('utf8')).toBe('{"type":"PING","timestamp":123}')
    expect(payload.toString('utf8')).toBe('{"timestamp":123,"type":"PING"}')
    expect(payload.length).toBe(31)
    expect(payload.length).toBe(specBody.length)
    const header = Buffer.alloc(4)
    header.writeUInt32BE(payload.length)
    expect(header.toString('hex')).toBe('0000001f')
    expect(Buffer.concat([header, payload]).toString('hex')).toBe(
      '0000001f' + '7b2274696d657374616d70223a3132332c2274797065223a2250494e47227d',
    )
    // Exactly 4 + 31 bytes crossed the stream and were framed as one 31-byte payload.
    await waitFor(() => monitor.stats().framesReceived === 1, 2000, 'the monitor stats')
    expect(monitor.stats().streamBytesReceived).toBe(35)
    await sleep(50)
    expect(frames).toHaveLength(1)

    // The SPEC's (non-canonical) member order is accepted as the same message by a receiver.
    const delivered: Message[] = []
    const monitorChannel = new ControlChannel(raw, { role: 'monitor', trust: 'trusted' })
    monitorChannel.on('message', (m) => {
      delivered.push(m)
    })
    const pong = withTimeout(new Promise<Buffer>((resolve) => conn.once('frame', resolve)), 5000, 'the PONG')
    conn.send(specBody)
    await waitFor(() => delivered.length === 1, 5000, 'the SPEC-order PING')
    expect(delivered[0]).toEqual({ type: 'PING', timestamp: 123 })
    expect((await pong).toString('utf8')).toBe('{"timestamp":123,"type":"PONG"}')
    await channel.close()
  })
})

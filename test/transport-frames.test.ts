// The QUIC transport over real loopback: frames (order, size limits, buffering before a
// frame listener is attached, the receive-buffer bound).
import { randomBytes } from 'node:crypto'

import { describe, expect, it } from 'vitest'

import { CribcallError, FrameTooLargeError, InvalidArgumentError, MAX_BUFFERED_FRAMES } from '../src/index.js'
import { PING, closeEvent, connectedPair, harnessPerTest, nextFrame, sleep, waitUntil } from './helpers.js'

const h = harnessPerTest()

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

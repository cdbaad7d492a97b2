// Backpressure on a Connection: queuedBytes, 'drain', write() that waits instead of
// throwing, and a refused send() that queues (and copies) nothing. The peer is a child
// process frozen with SIGSTOP: it stops acknowledging, so QUIC stops taking data and the
// native queue fills; SIGCONT lets everything through.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

import { afterEach, describe, expect, it } from 'vitest'

import { AbortError, ConnectionClosedError, SendBufferFullError, generateIdentity } from '../src/index.js'
import { Harness, LOOPBACK, nextConnection, withTimeout } from './helpers.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/frozen-client.mjs', import.meta.url))
const MAX_SEND_BUFFER = 256 * 1024
const FRAME = Buffer.alloc(60_000, 0x61)

const h = new Harness()
let child: ChildProcessWithoutNullStreams | undefined

afterEach(async () => {
  if (child !== undefined && child.exitCode === null) {
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  }
  child = undefined
  await h.closeAll()
})

async function frozenPeer() {
  const serverId = generateIdentity({ keyType: 'p256' })
  const server = await h.bind(serverId, { maxSendBuffer: MAX_SEND_BUFFER })
  server.listen({ acceptUnknown: true })
  const incoming = nextConnection(server, 15_000)
  child = spawn(process.execPath, [FIXTURE, LOOPBACK, String(server.address.port), serverId.fingerprint])
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  await withTimeout(
    (async () => {
      while (!out.includes('ready')) await once(child!.stdout, 'data')
    })(),
    15_000,
    'the child client',
  )
  const conn = await incoming
  await withTimeout(new Promise((resolve) => conn.once('frame', resolve)), 5000, 'hello')
  const proc = child
  /** How many frames the child has received (it answers each stdin line). */
  const framesReceived = async (): Promise<number> => {
    const before = out.length
    proc.stdin.write('count\n')
    while (!out.slice(before).includes('}\n')) await once(proc.stdout, 'data')
    const line = out.slice(before).split('\n').find((l) => l.startsWith('{')) ?? '{}'
    return (JSON.parse(line) as { frames: number }).frames
  }
  return { conn, framesReceived, freeze: () => proc.kill('SIGSTOP'), thaw: () => proc.kill('SIGCONT') }
}

/** Sends until the native queue refuses; returns how many frames were accepted. */
function fill(conn: { send(p: Uint8Array): number; queuedBytes: number }): { accepted: number; refusal: unknown } {
  for (let i = 0; i < 10_000; i++) {
    try {
      conn.send(FRAME)
    } catch (error) {
      return { accepted: i, refusal: error }
    }
  }
  throw new Error('the send buffer never filled')
}

describe('backpressure', () => {
  it('a refused send queues nothing; drain follows once the peer reads again; write() waits for it', async () => {
    const { conn, framesReceived, freeze, thaw } = await frozenPeer()
    freeze()
    // QUIC takes what flow control and the congestion window allow; the rest queues natively.
    let refusal: unknown
    let accepted = 0
    await withTimeout(
      (async () => {
        // Full once it stays full after the frames of the last fill were flushed
        // (they go out at the end of the tick and QUIC may take some of them).
        for (;;) {
          const r = fill(conn)
          accepted += r.accepted
          refusal = r.refusal
          await new Promise((resolve) => setTimeout(resolve, 20))
          if (conn.queuedBytes + FRAME.length + 4 > MAX_SEND_BUFFER) return
        }
      })(),
      10_000,
      'a full send buffer',
    )
    expect(refusal).toBeInstanceOf(SendBufferFullError)
    const queued = conn.queuedBytes
    expect(queued).toBeGreaterThan(MAX_SEND_BUFFER - FRAME.length - 4)
    expect(queued).toBeLessThanOrEqual(MAX_SEND_BUFFER)
    // Refused again: nothing more is queued.
    expect(() => conn.send(FRAME)).toThrow(SendBufferFullError)
    expect(conn.queuedBytes).toBeLessThanOrEqual(queued)

    let drains = 0
    conn.on('drain', () => drains++)
    const written = conn.write(FRAME) // waits for room instead of throwing
    let settled = false
    void written.then(() => (settled = true), () => (settled = true))
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(settled).toBe(false) // still frozen: no room

    thaw()
    const n = await withTimeout(written, 15_000, 'write() after the peer thawed')
    // What was still queued when write() resolved (the IO thread may have taken it all).
    expect(n).toBeGreaterThanOrEqual(0)
    expect(n).toBeLessThanOrEqual(MAX_SEND_BUFFER)
    expect(drains).toBeGreaterThanOrEqual(1)
    await withTimeout(
      (async () => {
        while (conn.queuedBytes > 0) await new Promise((resolve) => setTimeout(resolve, 20))
      })(),
      15_000,
      'the queue to empty',
    )
    // Every accepted frame and the written one arrive; the refused ones were never sent.
    await withTimeout(
      (async () => {
        while ((await framesReceived()) < accepted + 1) await new Promise((resolve) => setTimeout(resolve, 50))
      })(),
      15_000,
      'every accepted frame at the peer',
    )
    expect(await framesReceived()).toBe(accepted + 1)
  })

  it('write() rejects with AbortError when its signal aborts and with ConnectionClosedError when the connection closes', async () => {
    const { conn, freeze, thaw } = await frozenPeer()
    freeze()
    await withTimeout(
      (async () => {
        // Full once it stays full after the frames of the last fill were flushed
        // (they go out at the end of the tick and QUIC may take some of them).
        for (;;) {
          fill(conn)
          await new Promise((resolve) => setTimeout(resolve, 20))
          if (conn.queuedBytes + FRAME.length + 4 > MAX_SEND_BUFFER) return
        }
      })(),
      10_000,
      'a full send buffer',
    )
    const ac = new AbortController()
    const aborted = conn.write(FRAME, { signal: ac.signal })
    ac.abort(new Error('changed my mind'))
    await expect(aborted).rejects.toBeInstanceOf(AbortError)

    const pending = conn.write(FRAME)
    void conn.close(0, 'bye')
    await expect(pending).rejects.toBeInstanceOf(ConnectionClosedError)
    expect(conn.queuedBytes).toBe(0)
    thaw()
  })
})

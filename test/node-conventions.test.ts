// Role and transport objects follow Node's own conventions: they are node:events
// EventEmitters (so events.on / events.once with an AbortSignal work and clean up after
// themselves), they have a `closed` promise, destroy() and Symbol.asyncDispose.
import { EventEmitter, on, once } from 'node:events'
import { describe, expect, it } from 'vitest'

import {
  ControlChannel,
  Endpoint,
  Listener,
  MemoryTrustStore,
  Monitor,
  generateIdentity,
  type Connection,
} from '../src/index.js'
import { LOOPBACK, withTimeout } from './helpers.js'

const monitorId = generateIdentity()
const listenerId = generateIdentity()

async function startMonitor(): Promise<Monitor> {
  return Monitor.start({ identity: monitorId, trustStore: new MemoryTrustStore(), name: 'Nursery', host: LOOPBACK, port: 0 })
}

describe("Node's event conventions", () => {
  it('Monitor, Listener, Endpoint and ControlChannel are EventEmitters', async () => {
    const monitor = await startMonitor()
    const listener = new Listener({ identity: listenerId, trustStore: new MemoryTrustStore() })
    const endpoint = await Endpoint.bind({ host: LOOPBACK, port: 0, identity: listenerId })
    try {
      for (const e of [monitor, listener, endpoint]) expect(e).toBeInstanceOf(EventEmitter)
      expect(ControlChannel.prototype).toBeInstanceOf(EventEmitter)
    } finally {
      await Promise.all([monitor.close(), listener.close(), endpoint.close()])
    }
  })

  it('events.once resolves with the arguments and leaves no listener behind, three times over', async () => {
    const monitor = await startMonitor()
    try {
      for (let i = 0; i < 3; i++) {
        const opened = once(monitor, 'pairing-opened')
        monitor.openPairing({ durationMs: 60_000 })
        const [info] = (await withTimeout(opened, 2000, "'pairing-opened'")) as [{ allowQr: boolean }]
        expect(info.allowQr).toBe(true)
        monitor.closePairing()
      }
      expect(monitor.listenerCount('error')).toBe(0)
      expect(monitor.listenerCount('pairing-opened')).toBe(0)
    } finally {
      await monitor.close()
    }
  })

  it('events.once with an AbortSignal rejects with AbortError and removes its listeners', async () => {
    const monitor = await startMonitor()
    try {
      const ac = new AbortController()
      const waiting = once(monitor, 'paired', { signal: ac.signal })
      expect(monitor.listenerCount('paired')).toBe(1)
      ac.abort()
      await expect(waiting).rejects.toMatchObject({ name: 'AbortError' })
      expect(monitor.listenerCount('paired')).toBe(0)
      expect(monitor.listenerCount('error')).toBe(0)
    } finally {
      await monitor.close()
    }
  })

  it('events.on iterates events and stops at its AbortSignal', async () => {
    const monitor = await startMonitor()
    try {
      const ac = new AbortController()
      const seen: number[] = []
      const iterating = (async () => {
        for await (const [info] of on(monitor, 'pairing-opened', { signal: ac.signal })) {
          seen.push((info as { until: number }).until)
          if (seen.length === 2) ac.abort()
        }
      })()
      monitor.openPairing({ durationMs: 60_000 })
      monitor.closePairing()
      monitor.openPairing({ durationMs: 60_000 })
      await expect(withTimeout(iterating, 2000, 'the iteration')).rejects.toMatchObject({ name: 'AbortError' })
      expect(seen).toHaveLength(2)
      expect(monitor.listenerCount('pairing-opened')).toBe(0)
    } finally {
      await monitor.close()
    }
  })

  it('frames arrive through events.on on a Connection (buffered until the iterator attaches)', async () => {
    await using server = await Endpoint.bind({ host: LOOPBACK, port: 0, identity: monitorId })
    await using client = await Endpoint.bind({ host: LOOPBACK, port: 0, identity: listenerId })
    server.listen({ acceptUnknown: true })
    const accepted = once(server, 'connection') as Promise<[Connection]>
    const conn = await client.connect({ host: LOOPBACK, port: server.address.port, serverFingerprint: monitorId.fingerprint })
    const [peer] = await withTimeout(accepted, 5000, "'connection'")
    conn.send(Buffer.from('one'))
    conn.send(Buffer.from('two'))
    const got: string[] = []
    for await (const [payload] of on(peer, 'frame')) {
      got.push((payload as Buffer).toString())
      if (got.length === 2) break
    }
    expect(got).toEqual(['one', 'two'])
    expect(peer.listenerCount('frame')).toBe(0)
  })
})

describe('closed, destroy() and await using', () => {
  it('Endpoint: closed settles after close(); destroy() closes without waiting', async () => {
    const a = await Endpoint.bind({ host: LOOPBACK, port: 0, identity: monitorId })
    let settled = false
    void a.closed.then(() => (settled = true))
    await a.close()
    await a.closed
    expect(settled).toBe(true)

    const b = await Endpoint.bind({ host: LOOPBACK, port: 0, identity: monitorId })
    expect(b.destroy()).toBeUndefined()
    await withTimeout(b.closed, 5000, 'Endpoint.closed after destroy()')
    expect(() => b.stats()).toThrow(/closed/)
  })

  it('Monitor and Listener: close() is one promise; closed settles; destroy() works', async () => {
    const m = await startMonitor()
    const first = m.close()
    expect(m.close()).toBe(first)
    await first
    await withTimeout(m.closed, 1000, 'Monitor.closed')

    const l = new Listener({ identity: listenerId, trustStore: new MemoryTrustStore() })
    const lf = l.close()
    expect(l.close()).toBe(lf)
    await withTimeout(l.closed, 1000, 'Listener.closed')

    const m2 = await startMonitor()
    m2.destroy()
    await withTimeout(m2.closed, 5000, 'Monitor.closed after destroy()')
    expect(() => m2.openPairing()).toThrow(/closed/)
  })

  it('await using closes a Monitor and a Listener at the end of the block', async () => {
    let monitor: Monitor | undefined
    let listener: Listener | undefined
    {
      await using m = await startMonitor()
      await using l = new Listener({ identity: listenerId, trustStore: new MemoryTrustStore() })
      monitor = m
      listener = l
    }
    await withTimeout(Promise.all([monitor.closed, listener.closed]), 1000, 'closed after the block')
  })
})

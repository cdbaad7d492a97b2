// Handler failures of ListenerChannel and Listener: every throw or rejection of a user
// handler is reported exactly once — a HandlerError on 'error', or a process warning when
// nobody listens for 'error' or the failing handler is an 'error' handler — and the
// process never crashes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { HandlerError, Listener, MemoryTrustStore, Monitor, generateIdentity, type CribcallError, type ListenerChannel } from '../src/index.js'
import { channelMonitor, pairedListener } from './fake-monitor.js'
import { Harness, LOOPBACK, waitUntil, withTimeout } from './helpers.js'

let h: Harness
let cleanups: Array<() => Promise<unknown>>
let warnings: Error[]
let unhandled: unknown[]
const onWarning = (w: Error): void => void warnings.push(w)
const onUnhandled = (r: unknown): void => void unhandled.push(r)

beforeEach(() => {
  h = new Harness()
  cleanups = []
  warnings = []
  unhandled = []
  process.on('warning', onWarning)
  process.on('unhandledRejection', onUnhandled)
})
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined)
  await h.closeAll()
  process.off('warning', onWarning)
  process.off('unhandledRejection', onUnhandled)
})

/** Lets pending rejections, nextTick warnings and native events run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
}

const handlerWarnings = (): Error[] => warnings.filter((w) => w.name === 'HandlerError')

/** A fake monitor that closes its 1st connection with 5 busy and its 2nd with 2 UNAUTHORIZED. */
async function busyThenRevoked(): Promise<{ listener: Listener; monitorId: string }> {
  const id = generateIdentity()
  const fake = await channelMonitor(h, id.fingerprint, (ch, n) => void ch.close(n === 1 ? 5 : 2, n === 1 ? 'busy' : 'revoked'))
  const { listener } = await pairedListener(fake, id, { reconnect: { minDelayMs: 20, maxDelayMs: 100 } })
  cleanups.push(() => listener.close())
  return { listener, monitorId: fake.identity.deviceId }
}

describe('ListenerChannel handler failures', () => {
  it("throwing or rejecting 'connected', 'disconnected', 'reconnecting', 'close', 'message' handlers: one HandlerError each on 'error'", async () => {
    const { listener, monitorId } = await busyThenRevoked()
    const ch = listener.openChannel(monitorId)
    const emitted: Record<string, number> = {}
    const count = (event: string): void => void (emitted[event] = (emitted[event] ?? 0) + 1)
    const errors: CribcallError[] = []
    ch.on('error', (e) => void errors.push(e))
    ch.on('connected', () => {
      count('connected')
      throw new Error('connected handler broke')
    })
    ch.on('disconnected', async () => {
      count('disconnected')
      throw new Error('disconnected handler broke')
    })
    ch.on('reconnecting', () => {
      count('reconnecting')
      throw new Error('reconnecting handler broke')
    })
    ch.on('message', () => {
      count('message')
      return Promise.reject(new Error('message handler broke'))
    })
    ch.on('close', () => {
      count('close')
      throw new Error('close handler broke')
    })
    await withTimeout(ch.closed, 5000, 'the final close')
    await waitUntil(() => errors.length >= 5, 2000, 'the handler errors')
    await settle()
    // 2 connections (busy, then revoked): 2 × connected, 2 × disconnected, 1 × reconnecting, 1 × close.
    expect(emitted).toMatchObject({ connected: 2, disconnected: 2, reconnecting: 1, close: 1 })
    const byEvent: Record<string, number> = {}
    for (const e of errors) {
      expect(e).toBeInstanceOf(HandlerError)
      expect(e.code).toBe('ERR_HANDLER')
      expect((e as HandlerError).cause).toBeInstanceOf(Error)
      const ev = (e as HandlerError).event
      byEvent[ev] = (byEvent[ev] ?? 0) + 1
    }
    expect(byEvent).toEqual(emitted)
    expect(handlerWarnings()).toEqual([])
    expect(unhandled).toEqual([])
  })

  it("a throwing 'error' handler: exactly one process warning per failure, nothing else", async () => {
    const id = generateIdentity()
    const fake = await channelMonitor(h, id.fingerprint, () => undefined) // keeps the connection
    const { listener } = await pairedListener(fake, id)
    cleanups.push(() => listener.close())
    const ch = listener.openChannel(fake.identity.deviceId)
    let errorCalls = 0
    ch.on('error', () => {
      errorCalls++
      throw new Error('error handler broke')
    })
    ch.once('connected', () => {
      throw new Error('connected handler broke')
    })
    await waitUntil(() => handlerWarnings().length >= 1, 5000, 'the warning')
    await ch.close()
    await settle()
    expect(errorCalls).toBe(1)
    expect(handlerWarnings()).toHaveLength(1)
    const w = handlerWarnings()[0] as HandlerError
    expect(w).toBeInstanceOf(HandlerError)
    expect(w.event).toBe('error')
    expect(w.message).toMatch(/error handler broke/)
    expect(unhandled).toEqual([])
  })

  it("no 'error' listener: a throwing 'connected' handler becomes exactly one process warning", async () => {
    const { listener, monitorId } = await busyThenRevoked()
    const ch: ListenerChannel = listener.openChannel(monitorId)
    let calls = 0
    ch.once('connected', async () => {
      calls++
      throw new Error('connected handler broke')
    })
    await withTimeout(ch.closed, 5000, 'the final close')
    await waitUntil(() => handlerWarnings().length >= 1, 2000, 'the warning')
    await settle()
    expect(calls).toBe(1)
    expect(handlerWarnings()).toHaveLength(1)
    expect((handlerWarnings()[0] as HandlerError).event).toBe('connected')
    expect(unhandled).toEqual([])
  })
})

describe('Listener handler failures', () => {
  it("a throwing 'paired' handler is one HandlerError on the listener's 'error'; pairing still succeeds", async () => {
    const monitor = await Monitor.start({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), host: LOOPBACK, port: 0, name: 'Nursery' })
    monitor.on('error', () => undefined)
    cleanups.push(() => monitor.close())
    monitor.openPairing({ durationMs: 60_000 })
    const listener = new Listener({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), name: 'Phone' })
    cleanups.push(() => listener.close())
    const errors: CribcallError[] = []
    listener.on('error', (e) => void errors.push(e))
    listener.on('paired', () => {
      throw new Error('paired handler broke')
    })
    const entry = await listener.pairWithQr(monitor.pairingQrPayload(), { host: LOOPBACK, port: monitor.address.port, timeoutMs: 10_000 })
    expect(entry.deviceId).toBe(monitor.deviceId)
    await settle()
    expect(errors).toHaveLength(1)
    expect(errors[0]).toBeInstanceOf(HandlerError)
    expect((errors[0] as HandlerError).event).toBe('paired')
    expect(handlerWarnings()).toEqual([])
  })
})

// ListenerChannel's reconnect discipline: jittered exponential backoff after every close
// or failed dial (no storm against a monitor that accepts and closes), the failure count
// reset only after a healthy connection, options validated up front, and the
// classification of closes: a refusal (UNAUTHORIZED, refused certificate, changed
// monitor identity) ends the channel; busy, timeouts, resets and network errors do not.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import {
  CribcallError,
  HandshakeFailedError,
  HandshakeTimeoutError,
  IdleTimeoutError,
  InvalidArgumentError,
  Listener,
  ListenerChannel,
  MemoryTrustStore,
  PeerRejectedError,
  PinMismatchError,
  SocketError,
  generateIdentity,
  type CloseInfo,
  type ControlChannel,
  type TrustEntry,
} from '../src/index.js'
import {
  RECONNECT_DEFAULTS,
  isFinalClose,
  isFinalDialError,
  type DisconnectInfo,
  type ReconnectingInfo,
} from '../src/roles/listener.js'
import { backoffBase, backoffDelay, resolveReconnectOptions } from '../src/roles/reconnect.js'
import { channelMonitor, pairedListener, rawMonitor } from './fake-monitor.js'
import { Harness, sleep, waitUntil, withTimeout } from './helpers.js'

let h: Harness
let cleanups: Array<() => Promise<unknown>>

beforeEach(() => {
  h = new Harness()
  cleanups = []
})
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined)
  await h.closeAll()
})

interface Log {
  connected: number[]
  disconnected: DisconnectInfo[]
  reconnecting: ReconnectingInfo[]
  close: CloseInfo[]
  errors: CribcallError[]
}

function record(ch: ListenerChannel): Log {
  const log: Log = { connected: [], disconnected: [], reconnecting: [], close: [], errors: [] }
  ch.on('connected', (i) => void log.connected.push(i.attempt))
  ch.on('disconnected', (i) => void log.disconnected.push(i))
  ch.on('reconnecting', (i) => void log.reconnecting.push(i))
  ch.on('close', (i) => void log.close.push(i))
  ch.on('error', (e) => void log.errors.push(e))
  return log
}

/** Every reconnect delay lies in [base/2, base] for its failure count. */
function expectJitteredDelays(log: Log, options: Parameters<typeof resolveReconnectOptions>[0]): void {
  const o = resolveReconnectOptions(options)
  for (const r of log.reconnecting) {
    const base = backoffBase(Math.max(r.failures, 1), o)
    expect(r.delayMs, JSON.stringify(r)).toBeGreaterThanOrEqual(Math.floor(base / 2))
    expect(r.delayMs, JSON.stringify(r)).toBeLessThanOrEqual(base)
  }
}

async function listenerFor(monitor: Parameters<typeof pairedListener>[0], identity = generateIdentity(), reconnect?: ConstructorParameters<typeof Listener>[0]['reconnect']) {
  const l = await pairedListener(monitor, identity, reconnect === undefined ? {} : { reconnect })
  cleanups.push(() => l.listener.close())
  return l
}

describe('reconnect storm', () => {
  it('against a monitor that accepts and closes at once with 5 busy: ≤ 10 dials in 5 s, the channel stays open', async () => {
    const id = generateIdentity()
    const fake = await rawMonitor(h, id.fingerprint, (conn) => void conn.close(5, 'busy'))
    const { listener } = await listenerFor(fake, id) // default reconnect options
    const ch = listener.openChannel(fake.identity.deviceId)
    const log = record(ch)
    await sleep(5000) // the observation window of the requirement
    const dials = 1 + log.reconnecting.length
    console.log(`storm: ${dials} dials, ${fake.connections()} accepted, ${log.connected.length} 'connected', delays ${log.reconnecting.map((r) => r.delayMs).join(' ')} ms`)
    expect(fake.connections()).toBeLessThanOrEqual(10)
    expect(dials).toBeLessThanOrEqual(10)
    expect(fake.connections()).toBeGreaterThanOrEqual(3) // it kept trying
    expect(ch.isClosed).toBe(false)
    expect(log.close).toEqual([])
    expect(log.disconnected.every((d) => !d.final)).toBe(true)
    // The failure count grows with every close, connected or not.
    expect(log.reconnecting.map((r) => r.failures)).toEqual(log.reconnecting.map((_, i) => i + 1))
    expectJitteredDelays(log, undefined)
    await ch.close()
  })
})

describe('classification of closes', () => {
  it('a busy close (5) after readiness is transient; a later UNAUTHORIZED close (2) ends the channel', async () => {
    const id = generateIdentity()
    const fake = await channelMonitor(h, id.fingerprint, (ch, n) => void ch.close(n === 1 ? 5 : 2, n === 1 ? 'busy' : 'revoked'))
    const { listener } = await listenerFor(fake, id, { minDelayMs: 20, maxDelayMs: 100 })
    const ch = await listener.connect(fake.identity.deviceId)
    const log = record(ch)
    const info = await withTimeout(ch.closed, 5000, 'the final close')
    expect(info).toMatchObject({ code: 2, byPeer: true, application: true })
    expect(log.disconnected.map((d) => [d.code, d.final])).toEqual([
      [5, false],
      [2, true],
    ])
    expect(log.reconnecting).toHaveLength(1)
    expect(log.connected).toEqual([2])
    expect(log.close).toHaveLength(1)
    expect(fake.connections()).toBe(2)
  })

  it('a monitor that closes every connection at once with 2 UNAUTHORIZED ends the channel after one dial', async () => {
    const id = generateIdentity()
    const fake = await rawMonitor(h, id.fingerprint, (conn) => void conn.close(2, 'not paired'))
    const { listener } = await listenerFor(fake, id, { minDelayMs: 20, maxDelayMs: 100 })
    const ch = listener.openChannel(fake.identity.deviceId)
    const log = record(ch)
    await withTimeout(ch.closed, 5000, 'the final close')
    expect(log.reconnecting).toEqual([])
    expect(fake.connections()).toBe(1)
    expect(ch.isClosed).toBe(true)
  })

  const entry: TrustEntry = {
    deviceId: '6f9619ff-8b86-4011-b42d-00c04fc964ff',
    name: 'M',
    fingerprint: 'a'.repeat(64),
    publicKey: 'AAAA',
    role: 'monitor',
    pairedAt: 1,
  }
  const reset = new CribcallError('ERR_CONNECTION_RESET', 'stateless reset')
  const transient: Array<[string, CribcallError]> = [
    ['busy (5) during the handshake, old addon', new PeerRejectedError('the server closed the connection during the handshake (code 5): busy')],
    ['busy (5) during the handshake, new addon', new HandshakeFailedError('the server closed the connection during the handshake (code 5): busy')],
    ['handshake timeout', new HandshakeTimeoutError()],
    ['idle timeout', new IdleTimeoutError()],
    ['stateless reset', reset],
    ['socket error', new SocketError()],
  ]
  for (const [what, error] of transient) {
    it(`a failed dial is transient: ${what}`, async () => {
      expect(isFinalDialError(error)).toBe(false)
      let dials = 0
      const ch = new ListenerChannel(entry, { dial: () => (dials++, Promise.reject(error)), reconnect: { minDelayMs: 1, maxDelayMs: 4 } })
      const log = record(ch)
      const started = ch.start()
      started.catch(() => undefined)
      await waitUntil(() => log.reconnecting.length >= 3, 2000, 'three reconnects')
      expect(ch.isClosed).toBe(false)
      expect(log.reconnecting[0]?.error).toBe(error)
      expect(log.errors).toEqual([])
      await ch.close()
      expect(dials).toBeGreaterThanOrEqual(3)
    })
  }

  const final: Array<[string, CribcallError]> = [
    ['TLS refusal of our certificate', new PeerRejectedError('the server refused our certificate (TLS alert 49 access_denied)')],
    ['UNAUTHORIZED (2) during the handshake', new PeerRejectedError('the server closed the connection during the handshake (code 2): UNAUTHORIZED')],
    ['changed monitor identity', new PinMismatchError('a'.repeat(64), 'b'.repeat(64))],
  ]
  for (const [what, error] of final) {
    it(`a failed dial is final: ${what}`, async () => {
      expect(isFinalDialError(error)).toBe(true)
      let dials = 0
      const ch = new ListenerChannel(entry, { dial: () => (dials++, Promise.reject(error)), reconnect: { minDelayMs: 1, maxDelayMs: 4 } })
      const log = record(ch)
      await expect(ch.start()).rejects.toBe(error)
      expect(ch.isClosed).toBe(true)
      expect(dials).toBe(1)
      expect(log.reconnecting).toEqual([])
      expect(log.errors).toEqual([error])
      expect(log.close).toHaveLength(1)
      expect(log.close[0]?.errorCode).toBe(error.code)
    })
  }

  /** A connection that is up, then closes with `info` at once (no network). */
  const closingStub = (info: CloseInfo): ControlChannel =>
    ({ closed: Promise.resolve(info), isClosed: false, on: () => undefined, close: () => Promise.resolve(info) }) as unknown as ControlChannel
  const transientCloses: Array<[string, CloseInfo]> = [
    ['5 busy', { code: 5, reason: 'busy', byPeer: true, application: true }],
    ['0 OK (monitor going away)', { code: 0, reason: 'endpoint closed', byPeer: true, application: true }],
    ['idle timeout', { code: 0, reason: 'idle timeout', byPeer: false, application: false, errorCode: 'ERR_IDLE_TIMEOUT' }],
    ['stateless reset', { code: 0, reason: 'stateless reset', byPeer: true, application: false, errorCode: 'ERR_CONNECTION_RESET' }],
    ['transport error 2', { code: 2, reason: 'internal', byPeer: true, application: false }],
  ]
  for (const [what, info] of transientCloses) {
    it(`a close after readiness is transient: ${what}`, async () => {
      const ch = new ListenerChannel(entry, { dial: () => Promise.resolve(closingStub(info)), reconnect: { minDelayMs: 1, maxDelayMs: 4 } })
      const log = record(ch)
      await ch.start()
      await waitUntil(() => log.reconnecting.length >= 3, 2000, 'three reconnects')
      expect(ch.isClosed).toBe(false)
      expect(log.disconnected.every((d) => d.final === false && d.code === info.code)).toBe(true)
      expect(log.reconnecting.map((r) => r.failures).slice(0, 3)).toEqual([1, 2, 3])
      await ch.close()
    })
  }

  it('a close after readiness is final: the monitor closes with 2 UNAUTHORIZED', async () => {
    const info: CloseInfo = { code: 2, reason: 'revoked', byPeer: true, application: true }
    const ch = new ListenerChannel(entry, { dial: () => Promise.resolve(closingStub(info)), reconnect: { minDelayMs: 1, maxDelayMs: 4 } })
    const log = record(ch)
    await ch.start()
    expect(await withTimeout(ch.closed, 2000, 'the close')).toEqual(info)
    expect(log.disconnected).toEqual([{ ...info, final: true }])
    expect(log.reconnecting).toEqual([])
    expect(log.errors).toEqual([])
  })

  it('isFinalClose: only a peer application close with 2', () => {
    const base = { reason: '', byPeer: true, application: true }
    expect(isFinalClose({ ...base, code: 2 })).toBe(true)
    expect(isFinalClose({ ...base, code: 5 })).toBe(false)
    expect(isFinalClose({ ...base, code: 0 })).toBe(false)
    expect(isFinalClose({ ...base, code: 2, byPeer: false })).toBe(false)
    expect(isFinalClose({ ...base, code: 2, application: false })).toBe(false) // transport error 2 (INTERNAL_ERROR)
    expect(isFinalClose({ code: 0, reason: 'idle', byPeer: false, application: false, errorCode: 'ERR_IDLE_TIMEOUT' })).toBe(false)
    expect(isFinalClose({ ...base, code: 2, errorCode: 'ERR_CONNECTION_RESET' })).toBe(false) // a stateless reset is never a refusal
    expect(isFinalClose({ code: 0, reason: 'stateless reset', byPeer: true, application: false, errorCode: 'ERR_CONNECTION_RESET' })).toBe(false)
  })

  it('maxAttempts: gives up after that many consecutive failures (start() rejects, close says why)', async () => {
    const error = new HandshakeTimeoutError()
    const ch = new ListenerChannel(entry, { dial: () => Promise.reject(error), reconnect: { minDelayMs: 1, maxDelayMs: 2, maxAttempts: 3 } })
    const log = record(ch)
    await expect(ch.start()).rejects.toBe(error)
    expect(log.reconnecting.map((r) => r.attempt)).toEqual([2, 3])
    expect(log.close[0]).toMatchObject({ errorCode: 'ERR_HANDSHAKE_TIMEOUT', byPeer: false })
    expect(log.close[0]?.reason).toMatch(/gave up after 3 attempts/)
  })
})

describe('the failure count resets only after a healthy connection', () => {
  it('connections shorter than healthyAfterMs keep growing the backoff; a longer one resets it', async () => {
    const reconnect = { minDelayMs: 40, maxDelayMs: 5000, healthyAfterMs: 300 }
    // How long the fake keeps each connection after the listener's first message.
    const holdMs = [0, 0, 120, 500, 0, 0]
    const id = generateIdentity()
    const fake = await channelMonitor(h, id.fingerprint, (ch, n) => {
      const hold = holdMs[n - 1]
      if (hold !== undefined) setTimeout(() => void ch.close(5, 'busy'), hold)
    })
    const { listener } = await listenerFor(fake, id, reconnect)
    const ch = await listener.connect(fake.identity.deviceId)
    const log = record(ch)
    await waitUntil(() => log.reconnecting.length >= holdMs.length, 10_000, 'all scripted connections to close')
    // Up 0, 0, 120 ms: unhealthy (1, 2, 3); up 500 ms ≥ 300: healthy, the count restarts (0); then 1, 2.
    expect(log.reconnecting.slice(0, 6).map((r) => r.failures)).toEqual([1, 2, 3, 0, 1, 2])
    expectJitteredDelays(log, reconnect)
    expect(log.reconnecting[3]?.delayMs).toBeLessThanOrEqual(reconnect.minDelayMs) // first reconnect after a healthy connection
    expect(ch.isClosed).toBe(false)
  })
})

describe('options', () => {
  it('defaults: 250 ms … 5 s, healthy after 10 s, never give up; jitter in [base/2, base]', () => {
    expect(RECONNECT_DEFAULTS).toEqual({ minDelayMs: 250, maxDelayMs: 5000, maxAttempts: Number.POSITIVE_INFINITY, healthyAfterMs: 10_000 })
    const o = resolveReconnectOptions(undefined)
    expect([1, 2, 3, 4, 5, 6, 7, 40].map((f) => backoffBase(f, o))).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000, 5000])
    expect(backoffDelay(1, o, () => 0)).toBe(125)
    expect(backoffDelay(1, o, () => 0.999999)).toBe(250)
    expect(backoffDelay(9, o, () => 0)).toBe(2500)
  })

  const bad: Array<[string, unknown]> = [
    ['not an object', 5],
    ['minDelayMs 0', { minDelayMs: 0 }],
    ['minDelayMs not an integer', { minDelayMs: 1.5 }],
    ['minDelayMs a string', { minDelayMs: '250' }],
    ['maxDelayMs below minDelayMs', { minDelayMs: 500, maxDelayMs: 100 }],
    ['maxDelayMs beyond a timer', { maxDelayMs: 2 ** 31 }],
    ['healthyAfterMs negative', { healthyAfterMs: -1 }],
    ['maxAttempts 0', { maxAttempts: 0 }],
    ['maxAttempts NaN', { maxAttempts: Number.NaN }],
  ]
  for (const [what, reconnect] of bad) {
    it(`new Listener rejects reconnect: ${what} (ERR_INVALID_ARG)`, () => {
      let error: unknown
      try {
        new Listener({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), reconnect: reconnect as never })
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(InvalidArgumentError)
      expect((error as InvalidArgumentError).code).toBe('ERR_INVALID_ARG')
    })
  }

  it('accepts minDelayMs above the default cap (the cap follows it) and maxAttempts Infinity', () => {
    expect(resolveReconnectOptions({ minDelayMs: 8000 })).toMatchObject({ minDelayMs: 8000, maxDelayMs: 8000 })
    expect(resolveReconnectOptions({ maxAttempts: Number.POSITIVE_INFINITY, healthyAfterMs: 0 })).toMatchObject({ healthyAfterMs: 0 })
  })
})

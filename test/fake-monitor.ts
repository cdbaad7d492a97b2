// Fake monitors for the listener tests: a raw Endpoint (optionally with a ControlChannel
// on each connection) that knows the listener's fingerprint, plus a Listener whose trust
// store already holds the fake monitor as paired.
import {
  ControlChannel,
  Listener,
  MemoryTrustStore,
  generateIdentity,
  type Connection,
  type EndpointOptions,
  type Identity,
  type ListenerOptions,
  type TrustEntry,
} from '../src/index.js'
import { LOOPBACK, type Harness } from './helpers.js'

export interface FakeMonitor {
  readonly identity: Identity
  readonly port: number
  /** How many connections the fake accepted so far (each is one successful dial). */
  readonly connections: () => number
}

/**
 * A monitor made of a raw Endpoint: it admits only `listenerFingerprint` (a paired
 * listener) and hands each accepted connection, numbered from 1, to `onConnection`.
 */
export async function rawMonitor(
  h: Harness,
  listenerFingerprint: string,
  onConnection: (conn: Connection, n: number) => void,
  options: Partial<EndpointOptions> = {},
): Promise<FakeMonitor> {
  const identity = generateIdentity()
  const endpoint = await h.bind(identity, options)
  endpoint.on('error', () => undefined)
  endpoint.setKnownPeers([listenerFingerprint])
  endpoint.listen()
  let n = 0
  endpoint.on('connection', (conn) => {
    conn.on('error', () => undefined)
    onConnection(conn, ++n)
  })
  return { identity, port: endpoint.address.port, connections: () => n }
}

/**
 * A monitor whose connections are trusted ControlChannels; `onReady` runs when the
 * listener's first message (its PING, sent once the listener is connected) arrives.
 */
export async function channelMonitor(
  h: Harness,
  listenerFingerprint: string,
  onReady: (ch: ControlChannel, n: number) => void,
): Promise<FakeMonitor> {
  return rawMonitor(h, listenerFingerprint, (conn, n) => {
    const ch = ControlChannel.accept(conn, { trust: 'trusted' })
    ch.on('error', () => undefined)
    ch.once('message', () => onReady(ch, n))
  })
}

/** A Listener (fresh identity unless given) whose trust store holds `monitor` as paired at 127.0.0.1. */
export async function pairedListener(
  monitor: Pick<FakeMonitor, 'identity' | 'port'>,
  identity: Identity,
  options: Partial<ListenerOptions> = {},
): Promise<{ listener: Listener; store: MemoryTrustStore; entry: TrustEntry }> {
  const store = new MemoryTrustStore()
  const entry: TrustEntry = {
    deviceId: monitor.identity.deviceId,
    name: 'Fake monitor',
    fingerprint: monitor.identity.fingerprint,
    publicKey: monitor.identity.publicKey,
    role: 'monitor',
    pairedAt: Date.now(),
    lastAddress: `${LOOPBACK}:${monitor.port}`,
  }
  await store.put(entry)
  const listener = new Listener({ identity, trustStore: store, name: 'Test listener', endpoint: { handshakeTimeoutMs: 3000 }, ...options })
  return { listener, store, entry }
}

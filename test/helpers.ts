import { createSocket, type Socket } from 'node:dgram'

import { afterEach } from 'vitest'

import {
  Endpoint,
  generateIdentity,
  type CloseInfo,
  type Connection,
  type EndpointOptions,
  type Identity,
  type KeyType,
} from '../src/index.js'

/**
 * The protocol brief's PING example payload. Its body bytes (as listed in the brief) are
 * these 31 bytes, so the frame header is 00 00 00 1f; the brief's "33 bytes" / header
 * 00 00 00 21 is an erratum inherited from v0.2 (see native/core/src/framing.rs).
 */
export const PING = Buffer.from('{"type":"PING","timestamp":123}', 'utf8')

export const LOOPBACK = '127.0.0.1'

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Rejects after `ms` with a message naming what was awaited. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Polls `predicate` until it holds; rejects with `what` after `ms`. */
export async function waitUntil(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(5)
  }
}

/** Settles to the rejection reason (or fails the test if the promise fulfils). */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    const value = await promise
    throw new Error(`expected a rejection, got ${String(value)}`)
  } catch (error) {
    return error
  }
}

export function nextFrame(conn: Connection, ms = 5000): Promise<Buffer> {
  return withTimeout(
    new Promise<Buffer>((resolve) => {
      conn.once('frame', resolve)
    }),
    ms,
    `a frame on connection ${conn.connId} (${conn.role})`,
  )
}

/** The next 'close' of `conn`; rejects after `ms`. */
export function closeEvent(conn: Connection, ms = 5000): Promise<CloseInfo> {
  return withTimeout(
    new Promise<CloseInfo>((resolve) => {
      conn.once('close', resolve)
    }),
    ms,
    `'close' on connection ${conn.connId} (${conn.role})`,
  )
}

export function nextConnection(endpoint: Endpoint, ms = 5000): Promise<Connection> {
  return withTimeout(
    new Promise<Connection>((resolve) => {
      endpoint.once('connection', resolve)
    }),
    ms,
    "the server's 'connection' event",
  )
}

/** Binds endpoints on loopback and closes all of them when disposed. */
export class Harness {
  readonly endpoints: Endpoint[] = []

  async bind(identity: Identity, options: Partial<EndpointOptions> = {}): Promise<Endpoint> {
    const endpoint = await Endpoint.bind({ host: LOOPBACK, port: 0, identity, ...options })
    this.endpoints.push(endpoint)
    return endpoint
  }

  async closeAll(): Promise<void> {
    const all = this.endpoints.splice(0)
    await Promise.all(all.map((endpoint) => endpoint.close()))
  }
}

/**
 * A Harness for the tests of the calling file (call it once, at the top level): every
 * endpoint a test binds through it is closed after that test.
 */
export function harnessPerTest(): Harness {
  const h = new Harness()
  afterEach(async () => {
    await h.closeAll()
  })
  return h
}

export interface Pair {
  serverId: Identity
  clientId: Identity
  server: Endpoint
  client: Endpoint
  /** client side */
  conn: Connection
  /** server side */
  sconn: Connection
}

/** A server (acceptUnknown) and a client connected with the correct pin. */
export async function connectedPair(
  h: Harness,
  opts: {
    serverKey?: KeyType
    clientKey?: KeyType
    server?: Partial<EndpointOptions>
    client?: Partial<EndpointOptions>
  } = {},
): Promise<Pair> {
  const serverId = generateIdentity({ keyType: opts.serverKey ?? 'p256' })
  const clientId = generateIdentity({ keyType: opts.clientKey ?? 'p256' })
  const server = await h.bind(serverId, opts.server)
  const client = await h.bind(clientId, opts.client)
  server.listen({ acceptUnknown: true })
  const incoming = nextConnection(server)
  const conn = await client.connect({ host: LOOPBACK, port: server.address.port, serverFingerprint: serverId.fingerprint })
  const sconn = await incoming
  return { serverId, clientId, server, client, conn, sconn }
}

/** A UDP socket that receives and never answers (a "silent" peer). */
export async function silentUdpPeer(): Promise<{ socket: Socket; port: number; received: () => number }> {
  const socket = createSocket('udp4')
  let count = 0
  socket.on('message', () => {
    count++
  })
  await new Promise<void>((resolve) => socket.bind(0, LOOPBACK, resolve))
  return { socket, port: socket.address().port, received: () => count }
}

/** A UDP port on loopback where nothing listens (bound once, then released). */
export async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, LOOPBACK, resolve))
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(() => resolve()))
  return port
}

export function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()))
}

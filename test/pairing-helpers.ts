// Shared by the pairing test files (pairing*.test.ts): a monitor and listeners over real
// loopback QUIC, cleaned up after each test, raw pairing-only channels, and the PIN
// (CPace) steps of a listener written out by hand.
import { afterEach } from 'vitest'

import {
  ControlChannel,
  Endpoint,
  Listener,
  MemoryTrustStore,
  Monitor,
  generateIdentity,
  respondPin,
  transcriptBytes,
  type Identity,
  type Message,
  type MonitorOptions,
  type PinRequiredMessage,
  type PinSessionInfo,
  type PinTranscriptObject,
  type TrustEntry,
} from '../src/index.js'
import { Harness, LOOPBACK, waitUntil, withTimeout } from './helpers.js'

export interface MonitorSetup {
  monitor: Monitor
  identity: Identity
  store: MemoryTrustStore
}

export interface ListenerSetup {
  listener: Listener
  identity: Identity
  store: MemoryTrustStore
}

/** What the pairing tests bind and start; everything is closed after each test. */
export interface PairingHarness {
  readonly h: Harness
  startMonitor(options?: Partial<MonitorOptions>): Promise<MonitorSetup>
  newListener(name?: string): ListenerSetup
  /** A raw pairing-only channel to the monitor with a fresh (or given) identity. */
  rawPairingChannel(
    monitor: Monitor,
    identity?: Identity,
  ): Promise<{ ch: ControlChannel; identity: Identity; box: ReturnType<typeof inbox>; endpoint: Endpoint }>
  /** Pairs a fresh listener by QR; returns both sides. */
  pairByQr(m: MonitorSetup): Promise<ListenerSetup & { entry: TrustEntry }>
}

/**
 * Call once at the top level of a test file: after each test, the monitors and listeners it
 * started are closed (newest first), then every endpoint it bound.
 */
export function usePairingHarness(): PairingHarness {
  const h = new Harness()
  const cleanups: Array<() => Promise<unknown>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined)
    await h.closeAll()
  })

  async function startMonitor(options: Partial<MonitorOptions> = {}): Promise<MonitorSetup> {
    const identity = options.identity ?? generateIdentity()
    const store = (options.trustStore as MemoryTrustStore | undefined) ?? new MemoryTrustStore()
    const monitor = await Monitor.start({ host: LOOPBACK, port: 0, name: 'Nursery', ...options, identity, trustStore: store })
    // Errors the monitor reports are expected in several tests (failed attempts); keep them off stderr.
    monitor.on('error', () => undefined)
    cleanups.push(() => monitor.close())
    return { monitor, identity, store }
  }

  function newListener(name = 'Parent phone'): ListenerSetup {
    const identity = generateIdentity()
    const store = new MemoryTrustStore()
    const listener = new Listener({
      identity,
      trustStore: store,
      name,
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
      endpoint: { handshakeTimeoutMs: 3000 },
    })
    cleanups.push(() => listener.close())
    return { listener, identity, store }
  }

  async function rawPairingChannel(
    monitor: Monitor,
    identity: Identity = generateIdentity(),
  ): Promise<{ ch: ControlChannel; identity: Identity; box: ReturnType<typeof inbox>; endpoint: Endpoint }> {
    const endpoint = await h.bind(identity)
    const ch = await ControlChannel.connect(endpoint, {
      host: LOOPBACK,
      port: monitor.address.port,
      serverFingerprint: monitor.fingerprint,
      trust: 'pairing-only',
    })
    return { ch, identity, box: inbox(ch), endpoint }
  }

  async function pairByQr(m: MonitorSetup): Promise<ListenerSetup & { entry: TrustEntry }> {
    const l = newListener()
    m.monitor.openPairing()
    const entry = await l.listener.pairWithQr(m.monitor.pairingQrPayload(), { host: LOOPBACK })
    // The listener hangs up the pairing channel afterwards; let the monitor see that.
    await waitUntil(() => m.monitor.channels.length === 0, 3000, 'the monitor to drop the pairing channel')
    return { ...l, entry }
  }

  return { h, startMonitor, newListener, rawPairingChannel, pairByQr }
}

/** Records the PINs the monitor shows (onPin) and the public session info. */
export function pinRecorder(): {
  onPin: (pin: string, session: Omit<PinSessionInfo, 'pin'>) => void
  pins: string[]
  sessions: Array<Omit<PinSessionInfo, 'pin'>>
  last: () => string
} {
  const pins: string[] = []
  const sessions: Array<Omit<PinSessionInfo, 'pin'>> = []
  return {
    onPin: (pin, session) => {
      pins.push(pin)
      sessions.push(session)
    },
    pins,
    sessions,
    last: () => {
      const p = pins.at(-1)
      if (p === undefined) throw new Error('the monitor showed no PIN yet')
      return p
    },
  }
}

/** A different 6-digit PIN. */
export function wrongPin(pin: string, k = 1): string {
  return String((Number(pin) + k) % 1_000_000).padStart(6, '0')
}

/** Collects every accepted message of a channel; next() waits for the next unread one. */
export function inbox(ch: ControlChannel): { next: (ms?: number) => Promise<Message>; all: Message[] } {
  const all: Message[] = []
  let read = 0
  let wake: (() => void) | undefined
  ch.on('message', (m) => {
    all.push(m)
    wake?.()
  })
  ch.on('error', () => undefined)
  return {
    all,
    next: (ms = 5000) =>
      withTimeout(
        (async () => {
          while (read >= all.length) await new Promise<void>((r) => (wake = r))
          return all[read++] as Message
        })(),
        ms,
        'the next message',
      ),
  }
}

export async function pinInit(ch: ControlChannel, box: ReturnType<typeof inbox>, identity: Identity): Promise<Message> {
  ch.send({
    type: 'PIN_PAIRING_INIT',
    listenerId: identity.deviceId,
    listenerName: 'raw listener',
    protocolVersion: 1,
    listenerCertFingerprint: identity.fingerprint,
  })
  return box.next()
}

export function honestTranscript(ch: ControlChannel, req: PinRequiredMessage, identity: Identity): PinTranscriptObject {
  return {
    monitorId: req.monitorId,
    listenerId: identity.deviceId,
    listenerPublicKey: identity.publicKey,
    listenerCertFingerprint: identity.fingerprint,
    monitorCertFingerprint: ch.peerFingerprint,
    pairingSessionId: req.pairingSessionId,
  }
}

/** Sends a PIN_SUBMIT computed honestly with `pin` (CPace with the TLS-observed fingerprints). */
export function submitPin(
  ch: ControlChannel,
  req: PinRequiredMessage,
  identity: Identity,
  pin: string,
  transcript: PinTranscriptObject = honestTranscript(ch, req, identity),
): { monitorTag: Buffer } {
  const r = respondPin(
    pin,
    req.pairingSessionId,
    ch.peerFingerprint,
    identity.fingerprint,
    Buffer.from(req.pakeMsgA, 'base64'),
    transcriptBytes(transcript),
  )
  ch.send({
    type: 'PIN_SUBMIT',
    pairingSessionId: req.pairingSessionId,
    pakeMsgB: r.share.toString('base64'),
    transcript,
    authTag: r.listenerTag.toString('base64'),
  })
  return { monitorTag: r.monitorTag }
}

export function asPinRequired(m: Message): PinRequiredMessage {
  if (m.type !== 'PIN_REQUIRED') throw new Error(`expected PIN_REQUIRED, got ${JSON.stringify(m)}`)
  return m
}

export function nextEvent<A extends unknown[]>(
  emitter: { once: (event: never, listener: (...args: A) => unknown) => unknown },
  event: string,
  ms = 5000,
): Promise<A> {
  return withTimeout(
    new Promise<A>((resolve) => {
      ;(emitter.once as (e: string, l: (...args: A) => unknown) => unknown)(event, (...args: A) => resolve(args))
    }),
    ms,
    `'${event}'`,
  )
}

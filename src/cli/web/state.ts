// What the web console shows, kept from the monitor's events: the pairing window, the
// PIN of the running PIN session (only while it runs), the approval requests waiting,
// the paired listeners with their live state and last delivery, and the NOISE_EVENTs of
// the last 10 minutes. Changes are announced (coalesced) to the SSE streams.
import { randomUUID } from 'node:crypto'
import { networkInterfaces } from 'node:os'
import type { Approvals } from '../approvals.js'
import type { Monitor, MonitorEvents, NoiseBroadcastReport, NoiseOutcome, PairingRequestInfo, PinSessionInfo } from '../../index.js'

/** NOISE_EVENTs older than this leave the chart. */
export const NOISE_HISTORY_MS = 10 * 60_000
/** At most this many NOISE_EVENTs are kept for the chart. */
export const NOISE_HISTORY_MAX = 10_000

export type PairMode = 'qr' | 'pin' | 'both' | 'off'

export interface NoisePoint {
  readonly timestamp: number
  readonly peakLevel: number
  /** Listeners it was queued for. */
  readonly delivered: number
  /** Paired listeners (connected or not) the report names. */
  readonly paired: number
}

interface PinShown {
  readonly pin: string
  readonly expiresAt: number
  readonly listenerName: string
  readonly listenerFingerprint: string
  readonly maxAttempts: number
  failures: number
  readonly timer: NodeJS.Timeout
}

export interface ConsoleStateOptions {
  readonly monitor: Monitor
  readonly approvals: Approvals
  readonly name: string
  readonly pairMode: PairMode
  readonly pairMinutes: number
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/** This machine's non-internal addresses (what listeners on the LAN use when the monitor binds a wildcard). */
function lanAddresses(host: string, port: number): string[] {
  if (host !== '0.0.0.0' && host !== '::') return [hostPort(host, port)]
  const out: string[] = []
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal || (host === '0.0.0.0' && a.family !== 'IPv4') || a.address.startsWith('fe80:')) continue
      out.push(hostPort(a.address, port))
    }
  }
  return out
}

export class ConsoleState {
  readonly #o: ConsoleStateOptions
  readonly #monitor: Monitor
  #window: { until: number; allowQr: boolean; allowPin: boolean } | undefined
  /** Bumped each time the window opens: each opening has a new QR secret. */
  #qrVersion = 0
  #pin: PinShown | undefined
  readonly #since = new WeakMap<PairingRequestInfo, number>()
  #noise: NoisePoint[] = []
  readonly #delivery = new Map<string, { outcome: NoiseOutcome; timestamp: number; peakLevel: number }>()
  readonly #changeSubs = new Set<() => void>()
  readonly #noiseSubs = new Set<(p: NoisePoint) => void>()
  #scheduled = false
  /** Numbers the snapshots in the order they were taken (see `snapshot`). */
  #version = 0
  readonly #epoch = randomUUID()
  readonly #unsubscribe: Array<() => void> = []

  constructor(o: ConsoleStateOptions) {
    this.#o = o
    this.#monitor = o.monitor
    const m = o.monitor
    const on = <K extends keyof MonitorEvents>(event: K, fn: (...args: MonitorEvents[K]) => void): void => {
      m.on(event, fn)
      this.#unsubscribe.push(() => m.off(event, fn))
    }
    const changed = (): void => this.changed()
    on('pairing-opened', ({ until, allowQr, allowPin }) => {
      this.#window = { until, allowQr, allowPin }
      this.#qrVersion++
      this.changed()
    })
    on('pairing-closed', () => {
      this.#window = undefined
      this.#clearPin()
      this.changed()
    })
    on('listener-disconnected', ({ channel }) => {
      if (this.#pin?.listenerFingerprint === channel.peerFingerprint) this.#clearPin()
      this.changed()
    })
    on('pairing-failed', ({ method, fingerprint }) => {
      const p = this.#pin
      if (method === 'pin' && p !== undefined && p.listenerFingerprint === fingerprint && ++p.failures >= p.maxAttempts) this.#clearPin()
      this.changed()
    })
    on('paired', ({ method, entry }) => {
      if (method === 'pin' && this.#pin?.listenerFingerprint === entry.fingerprint) this.#clearPin()
      this.changed()
    })
    on('listener-connected', changed)
    on('revoked', changed)
    m.trustStore.on('change', changed)
    this.#unsubscribe.push(() => m.trustStore.off('change', changed))
  }

  get qrVersion(): number {
    return this.#qrVersion
  }

  /** A QR code can be shown: the window is open and allows QR pairing. */
  get qrAvailable(): boolean {
    return this.#window !== undefined && this.#window.allowQr && this.#monitor.isPairingOpen
  }

  onChange(fn: () => void): () => void {
    this.#changeSubs.add(fn)
    return () => this.#changeSubs.delete(fn)
  }

  onNoise(fn: (p: NoisePoint) => void): () => void {
    this.#noiseSubs.add(fn)
    return () => this.#noiseSubs.delete(fn)
  }

  /** Announces a change once per turn of the event loop, however many happened. */
  changed(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      for (const fn of this.#changeSubs) fn()
    })
  }

  /** The monitor showed a PIN (its `onPin`). */
  pinShown(pin: string, session: Omit<PinSessionInfo, 'pin'>): void {
    this.#clearPin()
    const timer = setTimeout(() => {
      this.#pin = undefined
      this.changed()
    }, Math.max(0, session.expiresAt - Date.now()))
    timer.unref()
    this.#pin = {
      pin,
      expiresAt: session.expiresAt,
      listenerName: session.listenerName,
      listenerFingerprint: session.listenerFingerprint,
      maxAttempts: session.maxAttempts,
      failures: 0,
      timer,
    }
    this.changed()
  }

  /** A pairing request waits for the operator; `answer` settles when it is answered or moot. */
  requested(info: PairingRequestInfo, answer: Promise<boolean>): void {
    this.#since.set(info, Date.now())
    // A PIN request comes once the PIN was confirmed: the PIN session is over.
    if (info.method === 'pin' && this.#pin?.listenerFingerprint === info.fingerprint) this.#clearPin()
    this.changed()
    void answer.finally(() => this.changed())
  }

  /** A NOISE_EVENT was broadcast. */
  noiseSent(peakLevel: number, report: NoiseBroadcastReport): void {
    const point: NoisePoint = { timestamp: report.timestamp, peakLevel, delivered: report.delivered, paired: report.listeners.length }
    this.#noise.push(point)
    this.#prune()
    for (const l of report.listeners) this.#delivery.set(l.deviceId, { outcome: l.outcome, timestamp: report.timestamp, peakLevel })
    for (const fn of this.#noiseSubs) fn(point)
    this.changed()
  }

  /** The NOISE_EVENTs of the last 10 minutes, oldest first. */
  noiseHistory(): readonly NoisePoint[] {
    this.#prune()
    return this.#noise
  }

  /**
   * Everything the page shows except the noise history. Holds no key, no pairing secret;
   * the PIN only while its session runs. Each snapshot carries `version`, increasing in
   * the order snapshots are taken (within one `epoch`, i.e. one run of the agent): the
   * page gets snapshots over two connections (the event stream and the replies to its
   * POSTs) that may arrive out of order, and must never show an older one over a newer.
   */
  snapshot(): Record<string, unknown> {
    const m = this.#monitor
    const { host, port } = m.address
    const live = new Set(m.channels.filter((c) => c.trust === 'trusted' && !c.isClosed).map((c) => c.peerFingerprint))
    const w = this.#window !== undefined && m.isPairingOpen ? this.#window : undefined
    const pin = this.#pin !== undefined && this.#pin.expiresAt > Date.now() ? this.#pin : undefined
    return {
      epoch: this.#epoch,
      version: ++this.#version,
      now: Date.now(),
      monitor: { name: this.#o.name, deviceId: m.deviceId, fingerprint: m.fingerprint, address: hostPort(host, port), reachableAt: lanAddresses(host, port) },
      pairing: {
        mode: this.#o.pairMode,
        defaultMinutes: this.#o.pairMinutes,
        open: w !== undefined,
        until: w?.until ?? null,
        allowQr: w?.allowQr ?? false,
        allowPin: w?.allowPin ?? false,
        qrVersion: w?.allowQr === true ? this.#qrVersion : null,
      },
      pin: pin === undefined ? null : { pin: pin.pin, expiresAt: pin.expiresAt, listenerName: pin.listenerName },
      requests: this.#o.approvals.pending.map((r) => ({
        listenerId: r.listenerId,
        name: r.listenerName,
        fingerprint: r.fingerprint,
        method: r.method,
        address: hostPort(r.remoteAddress.host, r.remoteAddress.port),
        legacy: r.legacyQr,
        since: this.#since.get(r) ?? null,
      })),
      listeners: m.trustStore
        .list()
        .filter((e) => e.role === 'listener')
        .map((e) => ({
          deviceId: e.deviceId,
          name: e.name,
          fingerprint: e.fingerprint,
          pairedAt: e.pairedAt,
          lastSeenAt: e.lastSeenAt ?? null,
          lastAddress: e.lastAddress ?? null,
          connected: live.has(e.fingerprint),
          delivery: this.#delivery.get(e.deviceId) ?? null,
        })),
    }
  }

  close(): void {
    this.#clearPin()
    for (const u of this.#unsubscribe) u()
    this.#changeSubs.clear()
    this.#noiseSubs.clear()
  }

  #clearPin(): void {
    if (this.#pin === undefined) return
    clearTimeout(this.#pin.timer)
    this.#pin = undefined
    this.changed()
  }

  #prune(): void {
    const cutoff = Date.now() - NOISE_HISTORY_MS
    let drop = 0
    while (drop < this.#noise.length && (this.#noise[drop] as NoisePoint).timestamp < cutoff) drop++
    drop = Math.max(drop, this.#noise.length - NOISE_HISTORY_MAX)
    if (drop > 0) this.#noise = this.#noise.slice(drop)
  }
}

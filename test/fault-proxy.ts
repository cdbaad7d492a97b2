// A seeded UDP fault proxy (node:dgram) for the soak test: one listener's path to the
// monitor as a lossy NAT would make it — loss, reordering, duplication, and rebinding of
// the listener's mapping (a new port or a new address).
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'

import { LOOPBACK } from './helpers.js'

/** What the proxy does to datagrams, each direction with its own seeded generator. */
export interface Faults {
  /** Probability that a datagram is dropped. */
  readonly loss: number
  /** Probability that a datagram is held back and released after the next one. */
  readonly reorder: number
  /** Probability that a datagram is sent twice. */
  readonly duplicate: number
  /** The mapping rebinds every this many ms (startRebinding). */
  readonly rebindEveryMs: number
}

/** mulberry32: a small seeded PRNG, [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface ProxyCounters {
  /** Datagrams passed on (toMonitor + toListener), duplicates and released held-back ones included. */
  forwarded: number
  toMonitor: number
  toListener: number
  dropped: number
  reordered: number
  duplicated: number
  rebindsPort: number
  rebindsAddress: number
}

/**
 * One listener's path to the monitor, as a lossy NAT would make it: the listener sends to
 * `front`; the proxy relays through its `upstream` socket (the listener's address as the
 * monitor sees it), which a rebinding replaces. Faults apply in both directions, each
 * direction with its own seeded generator.
 */
export class FaultProxy {
  readonly counters: ProxyCounters = { forwarded: 0, toMonitor: 0, toListener: 0, dropped: 0, reordered: 0, duplicated: 0, rebindsPort: 0, rebindsAddress: 0 }
  /** The mapping as the monitor sees it, one per rebinding. */
  readonly mappings: string[] = []
  #front!: Socket
  #upstream!: Socket
  #client: RemoteInfo | undefined
  readonly #held: { up: Buffer | undefined; down: Buffer | undefined } = { up: undefined, down: undefined }
  readonly #rand: { up: () => number; down: () => number }
  #timer: NodeJS.Timeout | undefined
  #closed = false
  #rebinding = false

  constructor(
    readonly index: number,
    readonly monitorPort: number,
    seed: number,
    /** Next host octet for an address rebinding (127.0.0.x); shared by all proxies. */
    readonly nextAddress: () => string,
    readonly faults: Faults,
  ) {
    this.#rand = { up: rng(seed ^ 0x9e3779b9), down: rng(seed ^ 0x7f4a7c15) }
  }

  get port(): number {
    return this.#front.address().port
  }

  async start(): Promise<void> {
    this.#front = createSocket('udp4')
    this.#front.on('error', () => undefined)
    this.#front.on('message', (msg, rinfo) => {
      this.#client = rinfo
      this.#forward('up', msg)
    })
    await new Promise<void>((resolve) => this.#front.bind(0, LOOPBACK, resolve))
    this.#upstream = await this.#bindUpstream(LOOPBACK)
  }

  /**
   * Rebinds at `base + offsetMs + n × faults.rebindEveryMs` (performance.now() clock, no drift):
   * new port, new address, new port, …
   */
  startRebinding(base: number, offsetMs: number): void {
    let n = 0
    const tick = (): void => {
      if (this.#closed) return
      void this.rebind(n++ % 2 === 1)
      this.#timer = setTimeout(tick, base + offsetMs + n * this.faults.rebindEveryMs - performance.now())
    }
    this.#timer = setTimeout(tick, base + offsetMs - performance.now())
  }

  async rebind(newAddress: boolean): Promise<void> {
    if (this.#closed || this.#rebinding) return
    this.#rebinding = true
    try {
      const fresh = await this.#bindUpstream(newAddress ? this.nextAddress() : LOOPBACK)
      const old = this.#upstream
      this.#upstream = fresh
      // Whatever the monitor sends to the old mapping from now on is lost.
      old.close()
      if (newAddress) this.counters.rebindsAddress++
      else this.counters.rebindsPort++
    } finally {
      this.#rebinding = false
    }
  }

  async #bindUpstream(host: string): Promise<Socket> {
    const s = createSocket('udp4')
    s.on('error', () => undefined)
    s.on('message', (msg) => {
      if (s === this.#upstream) this.#forward('down', msg)
    })
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.bind(0, host, () => {
        s.off('error', reject)
        resolve()
      })
    })
    const a = s.address()
    this.mappings.push(`${a.address}:${a.port}`)
    return s
  }

  #send(dir: 'up' | 'down', msg: Buffer): void {
    if (this.#closed) return
    if (dir === 'up') {
      this.#upstream.send(msg, this.monitorPort, LOOPBACK, () => undefined)
      this.counters.toMonitor++
    } else {
      const c = this.#client
      if (c === undefined) return
      this.#front.send(msg, c.port, c.address, () => undefined)
      this.counters.toListener++
    }
    this.counters.forwarded++
  }

  #forward(dir: 'up' | 'down', msg: Buffer): void {
    const r = this.#rand[dir]
    if (r() < this.faults.loss) {
      this.counters.dropped++
      return
    }
    if (this.#held[dir] === undefined && r() < this.faults.reorder) {
      this.#held[dir] = msg // goes out after the next datagram
      this.counters.reordered++
      return
    }
    this.#send(dir, msg)
    if (r() < this.faults.duplicate) {
      this.#send(dir, msg)
      this.counters.duplicated++
    }
    const held = this.#held[dir]
    if (held !== undefined) {
      this.#held[dir] = undefined
      this.#send(dir, held)
    }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#timer)
    this.#front?.close()
    this.#upstream?.close()
  }
}

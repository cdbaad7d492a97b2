// Benchmark worker: the client side of one workload for one implementation, in its own
// process (forked by bench/run.mjs with --expose-gc). IPC requests (see serveOps in
// bench/lib/common.mjs):
//
//   init { impl, identity, port, serverFingerprint, options }
//   connectSequential { n, timeoutMs } -> { p50Ms, p99Ms }   connect → ready, one at a time
//   connectMany { n, concurrency, timeoutMs } -> { connected, failed, errors, ms }  (+ one PING each)
//   rtt { n, warmup } -> { p50Us, p99Us }        PING→PONG on the probe connection
//   bulk { bytes, frameSize } -> { ms, mibPerSec } frames with backpressure, until DONE
//   fanoutArm { events }, fanoutWait -> { tLast, received }   NOISE_EVENTs on every
//        connection opened by connectMany, parsed and checked in order
//   status -> { open, received, complete }
// plus the built-in gc / rss / cpu / exit.
import { DONE, NOISE_BASE_TS, loadImpl, monoMs, now, pingPayload, quantiles, serveOps } from '../lib/common.mjs'

let client
let target // { port, serverFingerprint }
const open = [] // connections kept open by connectMany
let probe // the one connection of rtt / bulk
let fanout // { done: Promise, received }

const connect = (timeoutMs) => client.connect({ ...target, timeoutMs })

async function probeConnection() {
  probe ??= await connect(10_000)
  return probe
}

/** A single-slot waiter: next() returns a promise that the next frame resolves. */
function frameWaiter(conn) {
  let resolve = null
  conn.onFrame((payload) => {
    const r = resolve
    resolve = null
    r?.(payload)
  })
  return () => new Promise((r) => (resolve = r))
}

let probeWaiter

serveOps({
  async init({ impl, identity, port, serverFingerprint, options = {} }) {
    const adapter = await loadImpl(impl)
    client = await adapter.createClient({ identity, options })
    target = { port, serverFingerprint }
    return {}
  },

  async connectSequential({ n, timeoutMs = 10_000 }) {
    const samples = []
    for (let i = 0; i < n; i++) {
      const t0 = now()
      const conn = await connect(timeoutMs)
      samples.push(now() - t0)
      await conn.close()
    }
    const q = quantiles(samples)
    return { p50Ms: q.p50, p99Ms: q.p99 }
  },

  /**
   * Opens n connections, at most `concurrency` handshakes at a time (the pacing), sends
   * one PING on each (as a listener does) and keeps them open. Failures are counted, not
   * thrown: the orchestrator reports how many connected and why the others did not.
   * Gives up after 50 failures in a row.
   */
  async connectMany({ n, concurrency = 8, timeoutMs = 10_000 }) {
    const t0 = now()
    let next = 0
    let failed = 0
    let failedInARow = 0
    let gaveUp = null
    const errors = new Map()
    const lane = async () => {
      while (next < n && gaveUp === null) {
        next++
        try {
          const conn = await connect(timeoutMs)
          // A listener's first frame opens the control stream (SPEC.md §2.3): a PING.
          conn.send(pingPayload())
          open.push(conn)
          failedInARow = 0
        } catch (error) {
          failed++
          failedInARow++
          const key = String(error?.message ?? error).slice(0, 200)
          errors.set(key, (errors.get(key) ?? 0) + 1)
          if (failedInARow >= 50) gaveUp = `gave up after ${failedInARow} failed connects in a row`
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane))
    return {
      connected: open.length,
      failed,
      gaveUp,
      errors: [...errors].map(([message, count]) => `${count}× ${message}`),
      ms: now() - t0,
    }
  },

  async rtt({ n, warmup }) {
    const conn = await probeConnection()
    probeWaiter ??= frameWaiter(conn)
    const samples = new Float64Array(n)
    for (let i = 0; i < warmup + n; i++) {
      const reply = probeWaiter()
      const t0 = now()
      conn.send(pingPayload(i))
      await reply
      if (i >= warmup) samples[i - warmup] = (now() - t0) * 1000
    }
    const q = quantiles(samples)
    return { p50Us: q.p50, p99Us: q.p99 }
  },

  async bulk({ bytes, frameSize }) {
    const conn = await probeConnection()
    const done = new Promise((resolve, reject) => {
      conn.onFrame((payload) => (payload.equals(DONE) ? resolve() : reject(new Error('unexpected frame from the sink'))))
      conn.onClose(() => reject(new Error('connection closed before the sink confirmed')))
    })
    const payload = Buffer.alloc(frameSize, 0x61)
    const frames = Math.ceil(bytes / frameSize)
    const t0 = now()
    for (let i = 0; i < frames; i++) {
      const pending = conn.write(payload)
      if (pending !== undefined) await pending
    }
    await done
    const ms = now() - t0
    return { ms, mibPerSec: (frames * frameSize) / 1048576 / (ms / 1000) }
  },

  /** Attaches the NOISE_EVENT checkers to every open connection (before the server sends). */
  async fanoutArm({ events }) {
    const state = { received: 0, complete: 0, tLast: 0 }
    let resolve
    let reject
    state.done = new Promise((res, rej) => {
      resolve = res
      reject = rej
    })
    state.done.catch(() => undefined) // handled by fanoutWait; a failure before it is not fatal
    open.forEach((conn, index) => {
      let expected = 0
      conn.onFrame((payload) => {
        const ev = JSON.parse(payload.toString())
        if (ev.type !== 'NOISE_EVENT' || ev.timestamp !== NOISE_BASE_TS + expected) {
          reject(new Error(`connection ${index}: expected NOISE_EVENT #${expected}, got ${payload.toString().slice(0, 120)}`))
          return
        }
        expected++
        state.received++
        if (expected === events) {
          state.tLast = monoMs()
          if (++state.complete === open.length) resolve()
        }
      })
      conn.onClose(() => {
        if (expected < events) reject(new Error(`connection ${index} closed after ${expected} of ${events} events`))
      })
    })
    fanout = state
    return { armed: open.length }
  },

  async fanoutWait() {
    await fanout.done
    return { tLast: fanout.tLast, received: fanout.received }
  },

  async status() {
    return { open: open.length, received: fanout?.received ?? 0, complete: fanout?.complete ?? 0, errors: client?.errors.slice(0, 5) ?? [] }
  },
})

// The workloads of the benchmark suite. Each one runs for one implementation at a time
// ('tls' = Node's tls, 'quic' = cribcall-quic, plus 'udp' = the raw UDP floor for the
// round trip and the optional 'matrixai'), with its server and its clients in separate
// worker processes (bench/workers/server.mjs, client.mjs), and returns flat numeric
// metrics. The orchestrator (bench/run.mjs) repeats it N times and summarises.
//
// SIZES holds the full and the smoke sizes; the Markdown rows that present the metrics
// and the goals are in bench/lib/report.mjs.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { monoMs, sleep, summarize } from './common.mjs'
import { fdLimits } from './procs.mjs'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const MiB = 1024 * 1024

export const SIZES = {
  full: {
    connect: { n: 200 },
    rtt: { n: 5000, warmup: 500 },
    fanout: { listeners: 100, procs: 4, events: 1000 },
    bulk: { bytes: 64 * MiB, frameSize: 64 * 1024 },
    idle: { conns: 100, procs: 2, ms: 10_000, settleMs: 12_000 },
    memory: { from: 100, to: 1000, procs: 4 },
    import: { samples: 5 },
    scale: { conns: 10_000, procs: 4, concurrency: 16, probe: { n: 2000, warmup: 1000 }, idleMs: 10_000, settleMs: 12_000 },
  },
  smoke: {
    connect: { n: 20 },
    rtt: { n: 200, warmup: 50 },
    fanout: { listeners: 10, procs: 2, events: 100 },
    bulk: { bytes: 4 * MiB, frameSize: 64 * 1024 },
    idle: { conns: 10, procs: 2, ms: 2000, settleMs: 500 },
    memory: { from: 10, to: 50, procs: 2 },
    import: { samples: 1 },
    scale: { conns: 200, procs: 2, concurrency: 8, probe: { n: 200, warmup: 50 }, idleMs: 1000, settleMs: 500 },
  },
}

// ---------------------------------------------------------------- shared steps

/** Starts the server worker of a run; `ids` are the run's identities. */
async function startServer(ctx, impl, ids, { options, mode = 'idle', sinkBytes, nofile } = {}) {
  ctx.phase = 'starting the server'
  const server = await ctx.spawn('server.mjs', `${impl} server`, { nofile })
  const peers = ids.clients.map((c) => c.fingerprint)
  const { port } = await server.call('init', { impl, identity: ids.server, peers, options, mode, sinkBytes })
  return { server, port }
}

/** Starts client worker `index` (identity ids.clients[index]) pointed at the server. */
async function startClient(ctx, impl, ids, port, index, { options, nofile } = {}) {
  const client = await ctx.spawn('client.mjs', `${impl} client ${index}`, { nofile })
  const identity = ids.clients[index % ids.clients.length]
  await client.call('init', { impl, identity, port, serverFingerprint: ids.server.fingerprint, options })
  return client
}

/** n connections spread over the client workers; throws unless all connect (or returns the shortfall when `tolerate`). */
async function connectSpread(ctx, clients, n, { concurrency = 8, timeoutMs = 10_000, callMs, tolerate = false } = {}) {
  ctx.phase = `opening ${n} connections from ${clients.length} client processes`
  const share = (i) => Math.floor(n / clients.length) + (i < n % clients.length ? 1 : 0)
  const results = await Promise.all(
    clients.map((c, i) => c.call('connectMany', { n: share(i), concurrency, timeoutMs }, callMs ?? Math.max(60_000, share(i) * 200))),
  )
  const connected = results.reduce((a, r) => a + r.connected, 0)
  const errors = results.flatMap((r, i) => [...r.errors.map((e) => `client ${i}: ${e}`), ...(r.gaveUp ? [`client ${i}: ${r.gaveUp}`] : [])])
  const ms = Math.max(...results.map((r) => r.ms))
  if (connected < n && !tolerate) throw new Error(`only ${connected} of ${n} connections opened: ${errors.join('; ')}`)
  return { connected, errors, ms }
}

/**
 * CPU ms each worker spent during `ms` of doing nothing. The window opens `settleMs`
 * after the last activity: V8's memory reducer runs an incremental GC about 8 s after a
 * process goes quiet (~20 ms in every Node process, whatever its transport), and that
 * one-off is not the steady idle cost being measured. No forced GC here for the same
 * reason.
 */
async function idleCpu(ctx, workers, ms, settleMs) {
  ctx.phase = `letting the processes settle for ${settleMs / 1000} s`
  await sleep(settleMs)
  ctx.phase = 'measuring idle CPU'
  const before = await Promise.all(workers.map((w) => w.call('cpu')))
  await sleep(ms)
  const after = await Promise.all(workers.map((w) => w.call('cpu')))
  return workers.map((_, i) => ({
    cpuMs: after[i].cpuMs - before[i].cpuMs,
    wallMs: after[i].at - before[i].at,
  }))
}

// ---------------------------------------------------------------- workloads

const connect = {
  name: 'connect',
  title: 'connect → ready',
  impls: ['tls', 'quic', 'matrixai'],
  timeoutMs: (s) => 60_000 + s.n * 200,
  async run(ctx, impl, s, ids) {
    const { port } = await startServer(ctx, impl, ids, { mode: 'echo' })
    const client = await startClient(ctx, impl, ids, port, 0)
    ctx.phase = `${s.n} sequential connections`
    const r = await client.call('connectSequential', { n: s.n }, s.n * 10_000)
    return { p50Ms: r.p50Ms, p99Ms: r.p99Ms }
  },
}

const rtt = {
  name: 'rtt',
  title: 'PING→PONG round trip',
  impls: ['tls', 'quic', 'udp', 'matrixai'],
  timeoutMs: (s) => 60_000 + (s.n + s.warmup) * 10,
  async run(ctx, impl, s, ids) {
    const { port } = await startServer(ctx, impl, ids, { mode: 'echo' })
    const client = await startClient(ctx, impl, ids, port, 0)
    ctx.phase = `${s.warmup} + ${s.n} round trips`
    const r = await client.call('rtt', { n: s.n, warmup: s.warmup }, 60_000 + (s.n + s.warmup) * 10)
    return { p50Us: r.p50Us, p99Us: r.p99Us }
  },
}

const fanout = {
  name: 'fanout',
  title: 'fan-out NOISE_EVENT',
  impls: ['tls', 'quic', 'matrixai'],
  timeoutMs: (s) => 90_000 + s.listeners * s.events * 0.2,
  async run(ctx, impl, s, ids) {
    const { server, port } = await startServer(ctx, impl, ids)
    const clients = await Promise.all(Array.from({ length: s.procs }, (_, i) => startClient(ctx, impl, ids, port, i)))
    await connectSpread(ctx, clients, s.listeners)
    await server.call('waitConnections', { n: s.listeners, timeoutMs: 10_000 }, 15_000)
    await Promise.all(clients.map((c) => c.call('fanoutArm', { events: s.events })))
    ctx.phase = `sending ${s.events} NOISE_EVENTs to ${s.listeners} listeners`
    const sent = await server.call('fanout', { events: s.events })
    if (sent.connections !== s.listeners) throw new Error(`server had ${sent.connections} connections, expected ${s.listeners}`)
    const budget = 30_000 + s.listeners * s.events * 0.1
    let done
    try {
      done = await Promise.all(clients.map((c) => c.call('fanoutWait', {}, budget)))
    } catch (error) {
      const status = await Promise.all(clients.map((c) => c.call('status', {}, 5000).catch((e) => ({ error: e.message }))))
      throw new Error(`${error.message}; per client: ${JSON.stringify(status)}`)
    }
    const received = done.reduce((a, d) => a + d.received, 0)
    if (received !== s.listeners * s.events) throw new Error(`received ${received} events, expected ${s.listeners * s.events}`)
    const ms = Math.max(...done.map((d) => d.tLast)) - sent.t0
    return { eventsPerSec: received / (ms / 1000), ms, serverSendMs: sent.sendMs }
  },
}

const bulk = {
  name: 'bulk',
  title: 'bulk transfer',
  impls: ['tls', 'quic', 'matrixai'],
  timeoutMs: (s) => 60_000 + (s.bytes / MiB) * 1000,
  async run(ctx, impl, s, ids) {
    const { port } = await startServer(ctx, impl, ids, { mode: 'sink', sinkBytes: s.bytes })
    const client = await startClient(ctx, impl, ids, port, 0)
    ctx.phase = `sending ${s.bytes / MiB} MiB in ${s.frameSize / 1024} KiB frames`
    const r = await client.call('bulk', { bytes: s.bytes, frameSize: s.frameSize }, 60_000 + (s.bytes / MiB) * 1000)
    return { mibPerSec: r.mibPerSec, ms: r.ms }
  },
}

const idle = {
  name: 'idle',
  title: 'idle connections, CPU',
  impls: ['tls', 'quic', 'matrixai'],
  timeoutMs: (s) => 90_000 + s.settleMs + s.ms,
  async run(ctx, impl, s, ids) {
    const { server, port } = await startServer(ctx, impl, ids)
    const clients = await Promise.all(Array.from({ length: s.procs }, (_, i) => startClient(ctx, impl, ids, port, i)))
    await connectSpread(ctx, clients, s.conns)
    await server.call('waitConnections', { n: s.conns, timeoutMs: 10_000 }, 15_000)
    const cpu = await idleCpu(ctx, [server, ...clients], s.ms, s.settleMs)
    // Normalised to ms of CPU per 10 s of idle per 100 connections.
    const norm = (c) => c.cpuMs * (10_000 / c.wallMs) * (100 / s.conns)
    const serverCpuMs = norm(cpu[0])
    const clientCpuMs = cpu.slice(1).reduce((a, c) => a + norm(c), 0)
    const { connections } = await server.call('count')
    if (connections !== s.conns) throw new Error(`${s.conns - connections} connections closed while idle`)
    return { serverCpuMs, clientCpuMs, totalCpuMs: serverCpuMs + clientCpuMs }
  },
}

const memory = {
  name: 'memory',
  title: 'server memory',
  impls: ['tls', 'quic', 'matrixai'],
  timeoutMs: (s) => 90_000 + s.to * 200,
  async run(ctx, impl, s, ids) {
    const { server, port } = await startServer(ctx, impl, ids)
    ctx.phase = 'server RSS at 0 connections'
    const { rss: rss0 } = await server.call('rss', { gc: true })
    const clients = await Promise.all(Array.from({ length: s.procs }, (_, i) => startClient(ctx, impl, ids, port, i)))
    await connectSpread(ctx, clients, s.from)
    await server.call('waitConnections', { n: s.from, timeoutMs: 10_000 }, 15_000)
    const { rss: rssFrom } = await server.call('rss', { gc: true })
    await connectSpread(ctx, clients, s.to - s.from)
    await server.call('waitConnections', { n: s.to, timeoutMs: 10_000 }, 15_000)
    await sleep(200)
    const { rss: rssTo } = await server.call('rss', { gc: true })
    return { rss0MiB: rss0 / MiB, perConnKiB: (rssTo - rssFrom) / (s.to - s.from) / 1024, rssToMiB: rssTo / MiB }
  },
}

/** What package.json "exports" offers: '.' and any subpath naming the transport. */
function importTargets() {
  const pkg = JSON.parse(readFileSync(new URL('package.json', pathToFileURL(ROOT)), 'utf8'))
  const pick = (entry) => (typeof entry === 'string' ? entry : (entry?.import ?? entry?.default))
  const targets = []
  for (const [key, entry] of Object.entries(pkg.exports ?? {})) {
    if (key !== '.' && !/transport/.test(key)) continue
    const file = pick(entry)
    if (typeof file !== 'string') continue
    targets.push({ key, specifier: new URL(file, pathToFileURL(ROOT)).href })
  }
  return targets
}

/** One fresh `node -e` process: ms and RSS (after a GC) of `await import(specifier)`. */
function importSample(specifier) {
  const code = `
    const t0 = performance.now()
    await import(${JSON.stringify(specifier)})
    const ms = performance.now() - t0
    globalThis.gc()
    process.stdout.write(JSON.stringify({ ms, rss: process.memoryUsage().rss }))`
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`import(${specifier}) failed: ${stderr || error.message}`))
      else resolve(JSON.parse(stdout))
    })
  })
}

const BARE = 'data:text/javascript,export default 0'

const importCost = {
  name: 'import',
  title: 'import cost',
  impls: ['tls', 'quic'],
  timeoutMs: (s) => 60_000 + s.samples * 20_000,
  /** tls: import('node:tls'); quic: the package's '.' export (+ a transport subpath if exported). */
  async run(ctx, impl, s) {
    const targets = impl === 'tls' ? [{ key: 'tls', specifier: 'node:tls' }] : importTargets()
    if (targets.length === 0) throw new Error('package.json exports no "." entry')
    const samples = { bare: [] }
    for (const t of targets) samples[t.key] = []
    ctx.phase = `${s.samples} fresh processes per import`
    for (let i = 0; i < s.samples; i++) {
      samples.bare.push(await importSample(BARE))
      for (const t of targets) samples[t.key].push(await importSample(t.specifier))
    }
    const med = (key, field) => summarize(samples[key].map((x) => x[field])).median
    const out = {}
    for (const t of targets) {
      const prefix = t.key === '.' || t.key === 'tls' ? 'import' : `import${t.key.replace(/^\.\//, '_').replace(/[^A-Za-z0-9_]/g, '_')}`
      out[`${prefix}Ms`] = med(t.key, 'ms') - med('bare', 'ms')
      out[`${prefix}RssMiB`] = (med(t.key, 'rss') - med('bare', 'rss')) / MiB
    }
    return out
  },
}

const scale = {
  name: 'scale',
  title: 'scale',
  impls: ['tls', 'quic'],
  timeoutMs: (s) => 120_000 + s.conns * 30 + s.settleMs + s.idleMs,
  async run(ctx, impl, s, ids) {
    const perProc = Math.ceil(s.conns / s.procs)
    let serverNofile
    let clientNofile
    if (impl === 'tls') {
      // One descriptor per socket on each side, plus Node's own.
      const need = { server: s.conns + 256, client: perProc + 256 }
      const { soft, hard } = fdLimits()
      if (!(hard >= need.server)) return { notRun: `fd limit ${hard} (hard) < ${need.server} needed by the tls server` }
      if (!(soft >= need.server)) serverNofile = need.server
      if (!(soft >= need.client)) clientNofile = need.client
    }
    const serverOptions = impl === 'quic' ? { maxConnections: s.conns + 64, maxHalfOpen: 1024, retryThreshold: 1024 } : {}
    const clientOptions = impl === 'quic' ? { maxConnections: perProc + 64 } : {}
    const { server, port } = await startServer(ctx, impl, ids, { options: serverOptions, mode: 'echo', nofile: serverNofile })
    const probe = await startClient(ctx, impl, ids, port, s.procs)
    ctx.phase = 'probe round trips, unloaded'
    const unloaded = await probe.call('rtt', s.probe, 120_000)
    const clients = await Promise.all(
      Array.from({ length: s.procs }, (_, i) => startClient(ctx, impl, ids, port, i, { options: clientOptions, nofile: clientNofile })),
    )
    const t0 = monoMs()
    const spread = await connectSpread(ctx, clients, s.conns, {
      concurrency: s.concurrency,
      timeoutMs: 20_000,
      callMs: 60_000 + perProc * 100,
      tolerate: true,
    })
    const connectSec = (monoMs() - t0) / 1000
    ctx.phase = `waiting for the server to see ${spread.connected} connections`
    await server.call('waitConnections', { n: spread.connected + 1, timeoutMs: 20_000 }, 25_000).catch(() => undefined)
    const { greeted: connections } = await server.call('count')
    ctx.phase = `probe round trips with ${spread.connected} connections open`
    await sleep(1000)
    const loaded = await probe.call('rtt', s.probe, 120_000)
    const [serverCpu] = await idleCpu(ctx, [server], s.idleMs, s.settleMs)
    const { greeted: stillOpen } = await server.call('count')
    const out = {
      target: s.conns,
      connected: spread.connected,
      serverConnections: connections - 1, // minus the probe
      stillOpenAfterIdle: stillOpen - 1,
      connectSec,
      connectsPerSec: spread.connected / connectSec,
      probeP50UnloadedUs: unloaded.p50Us,
      probeP99UnloadedUs: unloaded.p99Us,
      probeP50LoadedUs: loaded.p50Us,
      probeP99LoadedUs: loaded.p99Us,
      loadedRatioP50: loaded.p50Us / unloaded.p50Us,
      loadedRatioP99: loaded.p99Us / unloaded.p99Us,
      serverCpuMsPerSec: serverCpu.cpuMs / (serverCpu.wallMs / 1000),
    }
    if (spread.connected < s.conns) out.shortfall = `connected ${spread.connected} of ${s.conns}: ${spread.errors.join('; ')}`
    if (stillOpen - 1 < spread.connected) out.dropped = `${spread.connected - (stillOpen - 1)} connections closed while idle`
    return out
  },
}

export const WORKLOADS = [connect, rtt, fanout, bulk, idle, memory, importCost, scale]

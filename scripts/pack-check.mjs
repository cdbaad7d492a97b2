#!/usr/bin/env node
// npm run pack:check — checks what `npm publish` would ship, the way a user gets it:
//
//   1. builds the release addon for this platform and dist/ (`npm run build`; skip with
//      --no-build when both are fresh);
//   2. checks the addon's dynamic symbol table (Linux): only N-API entry points are
//      exported (no BoringSSL SSL_*/CRYPTO_* or other symbols), and prints the glibc
//      floor (the highest GLIBC_x.y version the addon references);
//   3. packs the main package exactly as `napi prepublish -t npm` would publish it (the
//      files `npm pack` selects, plus the optionalDependencies on the per-platform
//      packages that `napi prepublish` writes) and this platform's package from
//      npm/<platform>/ with the .node copied in;
//   4. installs both tarballs into a fresh project outside the repository and runs an
//      ESM consumer (consumer.mjs), a CommonJS consumer (consumer.cjs) and a TypeScript
//      consumer (consumer-ts.mts, compiled there with `strict` and `module: nodenext`
//      against the installed types: events.on/once with AbortSignal, await using, typed
//      error codes) with a PATH that has node but no cargo/rustc: each must pair a
//      monitor and a listener by QR, receive a NOISE_EVENT, print one line and exit 0
//      within 20 s.
//
// Options:
//   --no-build         use the existing .node and dist/
//   --node <path>      also run the consumers with this node binary (repeatable); the
//                      machine's node (the one running this script) always runs them
//   --report <file>    write the per-node consumer results as JSON
//   --keep             keep the temporary directory (printed) for inspection
//   --cross            then also run scripts/pack-check-cross.mjs (`npm run
//                      pack:check:cross`): cross-builds linux-arm64-gnu and linux-x64-musl,
//                      runs the consumers with an arm64 Node under qemu-user and a musl Node
import { execFileSync, spawnSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CONSUMERS, consumerOk, packMain, packPlatform, pathWithoutRust, prepareConsumers, report, runWithTimeout } from './pack-check/shared.mjs'

const CONSUMER_TIMEOUT_MS = 20_000
/** Defined dynamic symbols the addon may export: the N-API module entry points. */
const ALLOWED_EXPORT = /^(napi_register_module_v1|node_api_[A-Za-z0-9_]+)$/
/** Symbols that would mean BoringSSL leaks out of the addon's dynamic table. */
const BORINGSSL_EXPORT = /^(SSL|CRYPTO)_/

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const npmCmd = process.platform === 'win32' ? 'npm.cmd' : 'npm'

// ---- options
const args = process.argv.slice(2)
const opts = { build: true, nodes: [], report: null, keep: false, cross: false }
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  if (a === '--no-build') opts.build = false
  else if (a === '--keep') opts.keep = true
  else if (a === '--cross') opts.cross = true
  else if (a === '--node') opts.nodes.push(resolve(args[++i] ?? fail('--node needs a path')))
  else if (a === '--report') opts.report = resolve(args[++i] ?? fail('--report needs a path'))
  else fail(`unknown option ${a}`)
}

function fail(message) {
  console.error(`pack:check FAILED: ${message}`)
  process.exit(1)
}

function step(message) {
  console.log(`== pack:check: ${message}`)
}

/** Runs a command; returns stdout. Shows stderr only if it fails. */
function run(cmd, argv, options = {}) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 << 20, shell: process.platform === 'win32', ...options })
  if (r.error || r.status !== 0) {
    process.stderr.write(r.stdout ?? '')
    process.stderr.write(r.stderr ?? '')
    fail(`${cmd} ${argv.join(' ')} exited with ${r.error ?? r.status} (cwd ${options.cwd ?? process.cwd()})`)
  }
  return r.stdout
}

// ---- this platform's napi-rs target name (platformArchABI)
function isMusl() {
  if (process.platform !== 'linux') return false
  const report = process.report?.getReport?.()
  return !report?.header?.glibcVersionRuntime
}
const abi = (() => {
  const { platform, arch } = process
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
})()

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const binaryName = pkg.napi?.binaryName ?? fail('package.json has no napi.binaryName')
const nodeFile = join(root, `${binaryName}.${abi}.node`)
const platformDir = join(root, 'npm', abi)
if (!existsSync(join(platformDir, 'package.json'))) {
  fail(`no npm/${abi}/package.json: ${abi} is not one of napi.targets (run \`npx napi create-npm-dirs\`)`)
}

// ---- 1. build
if (opts.build) {
  step('npm run build (release addon + dist/)')
  const r = spawnSync(npmCmd, ['run', 'build'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' })
  if (r.status !== 0) fail('npm run build failed')
}
if (!existsSync(nodeFile)) fail(`${nodeFile} is missing: run \`npm run build\``)
if (!existsSync(join(root, 'dist', 'index.js'))) fail('dist/index.js is missing: run `npm run build`')

// ---- 2. symbols and glibc floor
const summary = { abi, exports: null, glibcFloor: null, consumers: [] }
if (process.platform === 'linux') {
  step(`dynamic symbols of ${binaryName}.${abi}.node (nm -D --defined-only)`)
  const nm = run('nm', ['-D', '--defined-only', nodeFile])
  const symbols = nm
    .split('\n')
    .map((line) => line.trim().split(/\s+/).pop())
    .filter(Boolean)
  summary.exports = symbols
  const leaked = symbols.filter((s) => BORINGSSL_EXPORT.test(s))
  const unexpected = symbols.filter((s) => !ALLOWED_EXPORT.test(s))
  console.log(`   ${symbols.length} defined dynamic symbol(s): ${symbols.slice(0, 8).join(', ')}${symbols.length > 8 ? ', …' : ''}`)
  if (leaked.length > 0) fail(`the addon exports ${leaked.length} BoringSSL symbol(s), e.g. ${leaked.slice(0, 5).join(', ')}`)
  if (unexpected.length > 0) {
    fail(`the addon exports symbols besides the N-API entry points: ${unexpected.slice(0, 10).join(', ')}`)
  }
  console.log('   ok: no SSL_*/CRYPTO_* (or any non-N-API) symbol exported')

  if (abi.endsWith('-gnu')) {
    // objdump -T: "<address> <7 flag chars> <section> ... (GLIBC_x.y) name"; flag 'w' marks a
    // weak reference, which the dynamic loader tolerates missing (Rust's std uses them for
    // optional newer functions), so the floor is set by the strong references.
    const refs = run('objdump', ['-T', nodeFile])
      .split('\n')
      .map((line) => {
        const m = /^[0-9a-f]+ (.{7}) .*\(GLIBC_(\d+)\.(\d+)(?:\.(\d+))?\)\s+(\S+)/.exec(line)
        return m && { weak: m[1][1] === 'w', version: [+m[2], +m[3], +(m[4] ?? 0)], name: m[5] }
      })
      .filter(Boolean)
    const cmp = (a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]
    const fmt = (v) => `GLIBC_${v[0]}.${v[1]}${v[2] ? `.${v[2]}` : ''}`
    const highest = (list) => list.map((r) => r.version).sort(cmp).at(-1)
    const strong = refs.filter((r) => !r.weak)
    const floor = highest(strong)
    const weakTop = highest(refs.filter((r) => r.weak))
    summary.glibcFloor = floor ? fmt(floor) : null
    const needing = floor ? [...new Set(strong.filter((r) => cmp(r.version, floor) === 0).map((r) => r.name))] : []
    console.log(
      `   glibc floor: ${summary.glibcFloor ?? 'none'}${needing.length ? ` (needed by ${needing.slice(0, 4).join(', ')}${needing.length > 4 ? ', …' : ''})` : ''}` +
        (weakTop && (!floor || cmp(weakTop, floor) > 0) ? `; weak references up to ${fmt(weakTop)} are optional` : ''),
    )
  }
}

// ---- 3. pack
const work = mkdtempSync(join(tmpdir(), 'cribcall-pack-check-'))
const tarballs = join(work, 'tarballs')
mkdirSync(tarballs)

step('npm pack (main package, as napi prepublish publishes it)')
let mainPacked, platformPacked
try {
  mainPacked = packMain(root, work, tarballs, run).packed
  console.log(`   ${mainPacked.filename}: ${mainPacked.entryCount} files, ${(mainPacked.size / 1024).toFixed(0)} KiB packed`)
  step(`npm pack (npm/${abi} with ${binaryName}.${abi}.node)`)
  const platform = packPlatform(root, work, tarballs, abi, nodeFile, run)
  platformPacked = platform.packed
  console.log(`   ${platformPacked.filename}: ${platform.names.join(', ')}, ${(platformPacked.size / 1024 / 1024).toFixed(1)} MiB packed`)
} catch (e) {
  fail(e.message)
}

// ---- 4. install into a fresh project and run the consumers without a Rust toolchain
step('npm install both tarballs into a fresh project')
const project = join(work, 'consumer')
mkdirSync(project)
writeFileSync(
  join(project, 'package.json'),
  `${JSON.stringify({ name: 'cribcall-quic-pack-check', version: '0.0.0', private: true }, null, 2)}\n`,
)
// The other platforms' optional packages are not on the registry (or not for this
// platform); npm skips optional dependencies it cannot install.
run(
  npmCmd,
  ['install', '--no-audit', '--no-fund', '--ignore-scripts', join(tarballs, platformPacked.filename), join(tarballs, mainPacked.filename)],
  { cwd: project },
)
const installed = join(project, 'node_modules', pkg.name)
const installedFiles = readdirSync(installed)
if (installedFiles.some((f) => f.endsWith('.node'))) fail(`node_modules/${pkg.name} contains a .node file`)
if (!existsSync(join(project, 'node_modules', `${pkg.name}-${abi}`, `${binaryName}.${abi}.node`))) {
  fail(`node_modules/${pkg.name}-${abi} has no ${binaryName}.${abi}.node`)
}
// The test-only hooks and oracles (native/src/test_hooks.rs, cargo feature `test-hooks`)
// exist only in the test build (`npm run build:native:test`): the packed addon, its
// loader and its typings must have none of them.
step('the packed addon has no test hooks (_sendRaw, _injectPanic, canonicalStringObject)')
{
  const TEST_ONLY = ['_sendRaw', '_injectPanic', 'canonicalStringObject']
  const installedNode = join(project, 'node_modules', `${pkg.name}-${abi}`, `${binaryName}.${abi}.node`)
  const probe = `const b = require(process.argv[1]); const found = [];
if (typeof b.NativeEndpoint !== 'function') found.push('(no NativeEndpoint export)');
else for (const m of ['_sendRaw', '_injectPanic']) if (typeof b.NativeEndpoint.prototype[m] !== 'undefined') found.push('NativeEndpoint.prototype.' + m);
if ('canonicalStringObject' in b) found.push('canonicalStringObject');
console.log(JSON.stringify(found))`
  const found = JSON.parse(run(process.execPath, ['-e', probe, installedNode]).trim())
  if (found.length > 0) fail(`the packed addon has test-only exports: ${found.join(', ')}`)
  for (const file of ['index.js', 'index.d.ts']) {
    const text = readFileSync(join(installed, file), 'utf8')
    const named = TEST_ONLY.filter((name) => text.includes(name))
    if (named.length > 0) fail(`the packed ${file} names test-only exports: ${named.join(', ')}`)
  }
  console.log('   ok: none in the .node, index.js or index.d.ts')
}
// The consumers; the TypeScript one compiled against the installed package as a user's
// project would (its .d.ts files checked too: no skipLibCheck).
step('compile the TypeScript consumer (strict, module nodenext) against the installed types')
try {
  prepareConsumers(root, project, run)
} catch (e) {
  fail(e.message)
}

/** PATH with the given node and the system directories, and no cargo or rustc. */
function strippedPath(nodeBin) {
  const bin = join(work, `bin-${summary.consumers.length}`)
  mkdirSync(bin)
  if (process.platform === 'win32') return [dirname(nodeBin)].join(delimiter)
  symlinkSync(nodeBin, join(bin, 'node'))
  try {
    return pathWithoutRust(bin)
  } catch (e) {
    fail(e.message)
  }
}

async function runConsumer(nodeBin, consumer, PATH) {
  const env = { PATH, HOME: process.env.HOME ?? project, LANG: 'C.UTF-8' }
  if (process.platform === 'win32') Object.assign(env, { SystemRoot: process.env.SystemRoot, TEMP: process.env.TEMP })
  const r = await runWithTimeout([nodeBin, consumer], { cwd: project, env, timeoutMs: CONSUMER_TIMEOUT_MS, label: 'pack:check' })
  return { consumer, ok: consumerOk(consumer, r), ...r }
}

const nodes = [process.execPath, ...opts.nodes]
let failed = 0
for (const nodeBin of nodes) {
  const version = execFileSync(nodeBin, ['--version'], { encoding: 'utf8' }).trim()
  const PATH = strippedPath(nodeBin)
  step(`consumers with node ${version} (PATH=${PATH}; no cargo/rustc on it)`)
  for (const consumer of CONSUMERS) {
    const r = await runConsumer(nodeBin, consumer, PATH)
    summary.consumers.push({ node: version, nodeBin, ...r })
    if (!r.ok) failed++
    report(`${consumer} on node ${version}`, r.ok, r)
  }
}

if (opts.report) writeFileSync(opts.report, `${JSON.stringify(summary, null, 2)}\n`)
if (opts.keep || failed > 0) console.log(`   (temporary files kept in ${work})`)
else rmSync(work, { recursive: true, force: true })

const total = summary.consumers.length
console.log(failed > 0 ? `pack:check FAILED: ${failed} of ${total} consumer runs failed` : `pack:check OK: all ${total} consumer runs passed`)
if (failed === 0 && opts.cross) {
  step('--cross: scripts/pack-check-cross.mjs (linux-arm64-gnu under qemu-user, linux-x64-musl)')
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'pack-check-cross.mjs'), ...(opts.keep ? ['--keep'] : [])], { cwd: root, stdio: 'inherit' })
  process.exit(r.status ?? 1)
}
process.exit(failed > 0 ? 1 : 0)

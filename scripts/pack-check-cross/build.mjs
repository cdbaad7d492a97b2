// scripts/pack-check-cross.mjs, step 1: the cross builds, into target/cross/<triple>/
// (`napi build --no-js`: the repository's index.js and index.d.ts stay as they are).
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { delimiter, join, relative } from 'node:path'

import { binaryName, root, runLoud, since, step } from './common.mjs'

/** The cross toolchain's sysroot (libc6-dev-arm64-cross); qemu-aarch64 -L uses it too. */
export const ARM64_SYSROOT = '/usr/aarch64-linux-gnu'

/** sha256 of the repository's generated loader files, which the builds must not touch. */
export const loaderHash = () =>
  ['index.js', 'index.d.ts'].map((f) => (existsSync(join(root, f)) ? createHash('sha256').update(readFileSync(join(root, f))).digest('hex') : '-')).join(',')

/** mtime of the newest Rust source (native/, Cargo.toml, Cargo.lock): a prebuilt .node must not be older. */
export function newestSource() {
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
/** The .node file the build of target `t` writes. */
export const nodeFileOf = (t) => join(outDir(t), `${binaryName}.${t.abi}.node`)

/** Cross-builds target `t` (`tools` brings zig for musl); returns the seconds it took. */
export function build(t, tools) {
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
    env.PATH = [tools.zigTools(), env.PATH].join(delimiter)
    argv.push('-x')
  }
  const napi = join(root, 'node_modules', '.bin', 'napi')
  step(`napi ${argv.join(' ')}`)
  const started = Date.now()
  runLoud(napi, argv, { cwd: root, env })
  console.log(`   built in ${since(started)}`)
  return (Date.now() - started) / 1000
}

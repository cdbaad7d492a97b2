// scripts/prereqs.mjs: the host as the build's crates see it — platform, the
// per-target variables of the cc, cmake and boring-sys crates, executables on PATH,
// directories and directory globs (as the glob crate expands them).
import { accessSync, constants, readdirSync, statSync } from 'node:fs'
import path from 'node:path'

export const env = process.env
export const platform = process.platform
export const isWindows = platform === 'win32'
export const is64 = ['x64', 'arm64', 'ppc64', 's390x', 'riscv64', 'loong64', 'mips64el'].includes(process.arch)

/** Candidate Rust host triples, for the per-target variable names the cc, cmake and boring-sys crates read. */
function hostTriples() {
  const arch = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', arm: 'armv7', riscv64: 'riscv64gc', ppc64: 'powerpc64le', s390x: 's390x', loong64: 'loongarch64' }[process.arch] ?? process.arch
  if (platform === 'linux') return [`${arch}-unknown-linux-gnu`, `${arch}-unknown-linux-musl`, `${arch}-unknown-linux-gnueabihf`]
  if (platform === 'darwin') return [`${arch}-apple-darwin`]
  if (isWindows) return [`${arch}-pc-windows-msvc`, `${arch}-pc-windows-gnu`]
  return [`${arch}-unknown-${platform}`]
}
/** NAME_<target>, NAME_<target_with_underscores>, HOST_NAME, NAME: how those crates look a setting up. */
export function targetVar(name) {
  for (const t of hostTriples()) {
    for (const k of [`${name}_${t}`, `${name}_${t.replaceAll('-', '_')}`]) if (env[k] !== undefined) return env[k]
  }
  if (env[`HOST_${name}`] !== undefined) return env[`HOST_${name}`]
  return env[name]
}

const pathDirs = (env.PATH ?? env.Path ?? '').split(path.delimiter).filter((d) => d !== '')
const pathExts = isWindows ? (env.PATHEXT ?? '.EXE;.CMD;.BAT;.COM').split(';').filter(Boolean) : ['']

export function isExecutableFile(file) {
  try {
    if (!statSync(file).isFile()) return false
    if (!isWindows) accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}
/** The executable `name` resolves to (an absolute or relative path is taken as is), or null. */
export function which(name) {
  if (name.includes('/') || (isWindows && name.includes('\\'))) {
    for (const ext of isWindows && !path.extname(name) ? pathExts : ['']) if (isExecutableFile(name + ext)) return name + ext
    return null
  }
  for (const dir of pathDirs) {
    for (const ext of isWindows && !path.extname(name) ? pathExts : ['']) {
      const file = path.join(dir, name + ext)
      if (isExecutableFile(file)) return file
    }
  }
  return null
}
/** The compiler a CC/CXX-style value names: the cc crate splits off a wrapper such as ccache. */
export function compilerOf(value) {
  const words = value.trim().split(/\s+/)
  const wrappers = new Set(['ccache', 'sccache', 'distcc', 'cachepot', 'buildcache'])
  const first = words[0] ?? ''
  return wrappers.has(path.basename(first).replace(/\.exe$/i, '')) && words[1] ? words[1] : first
}

export function listDir(dir) {
  try {
    return readdirSync(dir)
  } catch {
    return []
  }
}
export function isDir(p) {
  try {
    return statSync(p).isDirectory()
  } catch {
    return false
  }
}
export function globToRegExp(glob, caseInsensitive) {
  let re = ''
  for (const ch of glob) re += ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&')
  return new RegExp(`^${re}$`, caseInsensitive ? 'i' : '')
}
/** Expands a directory glob ('*' within one component, '**' for any depth) like the glob crate (case-insensitive, as clang-sys asks). */
export function expandDirGlob(pattern) {
  const parts = pattern.split(/[\\/]/)
  let bases = [parts[0] === '' ? path.sep : `${parts[0]}${path.sep}`]
  for (const part of parts.slice(1)) {
    if (part === '') continue
    const next = []
    if (part === '**') {
      const walk = (d, depth) => {
        next.push(d)
        if (depth > 12) return
        for (const n of listDir(d)) if (isDir(path.join(d, n))) walk(path.join(d, n), depth + 1)
      }
      for (const b of bases) walk(b, 0)
    } else if (/[*?]/.test(part)) {
      const re = globToRegExp(part, true)
      for (const b of bases) for (const n of listDir(b)) if (re.test(n)) next.push(path.join(b, n))
    } else {
      for (const b of bases) next.push(path.join(b, part))
    }
    bases = next
  }
  return bases.filter(isDir)
}

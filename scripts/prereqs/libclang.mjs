// scripts/prereqs.mjs: libclang, found the way clang-sys 1.x (bindgen's loader) finds
// it at run time (its build/common.rs and build/dynamic.rs).
import { spawnSync } from 'node:child_process'
import { closeSync, existsSync, openSync, readSync } from 'node:fs'
import path from 'node:path'

import { env, expandDirGlob, globToRegExp, is64, isWindows, listDir, platform, which } from './host.mjs'

function libclangFilePatterns() {
  if (isWindows) return ['clang.dll', 'libclang.dll']
  if (platform === 'darwin') return ['libclang.dylib']
  if (platform === 'linux') return ['libclang.so', 'libclang-*.so', 'libclang.so.*', 'libclang-*.so.*']
  if (['freebsd', 'openbsd', 'netbsd'].includes(platform)) return ['libclang.so', 'libclang.so.*']
  return ['libclang.so']
}
function libclangDirGlobs() {
  if (env.CRIBCALL_PREREQS_LIBCLANG_DIRS !== undefined) return env.CRIBCALL_PREREQS_LIBCLANG_DIRS.split(path.delimiter).filter((d) => d !== '')
  if (platform === 'linux' || platform === 'freebsd') {
    return ['/usr/local/llvm*/lib*', '/usr/local/lib*/*/*', '/usr/local/lib*/*', '/usr/local/lib*', '/usr/lib*/*/*', '/usr/lib*/*', '/usr/lib*']
  }
  if (platform === 'darwin') {
    return [
      '/usr/local/opt/llvm*/lib/llvm*/lib',
      '/Library/Developer/CommandLineTools/usr/lib',
      '/Applications/Xcode.app/Contents/Developer/Toolchains/XcodeDefault.xctoolchain/usr/lib',
      '/usr/local/opt/llvm*/lib',
    ]
  }
  if (isWindows) {
    return [
      'C:\\Users\\*\\scoop\\apps\\llvm\\current\\lib',
      'C:\\Program Files*\\LLVM\\lib',
      'C:\\LLVM\\lib',
      'C:\\Program Files*\\Microsoft Visual Studio\\**\\VC\\Tools\\Llvm\\**\\lib',
    ]
  }
  if (platform === 'sunos') return ['/opt/ooce/llvm-*/lib', '/opt/ooce/clang-*/lib']
  return []
}
/** clang-sys's validate_library: an ELF of the host's class (Linux, FreeBSD), a PE of its width and machine (Windows). */
function validLibrary(file) {
  if (platform !== 'linux' && platform !== 'freebsd' && !isWindows) return existsSync(file)
  let fd
  try {
    fd = openSync(file, 'r')
    const head = Buffer.alloc(isWindows ? 0x40 : 5)
    if (readSync(fd, head, 0, head.length, 0) < head.length) return false
    if (!isWindows) return head[0] === 0x7f && head.toString('latin1', 1, 4) === 'ELF' && head[4] === (is64 ? 2 : 1)
    const off = head.readInt32LE(0x3c)
    const pe = Buffer.alloc(26)
    if (readSync(fd, pe, 0, 26, off) < 26 || pe.toString('latin1', 0, 4) !== 'PE\0\0') return false
    const machine = pe.readUInt16LE(4)
    const magic = pe.readUInt16LE(24)
    if (magic !== (is64 ? 523 : 267)) return false
    const want = { x64: 0x8664, ia32: 0x14c, arm64: 0xaa64 }[process.arch]
    return !([0x8664, 0x14c, 0xaa64].includes(machine) && want !== undefined && machine !== want)
  } catch {
    return false
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
/** search_directories: matching files in `dir` (and, on Windows, in ../bin of a lib directory). */
function searchDirectory(dir, patterns) {
  const res = patterns.map((p) => globToRegExp(p, false))
  const dirs = [dir]
  if (isWindows && path.basename(dir).toLowerCase() === 'lib') dirs.push(path.join(path.dirname(dir), 'bin'))
  const found = []
  for (const d of dirs) {
    for (const name of listDir(d)) if (!name.includes('-cpp.') && res.some((re) => re.test(name))) found.push(path.join(d, name))
  }
  return found
}
/**
 * { found: path | null, invalid: [paths of the wrong class], searched: text } — stops at
 * the first valid library (clang-sys then picks the highest version; any one will do here).
 */
export function findLibclang() {
  const patterns = libclangFilePatterns()
  const invalid = []
  const firstValid = (files) => {
    for (const f of files) {
      if (validLibrary(f)) return f
      invalid.push(f)
    }
    return null
  }
  if (env.LIBCLANG_PATH !== undefined) {
    // Only LIBCLANG_PATH: a matching file, or a directory holding one.
    const p = env.LIBCLANG_PATH
    const searched = `LIBCLANG_PATH=${p} (clang-sys looks nowhere else when it is set)`
    if (p === '') return { found: null, invalid, searched }
    const parent = path.dirname(p)
    if (searchDirectory(parent, patterns).some((f) => path.basename(f) === path.basename(p))) return { found: firstValid([p]), invalid, searched }
    return { found: firstValid(searchDirectory(p, patterns)), invalid, searched }
  }
  const fromDirs = (dirs) => {
    for (const d of dirs) {
      const f = firstValid(searchDirectory(d, patterns))
      if (f) return f
    }
    return null
  }
  const splitPaths = (v) => (v ?? '').split(path.delimiter).filter((d) => d !== '')
  // LD_LIBRARY_PATH and LIBRARY_PATH (cheap; before the globs and llvm-config)
  let f = fromDirs([...splitPaths(env.LD_LIBRARY_PATH), ...splitPaths(env.LIBRARY_PATH)])
  if (f) return { found: f, invalid, searched: '' }
  // the built-in directory globs, shallow ones first (existence is all that matters here)
  const globs = libclangDirGlobs()
  const depth = (g) => g.split(/[\\/]/).filter((s) => s.includes('*')).length
  for (const g of [...globs].sort((a, b) => depth(a) - depth(b))) {
    f = fromDirs(expandDirGlob(g))
    if (f) return { found: f, invalid, searched: '' }
  }
  // llvm-config --prefix: bin/, lib/, lib64/
  const llvmConfig = env.LLVM_CONFIG_PATH ?? 'llvm-config'
  if (which(llvmConfig)) {
    const r = spawnSync(llvmConfig, ['--prefix'], { encoding: 'utf8', timeout: 5000 })
    const prefix = r.status === 0 ? r.stdout.split('\n')[0]?.trim() : ''
    if (prefix) {
      f = fromDirs(['bin', 'lib', 'lib64'].map((s) => path.join(prefix, s)))
      if (f) return { found: f, invalid, searched: '' }
    }
  }
  // macOS: the toolchain of `xcode-select --print-path`
  if (platform === 'darwin' && env.CRIBCALL_PREREQS_LIBCLANG_DIRS === undefined && which('xcode-select')) {
    const r = spawnSync('xcode-select', ['--print-path'], { encoding: 'utf8', timeout: 5000 })
    const dev = r.status === 0 ? r.stdout.split('\n')[0]?.trim() : ''
    if (dev) {
      f = fromDirs([path.join(dev, 'Toolchains/XcodeDefault.xctoolchain/usr/lib')])
      if (f) return { found: f, invalid, searched: '' }
    }
  }
  // (described in clang-sys's order)
  const searched = ['llvm-config --prefix', platform === 'darwin' ? 'xcode-select --print-path' : null, 'LD_LIBRARY_PATH', 'LIBRARY_PATH', ...globs]
  return { found: null, invalid, searched: searched.filter(Boolean).join(', ') }
}

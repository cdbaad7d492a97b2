#!/usr/bin/env node
// Build prerequisites of the native addon, checked before `napi build` runs cargo
// (`npm run build:native` runs this first; so do `npm run build`, `npm run demo` and
// `npm test`). Without it, a missing libclang shows up ~90 s into the build as a bindgen
// panic ("Unable to find libclang") in boring-sys's build script, in a wall of cargo
// output. Plain Node, no dependencies; when everything is present it only looks at PATH
// and a few directories (no network, no package manager, well under 200 ms).
//
// What the build needs, and why (read from the crates in Cargo.lock):
//   - cargo and rustc on PATH (napi build runs cargo). Not installable with apt
//     (Debian's rustc is too old): the message gives the rustup one-liner.
//   - cmake (the `cmake` crate runs it to build BoringSSL; honours $CMAKE) and the build
//     tool of its generator: make (the default "Unix Makefiles") or, only when
//     CMAKE_GENERATOR names Ninja, ninja. Ninja is NOT required otherwise.
//   - a C and a C++ compiler: cc and c++ (or $CC / $CXX): BoringSSL's CMake project is
//     C and C++; ring and rustc's linking use cc too.
//   - git: boring-sys runs `git init` in its copy of the BoringSSL sources (unless
//     BORING_BSSL_PATH or BORING_BSSL_ASSUME_PATCHED is set).
//   - libclang, found where clang-sys (bindgen's loader, "runtime" feature) looks: only
//     LIBCLANG_PATH (a file or a directory) when it is set; otherwise the bin/, lib/ and
//     lib64/ directories of `llvm-config --prefix` ($LLVM_CONFIG_PATH), the directories
//     in LD_LIBRARY_PATH and LIBRARY_PATH, the Xcode toolchain (macOS) and clang-sys's
//     built-in directory globs (Linux: /usr/local/llvm*/lib*, /usr/local/lib*/*/*,
//     /usr/local/lib*/*, /usr/local/lib*, /usr/lib*/*/*, /usr/lib*/*, /usr/lib*);
//     files libclang.so, libclang-*.so, libclang.so.*, libclang-*.so.* (not *-cpp.*),
//     of the host's ELF class. On Debian/Ubuntu also clang's built-in headers
//     (stddef.h, from libclang-common-N-dev) and the C library headers (libc6-dev).
//   - Windows: Visual Studio's C++ tools, cmake (PATH or the one bundled with Visual
//     Studio), NASM (x86/x64: BoringSSL's assembly), libclang (LLVM).
//   - macOS: the Xcode Command Line Tools (cc, c++, make, git, libclang) and cmake.
//   Not needed, checked and confirmed with a build without them: perl and Go (the
//   BoringSSL in boring-sys 4.x ships pre-generated assembly), pkg-config (no crate in
//   the tree uses it), ninja (see above), the clang executable (only libclang is loaded).
//
// Debian packages: git cmake make clang libclang-dev (clang provides cc and c++ and
// pulls libc6-dev; libclang-dev provides libclang.so and clang's headers).
//
// Usage: node scripts/prereqs.mjs [--check | --install | --print-packages]
//   (no option)       check; if something is missing and this is Debian/Ubuntu with
//                     apt-get and root or passwordless sudo, install the missing packages
//                     (one line says so), else exit 1 with one message naming what is
//                     missing and the command that installs it.
//   --check           never install: report, exit 1 if something is missing.
//   --install         the same as no option, and says so when everything is present
//                     (.ci/run uses it).
//   --print-packages  print the Debian/Ubuntu package list (one line) and exit.
// Environment:
//   CRIBCALL_SKIP_PREREQS=1          skip this check entirely (exit 0), for unusual setups
//                                    the checks do not understand.
//   CRIBCALL_PREREQS_NO_INSTALL=1    never install, as if there were no root/sudo.
//   CRIBCALL_PREREQS_LIBCLANG_DIRS   replaces clang-sys's built-in directory globs (and the
//                                    Xcode toolchain directory) with these, separated by
//                                    the path delimiter (':'); an empty value searches
//                                    none. For tests.
import { spawnSync } from 'node:child_process'
import { accessSync, closeSync, constants, existsSync, openSync, readdirSync, readSync, realpathSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import path from 'node:path'

const DEBIAN_PACKAGES = ['git', 'cmake', 'make', 'clang', 'libclang-dev']
const RUSTUP = "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh"
const env = process.env
const platform = process.platform
const isWindows = platform === 'win32'

// ---- options
const args = process.argv.slice(2)
const known = new Set(['--check', '--install', '--print-packages', '--help', '-h'])
for (const a of args) {
  if (!known.has(a)) {
    console.error(`prereqs: unknown option ${a} (try --help)`)
    process.exit(2)
  }
}
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: node scripts/prereqs.mjs [--check | --install | --print-packages]  (see the comment at the top of this file)')
  process.exit(0)
}
if (args.includes('--print-packages')) {
  console.log(DEBIAN_PACKAGES.join(' '))
  process.exit(0)
}
if (env.CRIBCALL_SKIP_PREREQS && env.CRIBCALL_SKIP_PREREQS !== '0') process.exit(0)
const mode = args.includes('--check') ? 'check' : args.includes('--install') ? 'install' : 'auto'

// ---- helpers
/** Candidate Rust host triples, for the per-target variable names the cc, cmake and boring-sys crates read. */
function hostTriples() {
  const arch = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', arm: 'armv7', riscv64: 'riscv64gc', ppc64: 'powerpc64le', s390x: 's390x', loong64: 'loongarch64' }[process.arch] ?? process.arch
  if (platform === 'linux') return [`${arch}-unknown-linux-gnu`, `${arch}-unknown-linux-musl`, `${arch}-unknown-linux-gnueabihf`]
  if (platform === 'darwin') return [`${arch}-apple-darwin`]
  if (isWindows) return [`${arch}-pc-windows-msvc`, `${arch}-pc-windows-gnu`]
  return [`${arch}-unknown-${platform}`]
}
/** NAME_<target>, NAME_<target_with_underscores>, HOST_NAME, NAME: how those crates look a setting up. */
function targetVar(name) {
  for (const t of hostTriples()) {
    for (const k of [`${name}_${t}`, `${name}_${t.replaceAll('-', '_')}`]) if (env[k] !== undefined) return env[k]
  }
  if (env[`HOST_${name}`] !== undefined) return env[`HOST_${name}`]
  return env[name]
}

const pathDirs = (env.PATH ?? env.Path ?? '').split(path.delimiter).filter((d) => d !== '')
const pathExts = isWindows ? (env.PATHEXT ?? '.EXE;.CMD;.BAT;.COM').split(';').filter(Boolean) : ['']

function isExecutableFile(file) {
  try {
    if (!statSync(file).isFile()) return false
    if (!isWindows) accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}
/** The executable `name` resolves to (an absolute or relative path is taken as is), or null. */
function which(name) {
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
function compilerOf(value) {
  const words = value.trim().split(/\s+/)
  const wrappers = new Set(['ccache', 'sccache', 'distcc', 'cachepot', 'buildcache'])
  const first = words[0] ?? ''
  return wrappers.has(path.basename(first).replace(/\.exe$/i, '')) && words[1] ? words[1] : first
}

function listDir(dir) {
  try {
    return readdirSync(dir)
  } catch {
    return []
  }
}
function isDir(p) {
  try {
    return statSync(p).isDirectory()
  } catch {
    return false
  }
}
function globToRegExp(glob, caseInsensitive) {
  let re = ''
  for (const ch of glob) re += ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&')
  return new RegExp(`^${re}$`, caseInsensitive ? 'i' : '')
}
/** Expands a directory glob ('*' within one component, '**' for any depth) like the glob crate (case-insensitive, as clang-sys asks). */
function expandDirGlob(pattern) {
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

// ---- libclang, the way clang-sys 1.x finds it at run time (build/common.rs, build/dynamic.rs)
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
const is64 = ['x64', 'arm64', 'ppc64', 's390x', 'riscv64', 'loong64', 'mips64el'].includes(process.arch)
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
function findLibclang() {
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

// ---- the checks
const isDebianLike = platform === 'linux' && existsSync('/etc/debian_version')
function windowsVsDirs() {
  const roots = [env.ProgramFiles, env['ProgramFiles(x86)']].filter(Boolean).map((p) => path.join(p, 'Microsoft Visual Studio'))
  const dirs = roots.flatMap((r) => listDir(r).flatMap((year) => listDir(path.join(r, year)).map((ed) => path.join(r, year, ed))))
  if (dirs.length === 0) {
    const vswhere = path.join(env['ProgramFiles(x86)'] ?? 'C:\\Program Files (x86)', 'Microsoft Visual Studio', 'Installer', 'vswhere.exe')
    if (existsSync(vswhere)) {
      const r = spawnSync(vswhere, ['-products', '*', '-property', 'installationPath'], { encoding: 'utf8', timeout: 10000 })
      if (r.status === 0) dirs.push(...r.stdout.split(/\r?\n/).map((s) => s.trim()).filter(Boolean))
    }
  }
  return dirs
}

/**
 * Each missing item: { name, why, deb?, dnf?, brew?, clt?, fix? } — deb/dnf/brew: the package
 * that provides it; clt: the Xcode Command Line Tools do; fix: what to do when no package
 * does (Rust, LIBCLANG_PATH pointing at the wrong place, CC naming a missing compiler).
 */
function check() {
  const missing = []
  // Rust
  for (const tool of ['cargo', 'rustc']) {
    if (which(tool)) continue
    const cargoBin = path.join(env.CARGO_HOME ?? path.join(homedir(), '.cargo'), 'bin')
    const installed = isExecutableFile(path.join(cargoBin, isWindows ? `${tool}.exe` : tool))
    missing.push({
      name: tool,
      why: installed ? `installed in ${cargoBin} but not on PATH` : 'the Rust toolchain',
      fix: installed ? (isWindows ? `add ${cargoBin} to PATH` : `. "${path.join(path.dirname(cargoBin), 'env')}"`) : isWindows ? 'install Rust from https://rustup.rs' : RUSTUP,
    })
    break
  }
  const prebuilt = targetVar('BORING_BSSL_PATH') !== undefined
  const assumePatched = !!targetVar('BORING_BSSL_ASSUME_PATCHED')
  if (!prebuilt) {
    // cmake and its generator's build tool
    const cmake = targetVar('CMAKE') ?? 'cmake'
    const vsDirs = isWindows ? windowsVsDirs() : []
    const vsCmake = vsDirs.some((d) => existsSync(path.join(d, 'Common7', 'IDE', 'CommonExtensions', 'Microsoft', 'CMake', 'CMake', 'bin', 'cmake.exe')))
    if (!which(cmake) && !(isWindows && cmake === 'cmake' && vsCmake)) missing.push({ name: cmake === 'cmake' ? 'cmake' : `cmake (CMAKE=${cmake})`, why: 'builds BoringSSL', deb: 'cmake', dnf: 'cmake', brew: 'cmake' })
    const generator = targetVar('CMAKE_GENERATOR') ?? ''
    if (/ninja/i.test(generator)) {
      if (!which('ninja') && !which('ninja-build')) missing.push({ name: 'ninja', why: `CMAKE_GENERATOR=${generator}`, deb: 'ninja-build', dnf: 'ninja-build', brew: 'ninja' })
    } else if (!isWindows && (generator === '' || /Unix Makefiles/i.test(generator))) {
      if (!which('gmake') && !which('make')) missing.push({ name: 'make', why: 'the build tool of cmake\'s default generator, Unix Makefiles', deb: 'make', dnf: 'make', clt: true })
    }
    // C and C++ compilers
    if (isWindows) {
      const hasMsvc = which('cl') || vsDirs.some((d) => existsSync(path.join(d, 'VC', 'Tools', 'MSVC')))
      if (!hasMsvc) missing.push({ name: 'the Visual Studio C++ build tools', why: 'compile BoringSSL' })
      if (['x64', 'ia32'].includes(process.arch)) {
        const nasmDirs = [env.ProgramFiles, env.LOCALAPPDATA].filter(Boolean).map((p) => path.join(p, 'NASM'))
        const hasNasm = (env.ASM_NASM && which(env.ASM_NASM)) || which('nasm') || which('yasm') || nasmDirs.some((d) => existsSync(path.join(d, 'nasm.exe')))
        if (!hasNasm) missing.push({ name: 'nasm', why: "BoringSSL's x86 assembly" })
      }
    } else {
      const cc = targetVar('CC') ?? 'cc'
      const cxx = targetVar('CXX') ?? 'c++'
      const ccMissing = !which(compilerOf(cc))
      const cxxMissing = !which(compilerOf(cxx))
      if (ccMissing || cxxMissing) {
        const names = [ccMissing ? (cc === 'cc' ? 'cc' : `CC=${cc}`) : null, cxxMissing ? (cxx === 'c++' ? 'c++' : `CXX=${cxx}`) : null].filter(Boolean).join(' and ')
        const fromEnv = (ccMissing && cc !== 'cc') || (cxxMissing && cxx !== 'c++')
        missing.push(
          fromEnv
            ? { name: names, why: 'not on PATH', fix: 'install that compiler, or unset CC/CXX to use cc and c++' }
            : { name: names, why: 'the C/C++ compiler for BoringSSL and the linker', deb: 'clang', dnf: 'gcc-c++', clt: true },
        )
      }
      if (isDebianLike && !existsSync('/usr/include/stdint.h')) missing.push({ name: 'the C library headers', why: '/usr/include/stdint.h', deb: 'libc6-dev', dnf: 'glibc-devel' })
    }
  }
  if (!assumePatched && !prebuilt && !which('git')) missing.push({ name: 'git', why: 'boring-sys runs `git init` on its copy of BoringSSL', deb: 'git', dnf: 'git', clt: true })
  if (platform === 'darwin') {
    const r = spawnSync('xcode-select', ['-p'], { encoding: 'utf8', timeout: 5000 })
    if (r.status !== 0) missing.push({ name: 'the Xcode Command Line Tools', why: 'cc, c++, make, git and libclang', clt: true })
  }
  // libclang (bindgen)
  const lib = findLibclang()
  if (!lib.found) {
    const wrongClass = lib.invalid.length ? `; not the host's ${is64 ? '64' : '32'}-bit: ${lib.invalid.slice(0, 2).join(', ')}` : ''
    if (env.LIBCLANG_PATH !== undefined) {
      missing.push({
        name: 'libclang',
        why: `bindgen loads it to generate BoringSSL's bindings; none at ${lib.searched}${wrongClass}`,
        fix: 'unset LIBCLANG_PATH, or set it to the directory holding libclang',
      })
    } else {
      missing.push({ name: 'libclang', why: `bindgen loads it to generate BoringSSL's bindings; none found where clang-sys looks: ${lib.searched}${wrongClass}`, deb: 'libclang-dev', dnf: 'clang-devel', clt: true })
    }
  } else if (isDebianLike) {
    // Debian's libclang finds its built-in headers (stddef.h ...) in /usr/lib/llvm-N/lib/clang/*/include
    let real = lib.found
    try {
      real = realpathSync(lib.found)
    } catch {}
    if (real.startsWith('/usr/lib/')) {
      const headers = expandDirGlob('/usr/lib/llvm-*/lib/clang/*/include').some((d) => existsSync(path.join(d, 'stddef.h')))
      if (!headers) missing.push({ name: "clang's built-in headers (stddef.h)", why: `for libclang at ${lib.found}`, deb: 'libclang-dev' })
    }
  }
  return missing
}

// ---- report and install
const uid = typeof process.getuid === 'function' ? process.getuid() : -1
const sudo = uid === 0 ? '' : 'sudo '
function uniq(xs) {
  return [...new Set(xs.filter(Boolean))]
}
/** Debian packages in DEBIAN_PACKAGES order, others after. */
function debPackages(missing) {
  const rank = (p) => (DEBIAN_PACKAGES.includes(p) ? DEBIAN_PACKAGES.indexOf(p) : DEBIAN_PACKAGES.length)
  return uniq(missing.map((m) => m.deb)).sort((a, b) => rank(a) - rank(b))
}
function aptCommand(pkgs) {
  return `${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends ${pkgs.join(' ')}`
}
/** The one message: what is missing, the command for this system, the others in one line. */
function report(missing, extra = '') {
  const what = missing.map((m) => `${m.name} (${m.why})`).join('; ')
  const lines = [`cribcall-quic: cannot build the native addon: missing ${what}${extra}.`]
  const deb = debPackages(missing)
  const dnf = uniq(missing.map((m) => m.dnf))
  const others = []
  if (platform === 'linux') {
    if (deb.length) lines.push(`  Debian/Ubuntu: ${aptCommand(deb)}`)
    if (dnf.length) others.push(`Fedora: ${sudo}dnf install -y ${dnf.join(' ')}`)
    others.push('macOS/Windows: see README.md, "The two commands"')
  } else if (platform === 'darwin') {
    const brew = uniq(missing.map((m) => m.brew))
    const cmd = [missing.some((m) => m.clt) ? 'xcode-select --install' : null, brew.length ? `brew install ${brew.join(' ')}` : null].filter(Boolean)
    if (cmd.length) lines.push(`  macOS: ${cmd.join(' && ')}`)
    others.push('see README.md, "The two commands"')
  } else if (isWindows) {
    lines.push('  Windows: Visual Studio Build Tools (C++ workload, with its CMake tools) and `choco install nasm llvm` (LLVM elsewhere than C:\\Program Files\\LLVM: set LIBCLANG_PATH to its bin directory)')
    others.push('see README.md, "The two commands"')
  } else {
    if (deb.length) lines.push(`  Debian/Ubuntu: ${aptCommand(deb)}`)
    others.push('see README.md, "The two commands"')
  }
  for (const m of missing) if (m.fix) lines.push(`  ${m.name}: ${m.fix}`)
  lines.push(`  (${[...others, 'skip this check with CRIBCALL_SKIP_PREREQS=1'].join(' · ')})`)
  console.error(lines.join('\n'))
}

function installer() {
  if (env.CRIBCALL_PREREQS_NO_INSTALL && env.CRIBCALL_PREREQS_NO_INSTALL !== '0') return null
  if (platform !== 'linux' || !which('apt-get') || !which('dpkg')) return null
  if (uid === 0) return []
  if (which('sudo') && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore', timeout: 10000 }).status === 0) return ['sudo']
  return null
}

let missing = check()
if (missing.length === 0) {
  if (mode !== 'auto') console.log('cribcall-quic: build prerequisites present')
  process.exit(0)
}
const installable = debPackages(missing)
const prefix = mode === 'check' || installable.length === 0 ? null : installer()
if (prefix) {
  console.log(`cribcall-quic: installing missing build prerequisites with apt-get: ${installable.join(' ')}`)
  const run = (argv) => {
    const [cmd, ...rest] = [...prefix, 'env', 'DEBIAN_FRONTEND=noninteractive', ...argv]
    return spawnSync(cmd, rest, { stdio: ['ignore', 'inherit', 'inherit'] }).status
  }
  let status = run(['apt-get', 'update', '-q'])
  if (status === 0) status = run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...installable])
  if (status !== 0) {
    report(missing, ` (apt-get failed: exit ${status})`)
    process.exit(1)
  }
  missing = check()
  if (missing.length === 0) {
    if (mode !== 'auto') console.log('cribcall-quic: build prerequisites present')
    process.exit(0)
  }
  report(missing, ` (still, after apt-get install ${installable.join(' ')})`)
  process.exit(1)
}
report(missing)
process.exit(1)

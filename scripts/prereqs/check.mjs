// scripts/prereqs.mjs: the checks — what the native build needs that this host lacks
// (the list and the reasons are in the comment at the top of scripts/prereqs.mjs).
import { spawnSync } from 'node:child_process'
import { existsSync, realpathSync } from 'node:fs'
import { homedir } from 'node:os'
import path from 'node:path'

import { compilerOf, env, expandDirGlob, is64, isExecutableFile, isWindows, listDir, platform, targetVar, which } from './host.mjs'
import { findLibclang } from './libclang.mjs'

const RUSTUP = "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh"
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
export function check() {
  const missing = []
  checkRust(missing)
  const prebuilt = targetVar('BORING_BSSL_PATH') !== undefined
  const assumePatched = !!targetVar('BORING_BSSL_ASSUME_PATCHED')
  if (!prebuilt) {
    const vsDirs = isWindows ? windowsVsDirs() : []
    checkCmake(missing, vsDirs)
    if (isWindows) checkWindowsCompilers(missing, vsDirs)
    else checkCompilers(missing)
  }
  if (!assumePatched && !prebuilt && !which('git')) missing.push({ name: 'git', why: 'boring-sys runs `git init` on its copy of BoringSSL', deb: 'git', dnf: 'git', clt: true })
  if (platform === 'darwin') {
    const r = spawnSync('xcode-select', ['-p'], { encoding: 'utf8', timeout: 5000 })
    if (r.status !== 0) missing.push({ name: 'the Xcode Command Line Tools', why: 'cc, c++, make, git and libclang', clt: true })
  }
  checkLibclang(missing)
  return missing
}

/** cargo and rustc on PATH (or installed in CARGO_HOME but not on PATH). */
function checkRust(missing) {
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
}

/** cmake (PATH, $CMAKE, or Visual Studio's) and its generator's build tool. */
function checkCmake(missing, vsDirs) {
  const cmake = targetVar('CMAKE') ?? 'cmake'
  const vsCmake = vsDirs.some((d) => existsSync(path.join(d, 'Common7', 'IDE', 'CommonExtensions', 'Microsoft', 'CMake', 'CMake', 'bin', 'cmake.exe')))
  if (!which(cmake) && !(isWindows && cmake === 'cmake' && vsCmake)) missing.push({ name: cmake === 'cmake' ? 'cmake' : `cmake (CMAKE=${cmake})`, why: 'builds BoringSSL', deb: 'cmake', dnf: 'cmake', brew: 'cmake' })
  const generator = targetVar('CMAKE_GENERATOR') ?? ''
  if (/ninja/i.test(generator)) {
    if (!which('ninja') && !which('ninja-build')) missing.push({ name: 'ninja', why: `CMAKE_GENERATOR=${generator}`, deb: 'ninja-build', dnf: 'ninja-build', brew: 'ninja' })
  } else if (!isWindows && (generator === '' || /Unix Makefiles/i.test(generator))) {
    if (!which('gmake') && !which('make')) missing.push({ name: 'make', why: 'the build tool of cmake\'s default generator, Unix Makefiles', deb: 'make', dnf: 'make', clt: true })
  }
}

/** Windows: Visual Studio's C++ tools, and NASM for BoringSSL's x86 assembly. */
function checkWindowsCompilers(missing, vsDirs) {
  const hasMsvc = which('cl') || vsDirs.some((d) => existsSync(path.join(d, 'VC', 'Tools', 'MSVC')))
  if (!hasMsvc) missing.push({ name: 'the Visual Studio C++ build tools', why: 'compile BoringSSL' })
  if (['x64', 'ia32'].includes(process.arch)) {
    const nasmDirs = [env.ProgramFiles, env.LOCALAPPDATA].filter(Boolean).map((p) => path.join(p, 'NASM'))
    const hasNasm = (env.ASM_NASM && which(env.ASM_NASM)) || which('nasm') || which('yasm') || nasmDirs.some((d) => existsSync(path.join(d, 'nasm.exe')))
    if (!hasNasm) missing.push({ name: 'nasm', why: "BoringSSL's x86 assembly" })
  }
}

/** Elsewhere: the C and C++ compilers (cc and c++, or $CC / $CXX) and, on Debian, the C library headers. */
function checkCompilers(missing) {
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

/** libclang (bindgen loads it) and, for Debian's, clang's built-in headers. */
function checkLibclang(missing) {
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
}

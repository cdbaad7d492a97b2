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
//
// The modules in scripts/prereqs/: host.mjs (platform, PATH, the crates' per-target
// variables, directory globs), libclang.mjs (clang-sys's search), check.mjs (the checks),
// apt.mjs (installing with apt-get; scripts/coverage.mjs uses it too).
import { aptCommand, aptInstall, aptInstaller, sudo } from './prereqs/apt.mjs'
import { check } from './prereqs/check.mjs'
import { env, isWindows, platform } from './prereqs/host.mjs'

const DEBIAN_PACKAGES = ['git', 'cmake', 'make', 'clang', 'libclang-dev']

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

// ---- report and install
function uniq(xs) {
  return [...new Set(xs.filter(Boolean))]
}
/** Debian packages in DEBIAN_PACKAGES order, others after. */
function debPackages(missing) {
  const rank = (p) => (DEBIAN_PACKAGES.includes(p) ? DEBIAN_PACKAGES.indexOf(p) : DEBIAN_PACKAGES.length)
  return uniq(missing.map((m) => m.deb)).sort((a, b) => rank(a) - rank(b))
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

let missing = check()
if (missing.length === 0) {
  if (mode !== 'auto') console.log('cribcall-quic: build prerequisites present')
  process.exit(0)
}
const installable = debPackages(missing)
const prefix = mode === 'check' || installable.length === 0 ? null : aptInstaller()
if (prefix) {
  console.log(`cribcall-quic: installing missing build prerequisites with apt-get: ${installable.join(' ')}`)
  const status = aptInstall(prefix, installable)
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

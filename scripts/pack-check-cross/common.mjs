// scripts/pack-check-cross.mjs: what every step shares — the repository, the package,
// the cache of registry downloads, and running commands (a failure ends the run).
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
// Outside the work tree: zig reports its include directories relative to the current
// directory when they are below it, and bindgen (run from boring-sys's directory) then
// cannot find them. Kept between CI runs on the same machine.
export const cache = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'cribcall-cross')
export const npmCmd = 'npm'
export const MUSL_LOADER = '/lib/ld-musl-x86_64.so.1'

export const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
export const binaryName = pkg.napi.binaryName

/** Ends the run: one line on stderr, exit 1. */
export function fail(message) {
  console.error(`pack:check:cross FAILED: ${message}`)
  process.exit(1)
}

/** Announces a step. */
export function step(message) {
  console.log(`== pack:check:cross: ${message}`)
}

/** Seconds since `t` (a Date.now()), for the log. */
export const since = (t) => `${((Date.now() - t) / 1000).toFixed(1)} s`

/** Runs a command; returns stdout. Shows its output only if it fails. */
export function run(cmd, argv, options = {}) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 256 << 20, ...options })
  if (r.error || r.status !== 0) {
    process.stderr.write(r.stdout ?? '')
    process.stderr.write(r.stderr ?? '')
    fail(`${cmd} ${argv.join(' ')} exited with ${r.error ?? r.status}`)
  }
  return r.stdout
}

/** Runs a command with its output shown. */
export function runLoud(cmd, argv, options = {}) {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', ...options })
  if (r.error || r.status !== 0) fail(`${cmd} ${argv.join(' ')} exited with ${r.error ?? r.status}`)
}

/** Whether `cmd` is on PATH. */
export const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0

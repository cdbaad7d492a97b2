// scripts/prereqs.mjs and scripts/coverage.mjs: installing Debian/Ubuntu packages with
// apt-get, when this is such a system and we are root or have passwordless sudo.
import { spawnSync } from 'node:child_process'

import { env, platform, which } from './host.mjs'

const uid = typeof process.getuid === 'function' ? process.getuid() : -1

/** `sudo ` when not root: the prefix of the apt-get commands a message shows. */
export const sudo = uid === 0 ? '' : 'sudo '

/** The one-line command that installs `pkgs`, for a message. */
export function aptCommand(pkgs) {
  return `${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends ${pkgs.join(' ')}`
}

/**
 * How to run apt-get here: [] as root, ['sudo'] with passwordless sudo; null when it
 * cannot (not Debian/Ubuntu, no root or sudo, or CRIBCALL_PREREQS_NO_INSTALL set).
 */
export function aptInstaller() {
  if (env.CRIBCALL_PREREQS_NO_INSTALL && env.CRIBCALL_PREREQS_NO_INSTALL !== '0') return null
  if (platform !== 'linux' || !which('apt-get') || !which('dpkg')) return null
  if (uid === 0) return []
  if (which('sudo') && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore', timeout: 10000 }).status === 0) return ['sudo']
  return null
}

/** `apt-get update`, then `apt-get install` of `pkgs`, run with `prefix`; the exit status (0: installed). */
export function aptInstall(prefix, pkgs) {
  const run = (argv) => {
    const [cmd, ...rest] = [...prefix, 'env', 'DEBIAN_FRONTEND=noninteractive', ...argv]
    return spawnSync(cmd, rest, { stdio: ['ignore', 'inherit', 'inherit'] }).status
  }
  const status = run(['apt-get', 'update', '-q'])
  return status === 0 ? run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...pkgs]) : status
}

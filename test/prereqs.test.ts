// scripts/prereqs.mjs, the check `npm run build:native` runs before cargo: on a machine
// without libclang the README's first command (`npm ci && npm run demo`) must stop at
// once with one message naming libclang and the apt-get command, not 90 s later with a
// bindgen panic from boring-sys's build script. The tools the script looks for are
// fakes in a temporary directory that is the whole PATH (each fails loudly if anything
// runs it: nothing may), libclang is hidden with CRIBCALL_PREREQS_LIBCLANG_DIRS (the
// directories the script searches instead of clang-sys's built-in list) and
// installation is made impossible with CRIBCALL_PREREQS_NO_INSTALL, so the test
// neither depends on nor changes the machine's packages. Linux only (the script's
// search mirrors clang-sys per platform; the apt path is the Linux one).
import { spawn } from 'node:child_process'
import { existsSync, promises as fs, realpathSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const script = path.join(root, 'scripts', 'prereqs.mjs')
const TOOLS = ['cargo', 'rustc', 'cmake', 'make', 'cc', 'c++', 'git']
const APT_LIBCLANG = /^ {2}Debian\/Ubuntu: (sudo )?apt-get update && (sudo )?apt-get install -y --no-install-recommends libclang-dev$/m

interface Run {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

function run(argv: string[], env: NodeJS.ProcessEnv, timeoutMs = 8_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, argv, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${argv.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, timeoutMs)
    child.on('error', reject)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, ms: performance.now() - started })
    })
  })
}

/** The executable `name` on this process's PATH. */
function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir !== '' && existsSync(path.join(dir, name))) return path.join(dir, name)
  }
  return null
}

/** No trace of cargo, bindgen or any of the fake tools having run. */
function expectNothingRan(out: string): void {
  expect(out).not.toMatch(/panicked/)
  expect(out).not.toMatch(/thread 'main'/)
  expect(out).not.toMatch(/Unable to find libclang/)
  expect(out).not.toMatch(/^\s*Compiling |build-script/m)
  expect(out).not.toMatch(/FAKE \S+ RAN/)
}

describe.runIf(process.platform === 'linux')('build prerequisites (scripts/prereqs.mjs)', () => {
  let dir = ''
  let bin = ''
  let empty = ''
  let lib = ''
  /** Only the fakes on PATH, libclang hidden, no installing; nothing inherited from this process's environment. */
  let hidden: Record<string, string> = {}

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(tmpdir(), 'cribcall-prereqs-'))
    bin = path.join(dir, 'bin')
    empty = path.join(dir, 'empty')
    lib = path.join(dir, 'lib')
    await Promise.all([fs.mkdir(bin), fs.mkdir(empty), fs.mkdir(lib), fs.mkdir(path.join(dir, 'home'))])
    for (const tool of TOOLS) {
      await fs.writeFile(path.join(bin, tool), `#!/bin/sh\necho "FAKE ${tool} RAN $*" >&2\nexit 99\n`, { mode: 0o755 })
    }
    // for `npm run`: the script line starts with `node`, and npm runs it with `sh`
    await fs.symlink(process.execPath, path.join(bin, 'node'))
    await fs.symlink(onPath('sh') ?? '/bin/sh', path.join(bin, 'sh'))
    // and npm itself, for scripts that run `npm run …` (demo → build → build:native)
    const npmOnPath = onPath('npm')
    const npmCli = process.env.npm_execpath?.endsWith('.js') ? process.env.npm_execpath : npmOnPath ? realpathSync(npmOnPath) : undefined
    if (npmCli !== undefined) await fs.writeFile(path.join(bin, 'npm'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(npmCli)} "$@"\n`, { mode: 0o755 })
    // a libclang of the host's ELF class, for the "everything present" case
    const is64 = ['x64', 'arm64', 'ppc64', 's390x', 'riscv64', 'loong64', 'mips64el'].includes(process.arch)
    await fs.writeFile(path.join(lib, 'libclang-14.so.1'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1, 0]))
    hidden = {
      PATH: bin,
      HOME: path.join(dir, 'home'),
      CRIBCALL_PREREQS_LIBCLANG_DIRS: empty,
      CRIBCALL_PREREQS_NO_INSTALL: '1',
    }
  })
  afterAll(async () => {
    if (dir !== '') await fs.rm(dir, { recursive: true, force: true })
  })

  it('--check without libclang: exit 1 at once with one message naming libclang and the apt-get command', async () => {
    const r = await run([script, '--check'], hidden)
    expect(r.code).toBe(1)
    expect(r.ms).toBeLessThan(2_000)
    expect(r.stdout).toBe('')
    expectNothingRan(r.stderr)
    const lines = r.stderr.trimEnd().split('\n')
    expect(lines.length).toBeLessThanOrEqual(4)
    expect(lines[0]).toMatch(/^cribcall-quic: cannot build the native addon: missing libclang \(bindgen/)
    // only libclang: every fake tool counts as present
    expect(lines[0]).not.toMatch(/cmake|make \(|git \(|cargo|c\+\+/)
    expect(r.stderr).toMatch(APT_LIBCLANG)
    expect(r.stderr.match(/cannot build the native addon/g)).toHaveLength(1)
  })

  it('LIBCLANG_PATH set to a directory without libclang: named, with the fix (clang-sys looks nowhere else)', async () => {
    const r = await run([script, '--check'], { ...hidden, CRIBCALL_PREREQS_LIBCLANG_DIRS: lib, LIBCLANG_PATH: empty })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(new RegExp(`missing libclang \\(.*LIBCLANG_PATH=${empty.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
    expect(r.stderr).toMatch(/^ {2}libclang: unset LIBCLANG_PATH, or set it to the directory holding libclang$/m)
  })

  it('everything present: exit 0 quickly, nothing run; LIBCLANG_PATH naming the library file works too', async () => {
    const r = await run([script, '--check'], { ...hidden, CRIBCALL_PREREQS_LIBCLANG_DIRS: lib })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('cribcall-quic: build prerequisites present\n')
    expect(r.ms).toBeLessThan(2_000)
    // the default mode (what build:native runs) prints nothing when all is well
    const quiet = await run([script], { ...hidden, LIBCLANG_PATH: path.join(lib, 'libclang-14.so.1') })
    expect({ code: quiet.code, stdout: quiet.stdout, stderr: quiet.stderr }).toEqual({ code: 0, stdout: '', stderr: '' })
  })

  it('names every missing tool and the packages that provide them in one apt-get line', async () => {
    await fs.mkdir(path.join(dir, 'bin-rust'), { recursive: true })
    for (const tool of ['cargo', 'rustc']) await fs.copyFile(path.join(bin, tool), path.join(dir, 'bin-rust', tool))
    const r = await run([script, '--check'], { ...hidden, PATH: path.join(dir, 'bin-rust') })
    expect(r.code).toBe(1)
    expectNothingRan(r.stderr)
    const first = r.stderr.split('\n')[0] ?? ''
    for (const what of ['cmake', 'make', 'cc and c++', 'git', 'libclang']) expect(first).toContain(`${what} (`)
    expect(r.stderr).toMatch(/^ {2}Debian\/Ubuntu: (sudo )?apt-get update && (sudo )?apt-get install -y --no-install-recommends git cmake make clang libclang-dev$/m)
  })

  it('CRIBCALL_SKIP_PREREQS=1 skips the check', async () => {
    const r = await run([script, '--check'], { ...hidden, CRIBCALL_SKIP_PREREQS: '1' })
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: '', stderr: '' })
  })

  it('--print-packages prints the Debian package list on one line; .ci/run installs them through the script, the README lists them', async () => {
    const r = await run([script, '--print-packages'], hidden)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^[a-z0-9+.-]+( [a-z0-9+.-]+)*\n$/)
    const pkgs = r.stdout.trim().split(' ')
    for (const p of ['cmake', 'make', 'clang', 'libclang-dev', 'git']) expect(pkgs).toContain(p)
    const ci = await fs.readFile(path.join(root, '.ci', 'run'), 'utf8')
    expect(ci).toMatch(/^node scripts\/prereqs\.mjs --install$/m)
    expect(ci).not.toMatch(/libclang-dev/) // one source: the script
    const readme = await fs.readFile(path.join(root, 'README.md'), 'utf8')
    expect(readme).toContain(`Debian/Ubuntu: \`sudo apt-get install --no-install-recommends ${pkgs.join(' ')}\``)
  })

  it("the README's first command (`npm run demo`) without libclang and without root/sudo stops before cargo with the one message", async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
    expect(pkg.scripts['build:native']).toMatch(/^node scripts\/prereqs\.mjs && napi build /)
    expect(pkg.scripts.demo).toMatch(/^npm run build && /)
    expect(pkg.scripts.build).toMatch(/^npm run build:native && /)
    const readme = await fs.readFile(path.join(root, 'README.md'), 'utf8')
    expect(readme).toMatch(/^npm ci && npm run demo +#/m) // the first command (npm ci installs no native code)
    // npm itself, run by this node: $npm_execpath when vitest runs under npm/npx, else npm on PATH
    const npmOnPath = onPath('npm')
    const npmCli = process.env.npm_execpath?.endsWith('.js') ? process.env.npm_execpath : npmOnPath ? realpathSync(npmOnPath) : null
    expect(npmCli, 'npm not found').not.toBeNull()
    const r = await run([npmCli as string, 'run', 'demo'], hidden)
    expect(r.code).not.toBe(0)
    expect(r.ms).toBeLessThan(10_000)
    expectNothingRan(r.stdout + r.stderr)
    expect(r.stderr.match(/cannot build the native addon/g)).toHaveLength(1)
    expect(r.stderr).toMatch(/missing libclang \(bindgen/)
    expect(r.stderr).toMatch(APT_LIBCLANG)
  })

  // The real machine: where the addon has been built from source (target/ exists), the
  // prerequisites are present and the check must agree, quickly and without installing.
  it.runIf(existsSync(path.join(root, 'target')))('this machine, which has built the addon: --check exits 0', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, CRIBCALL_PREREQS_NO_INSTALL: '1' }
    delete env.CRIBCALL_SKIP_PREREQS
    const r = await run([script, '--check'], env)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.ms).toBeLessThan(2_000)
  })
})

// What pack-check.mjs and pack-check-cross.mjs share: the consumers (copied into a fresh
// project, the TypeScript one compiled there against the installed types), a PATH
// without a Rust toolchain, running a consumer with a timeout, and judging its output.
import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { delimiter, dirname, join } from 'node:path'

/** The consumers as run, in order (consumer-ts.mjs is compiled from consumer-ts.mts). */
export const CONSUMERS = ['consumer.mjs', 'consumer.cjs', 'consumer-ts.mjs']

/**
 * Copies the consumers into `project` and compiles the TypeScript one with the
 * repository's tsc (strict, module nodenext, the installed .d.ts checked: no
 * skipLibCheck). `run(cmd, argv, options)` runs a command or fails the check.
 */
export function prepareConsumers(root, project, run) {
  for (const c of ['consumer.mjs', 'consumer.cjs', 'consumer-ts.mts']) copyFileSync(join(root, 'scripts', 'pack-check', c), join(project, c))
  const compilerOptions = {
    strict: true,
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2022',
    lib: ['es2022', 'esnext.disposable'],
    types: ['node'],
    typeRoots: [join(root, 'node_modules', '@types')],
    outDir: '.',
    noEmitOnError: true,
  }
  writeFileSync(join(project, 'tsconfig.json'), `${JSON.stringify({ compilerOptions, files: ['consumer-ts.mts'] }, null, 2)}\n`)
  run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(project, 'tsconfig.json')], { cwd: project })
  if (!existsSync(join(project, 'consumer-ts.mjs'))) throw new Error('tsc did not emit consumer-ts.mjs')
}

/** `bin` first, then the system directories that hold no cargo/rustc; throws if either is still reachable. */
export function pathWithoutRust(bin) {
  const system = ['/usr/bin', '/bin'].filter((d) => !['cargo', 'rustc'].some((t) => existsSync(join(d, t))))
  const PATH = [bin, ...system].join(delimiter)
  const which = spawnSync('sh', ['-c', 'command -v cargo || command -v rustc'], { env: { PATH }, encoding: 'utf8' })
  if (which.status === 0) throw new Error(`cargo/rustc still reachable on the consumers' PATH (${which.stdout.trim()})`)
  return PATH
}

/** Runs `argv` in `cwd` with exactly `env`; killed after `timeoutMs` (noted in stderr as `label`). */
export function runWithTimeout(argv, { cwd, env, timeoutMs, label }) {
  return new Promise((resolvePromise) => {
    const started = Date.now()
    const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      stderr += `\n[${label}] killed after ${timeoutMs} ms`
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolvePromise({ code, signal, ms: Date.now() - started, stdout: stdout.trim(), stderr: stderr.trim() })
    })
  })
}

/** A consumer passed: exit 0 and exactly one line, `<name>: ok …`. */
export function consumerOk(consumer, r) {
  const lines = r.stdout.split('\n').filter(Boolean)
  return r.code === 0 && lines.length === 1 && lines[0].startsWith(`${consumer}: ok`)
}

/** Prints a run's PASS line, or its FAIL line with its output. */
export function report(name, ok, r, passText = r.stdout) {
  if (ok) {
    console.log(`   PASS ${passText} [${r.ms} ms]`)
    if (r.stderr) console.log(`        stderr: ${r.stderr.split('\n').join('\n                ')}`)
    return
  }
  console.log(`   FAIL ${name}: exit ${r.code}${r.signal ? ` (${r.signal})` : ''} after ${r.ms} ms`)
  if (r.stdout) console.log(`        stdout: ${r.stdout.split('\n').join('\n                ')}`)
  if (r.stderr) console.log(`        stderr: ${r.stderr.split('\n').join('\n                ')}`)
}

const npmCmd = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/**
 * Packs the main package as `napi prepublish -t npm` publishes it: the files `npm pack`
 * selects (no sources, tests, build output or .node), plus one exact-version
 * optionalDependency per npm/<platform> package. Returns the tarball's path and its
 * `npm pack` record. `run` runs a command (or fails the check) and returns its stdout.
 */
export function packMain(root, work, tarballs, run) {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const [dry] = JSON.parse(run(npmCmd, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root }))
  const files = dry.files.map((f) => f.path.replaceAll('\\', '/'))
  const forbidden = files.filter((f) => /^(native|src|test|target|scripts|npm|node_modules)\//.test(f) || f.endsWith('.node'))
  if (forbidden.length > 0) throw new Error(`the main package would ship ${forbidden.slice(0, 10).join(', ')}`)
  for (const needed of ['package.json', 'index.js', 'index.d.ts', 'dist/index.js', 'dist/index.d.ts', 'README.md']) {
    if (!files.includes(needed)) throw new Error(`the main package would not ship ${needed}`)
  }
  const stage = join(work, 'main')
  for (const f of files) {
    mkdirSync(dirname(join(stage, f)), { recursive: true })
    copyFileSync(join(root, f), join(stage, f))
  }
  const staged = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8'))
  staged.optionalDependencies = {}
  for (const dir of readdirSync(join(root, 'npm')).sort()) {
    const p = JSON.parse(readFileSync(join(root, 'npm', dir, 'package.json'), 'utf8'))
    if (p.version !== pkg.version) throw new Error(`npm/${dir} has version ${p.version}, the package ${pkg.version} (run \`npx napi version\`)`)
    staged.optionalDependencies[p.name] = p.version
  }
  writeFileSync(join(stage, 'package.json'), `${JSON.stringify(staged, null, 2)}\n`)
  const [packed] = JSON.parse(run(npmCmd, ['pack', '--json', '--ignore-scripts', '--pack-destination', tarballs], { cwd: stage }))
  return { tarball: join(tarballs, packed.filename), packed }
}

/** Packs npm/<abi> with `nodeFile` copied in as <binaryName>.<abi>.node. */
export function packPlatform(root, work, tarballs, abi, nodeFile, run) {
  const { version, napi } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const stage = join(work, abi)
  cpSync(join(root, 'npm', abi), stage, { recursive: true })
  const p = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8'))
  if (p.version !== version) throw new Error(`npm/${abi} has version ${p.version}, the package ${version}`)
  const file = `${napi.binaryName}.${abi}.node`
  copyFileSync(nodeFile, join(stage, file))
  const [packed] = JSON.parse(run(npmCmd, ['pack', '--json', '--ignore-scripts', '--pack-destination', tarballs], { cwd: stage }))
  const names = packed.files.map((f) => f.path)
  if (!names.includes(file)) throw new Error(`${packed.filename} lacks the .node: ${names}`)
  return { tarball: join(tarballs, packed.filename), name: p.name, packed, names }
}

#!/usr/bin/env node
// cribcall-agent: the headless pairing agent. Uses only the public API. This file wires
// the commands (src/cli/commands/, each loaded only when it runs, so --help and
// --version do not load the library or the native addon).
import { Command, CommanderError, Option } from 'commander'
import { readFileSync } from 'node:fs'
import { DEFAULT_PORT, defaultDir, parseDir, parseFingerprint, parseName, parsePort, parsePositive, parseWebListen } from './options.js'
import { EXIT, fail, jsonRequested, oneLine, out, usageLine } from './output.js'
import type { MonitorCmd } from './commands/monitor.js'
import type { PairCmd } from './commands/pair.js'

/** This package's version (dist/cli/main.js → package.json). */
function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown }
    return typeof pkg.version === 'string' ? pkg.version : 'unknown'
  } catch {
    return 'unknown'
  }
}

/** The --dir option every command that uses the state directory takes. */
function dirOption(): Option {
  return new Option('--dir <dir>', 'state directory: identity and trust store (env CRIBCALL_AGENT_DIR, else the platform config directory)').default(defaultDir()).argParser(parseDir)
}

/** The root command: global options, one-line usage errors; the commands in help order. */
function program(argv: readonly string[]): Command {
  const program = new Command()
  program
    .name('cribcall-agent')
    .description('CribCall pairing agent: run a monitor, pair and watch as a listener, manage trust')
    .version(version(), '-V, --version', 'print the version')
    .option('--json', 'print one JSON object per line')
    .option('--debug', 'print stack traces on errors')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      // Usage errors are one line, like every other error.
      outputError: (s, write) => write(usageLine(oneLine(s).replace(/^error: /, ''), jsonRequested(argv))),
    })
    .hook('preAction', (cmd) => {
      const g = cmd.optsWithGlobals<{ json?: boolean; debug?: boolean }>()
      out.json = g.json === true
      out.debug = g.debug === true
    })
  addIdentityCommand(program)
  addMonitorCommand(program)
  addPairCommand(program)
  addWatchCommand(program)
  addTrustCommands(program)
  addDemoCommand(program)
  return program
}

/** `identity`: create or show this device's identity. */
function addIdentityCommand(program: Command): void {
  program
    .command('identity')
    .description("create or show this device's identity")
    .addOption(dirOption())
    .addOption(new Option('--key <type>', 'key type for a new identity').choices(['p256', 'ed25519']))
    .action(async (o: { dir: string; key?: 'p256' | 'ed25519' }) => (await import('./commands/identity.js')).cmdIdentity(o))
}

/** `monitor`: run as a monitor. */
function addMonitorCommand(program: Command): void {
  program
    .command('monitor')
    .description('run as a monitor: pairing window, listeners, NOISE_EVENTs from stdin ("noise <level>")')
    .addOption(dirOption())
    .option('--host <host>', 'address to bind', '0.0.0.0')
    .option('--port <port>', 'UDP port (0: any free port, printed in the listening line)', parsePort, DEFAULT_PORT)
    .option('--name <name>', 'monitor name shown to listeners', parseName, 'CribCall monitor')
    .addOption(new Option('--pair <mode>', 'pairing methods to offer at start (off: no window until `pair` is typed, which then offers both)').choices(['qr', 'pin', 'both', 'off']).default('both'))
    .option('--pair-minutes <m>', 'pairing window length in minutes', parsePositive, 5)
    .option('--auto-approve', 'pair every listener that passes the checks, without asking (default: ask on the terminal, or an approve-request event answered on stdin)')
    .option('--allow-legacy-qr', 'also accept QR pairing requests without the proof of the QR code secret (listeners that predate it; any device on the LAN can send one)')
    .option('--web <[host:]port>', 'serve the web console (QR code, PIN, approvals, paired listeners, noise chart) on HOST:PORT; host defaults to 127.0.0.1; prints its URL with the access token', parseWebListen)
    .action(async (o: MonitorCmd) => (await import('./commands/monitor.js')).cmdMonitor(o))
}

/** `pair`: pair with a monitor as a listener. */
function addPairCommand(program: Command): void {
  program
    .command('pair')
    .description('pair with a monitor as a listener (QR payload, or fingerprint + PIN); reads the PIN from stdin when not a terminal')
    .addOption(dirOption())
    .option('--qr <payload>', "the QR code's text: the monitor_pair_v1 JSON, or its compact CC1: form")
    .option('--host <host>', 'monitor address')
    .option('--port <port>', `monitor UDP port (default: from the QR code, else ${DEFAULT_PORT})`, parsePort)
    .option('--fingerprint <hex>', 'monitor certificate fingerprint (PIN pairing)', parseFingerprint)
    .option('--pin <digits>', 'the 6-digit PIN shown on the monitor; without it, prompted on a terminal, or read from stdin (one line per attempt) when not a terminal')
    .option('--name <name>', 'this listener’s name', parseName, 'cribcall-agent')
    .option('--monitor-name <name>', 'PIN pairing: the name to store the monitor under (PIN pairing does not carry it; default "monitor at HOST")', parseName)
    .option('--timeout <seconds>', 'give up when pairing has not finished after this many seconds (handshake included)', parsePositive, 120)
    .action(async (o: Omit<PairCmd, 'timeoutSeconds'> & { timeout: number }) => (await import('./commands/pair.js')).cmdPair({ ...o, timeoutSeconds: o.timeout }))
}

/** `watch`: print the NOISE_EVENTs of every paired monitor, as a listener. */
function addWatchCommand(program: Command): void {
  program
    .command('watch')
    .description('connect to every paired monitor and print NOISE_EVENTs (reconnects by itself)')
    .addOption(dirOption())
    .action(async (o: { dir: string }) => (await import('./commands/watch.js')).cmdWatch(o))
}

/** `trust list` and `trust revoke`: the paired devices. */
function addTrustCommands(program: Command): void {
  const trust = program.command('trust').description('list or revoke paired devices')
  trust
    .command('list')
    .description('list paired devices')
    .addOption(dirOption())
    .action(async (o: { dir: string }) => (await import('./commands/trust.js')).cmdTrustList(o))
  trust
    .command('revoke')
    .description('revoke a paired device (a running monitor using the same directory disconnects it at once)')
    .argument('<deviceId>')
    .addOption(dirOption())
    .action(async (id: string, o: { dir: string }) => (await import('./commands/trust.js')).cmdTrustRevoke(id, o))
}

/** `demo`: a monitor and two listeners paired on loopback. */
function addDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('pair a monitor and two listeners on loopback (PIN and QR) and deliver NOISE_EVENTs')
    .action(async () => (await import('./commands/demo.js')).cmdDemo())
}

async function main(argv: readonly string[]): Promise<void> {
  try {
    await program(argv).parseAsync([...argv], { from: 'user' })
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0) process.exit(EXIT.OK)
      process.exit(EXIT.USAGE) // commander already printed the line
    }
    fail(e)
  }
}

// Anything that escapes a command is still one line (the stack only with --debug).
process.on('uncaughtException', (e) => fail(e))
process.on('unhandledRejection', (e) => fail(e))

const args = process.argv.slice(2)
out.json = jsonRequested(args)
out.debug = args.includes('--debug')
main(args).catch(fail)

// The pairing QR code drawn in a terminal: half blocks (one character = one module wide,
// two modules tall), a 4-module quiet zone on every side, the JSON payload when its QR
// code fits the terminal, else the compact `CC1:` form (SPEC.md §7.1.8), which fits
// 80 × 24 (at most 45 columns × 23 rows).
//
// Polarity: a QR code is dark modules on a light background, quiet zone included. A
// terminal's background is usually dark and its text light, so the LIGHT modules (and
// the quiet zone) are printed — as █ ▀ ▄ — and the dark modules are left blank
// (terminal background). On a light-background terminal the plain text is therefore a
// negative, which many scanners do not read: `ansi: true` paints the code in explicit
// colours (bright white text on a black background), right on either kind of terminal.
//
// Width: the block characters are one column wide, except in terminals that draw East
// Asian "ambiguous width" characters two columns wide (some CJK setups), where the code
// is twice as wide as `columns` says.
import QRCode from 'qrcode'

/** Modules of light margin on every side (ISO/IEC 18004 asks for 4). */
export const QR_QUIET_ZONE = 4
/** The terminal size assumed when the stream does not say (not a TTY). */
export const DEFAULT_TERMINAL_SIZE = { columns: 80, rows: 24 } as const

const FULL = '\u2588' // █ both halves light
const UPPER = '\u2580' // ▀ upper half light
const LOWER = '\u2584' // ▄ lower half light
const ANSI_ON = '\x1b[97;40m' // bright white text on black
const ANSI_OFF = '\x1b[0m'

export interface TerminalQrOptions {
  /** Terminal width in columns (default 80). */
  readonly columns?: number
  /**
   * Terminal height in rows (default 24). The code may use `rows - 1` of them: after
   * its last line the cursor sits on a line of its own, and a code as tall as the
   * terminal would push its own top row off the screen.
   */
  readonly rows?: number
  /** Wrap each line in ANSI colours (white on black) so that it reads on light terminals too. */
  readonly ansi?: boolean
}

export interface TerminalQrRendering {
  /** The lines to print, each followed by a newline; no line has a newline. */
  readonly lines: string[]
  /** Width in terminal columns (the symbol plus both quiet zones). */
  readonly columns: number
  /** Height in terminal rows (= lines.length). */
  readonly rows: number
  /** QR version (size = 17 + 4 × version modules). */
  readonly version: number
  readonly errorCorrectionLevel: 'M' | 'L'
  /** Whether it fits the terminal size it was made for (columns, and rows − 1). */
  readonly fits: boolean
  /** Rows left for text beside the cursor line when it fits (0 on an 80 × 24 terminal with the compact form). */
  readonly spareRows: number
}

/** The size of an output stream (process.stdout), 80 × 24 where it does not say. */
export function terminalSize(stream: { columns?: number; rows?: number }): { columns: number; rows: number } {
  return {
    columns: positive(stream.columns) ?? DEFAULT_TERMINAL_SIZE.columns,
    rows: positive(stream.rows) ?? DEFAULT_TERMINAL_SIZE.rows,
  }
}

/**
 * Draws `text` as a QR code in half blocks with a 4-module quiet zone. Error correction
 * M when that fits the terminal, else L; when neither fits, the (smaller) L code with
 * `fits: false`. Throws when the text is too long for any QR code.
 */
export function renderQrForTerminal(text: string, options: TerminalQrOptions = {}): TerminalQrRendering {
  const size = terminalSize(options)
  let last: TerminalQrRendering | undefined
  for (const level of ['M', 'L'] as const) {
    let rendering: TerminalQrRendering
    try {
      rendering = render(text, level, size, options.ansi === true)
    } catch (e) {
      if (level === 'L') throw e
      continue // too long at M
    }
    if (rendering.fits) return rendering
    last = rendering
  }
  return last as TerminalQrRendering
}

/**
 * The pairing QR code for a terminal: the JSON payload (what every implementation
 * scans) when its code fits, else the compact one (SPEC §7.1.8; undefined when there
 * is none — then the JSON code, fitting or not).
 */
export function terminalQr(
  jsonPayload: string,
  compactPayload: string | undefined,
  options: TerminalQrOptions = {},
): TerminalQrRendering & { readonly form: 'json' | 'compact'; readonly payload: string } {
  const json = renderQrForTerminal(jsonPayload, options)
  if (json.fits || compactPayload === undefined) return { ...json, form: 'json', payload: jsonPayload }
  return { ...renderQrForTerminal(compactPayload, options), form: 'compact', payload: compactPayload }
}

function render(text: string, level: 'M' | 'L', size: { columns: number; rows: number }, ansi: boolean): TerminalQrRendering {
  const qr = QRCode.create(text, { errorCorrectionLevel: level })
  const n = qr.modules.size
  const data = qr.modules.data
  const width = n + 2 * QR_QUIET_ZONE
  // Light in the padded square (quiet zone included); below it nothing (blank).
  const light = (x: number, y: number): boolean => {
    if (y >= width) return false
    const r = y - QR_QUIET_ZONE
    const c = x - QR_QUIET_ZONE
    if (r < 0 || c < 0 || r >= n || c >= n) return true
    return data[r * n + c] === 0
  }
  const lines: string[] = []
  for (let y = 0; y < width; y += 2) {
    let line = ''
    for (let x = 0; x < width; x++) {
      const top = light(x, y)
      const bottom = light(x, y + 1)
      line += top ? (bottom ? FULL : UPPER) : bottom ? LOWER : ' '
    }
    lines.push(ansi ? ANSI_ON + line + ANSI_OFF : line)
  }
  const rows = lines.length
  const fits = width <= size.columns && rows <= size.rows - 1
  return { lines, columns: width, rows, version: qr.version, errorCorrectionLevel: level, fits, spareRows: fits ? size.rows - 1 - rows : 0 }
}

function positive(n: number | undefined): number | undefined {
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : undefined
}

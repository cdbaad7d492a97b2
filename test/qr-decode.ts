// Terminal QR codes back to their text: the printed half blocks turned into pixels as a
// dark-background terminal shows them, decoded with jsQR.
import jsQRModule from 'jsqr'

// jsqr is CommonJS with `exports.default`: under NodeNext the default import is module.exports.
const jsQR = jsQRModule.default

export const stripAnsi = (line: string): string => line.replace(/\x1b\[[0-9;]*m/g, '')

/**
 * The terminal text back to pixels, as a dark-background terminal shows it: the printed
 * half blocks are light, blanks are the dark background; `scale` pixels per module.
 * Decoded with jsQR in normal polarity only (no inverted attempt).
 */
export function decodeTerminal(lines: readonly string[], scale = 4): string | undefined {
  const grid = lines.map((l) => [...stripAnsi(l)])
  const w = Math.max(...grid.map((r) => r.length))
  const h = grid.length * 2
  const W = w * scale
  const H = h * scale
  const rgba = new Uint8ClampedArray(W * H * 4)
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const ch = grid[y >> 1]?.[x] ?? ' '
      const lit = y % 2 === 0 ? ch === '█' || ch === '▀' : ch === '█' || ch === '▄'
      const v = lit ? 255 : 0
      for (let dy = 0; dy < scale; dy++) {
        for (let dx = 0; dx < scale; dx++) {
          const i = ((y * scale + dy) * W + x * scale + dx) * 4
          rgba[i] = v
          rgba[i + 1] = v
          rgba[i + 2] = v
          rgba[i + 3] = 255
        }
      }
    }
  }
  return jsQR(rgba, W, H, { inversionAttempts: 'dontInvert' })?.data
}

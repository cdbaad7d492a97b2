// The noise chart: every NOISE_EVENT of the last 10 minutes as a stem from 0 to its
// peakLevel (0–100), on a plain canvas. No chart library.
export const WINDOW_MS = 10 * 60_000

/** Stem colours by level: quiet, raised, loud. */
export const COLORS = { low: '#2e9d5b', mid: '#d99a1e', high: '#d64545' }

export function colorOf(level) {
  return level >= 70 ? COLORS.high : level >= 40 ? COLORS.mid : COLORS.low
}

export class NoiseChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {() => number} clock the monitor's clock (ms)
   */
  constructor(canvas, clock = Date.now) {
    this.canvas = canvas
    this.clock = clock
    /** @type {{timestamp: number, peakLevel: number, delivered: number, paired: number}[]} */
    this.points = []
  }

  setHistory(points) {
    this.points = points.slice()
    this.draw()
  }

  add(point) {
    this.points.push(point)
    this.draw()
  }

  draw() {
    const now = this.clock()
    const cutoff = now - WINDOW_MS
    while (this.points.length > 0 && this.points[0].timestamp < cutoff) this.points.shift()
    const c = this.canvas
    const dpr = window.devicePixelRatio || 1
    const w = Math.max(1, Math.round(c.clientWidth * dpr))
    const h = Math.max(1, Math.round(c.clientHeight * dpr))
    if (c.width !== w || c.height !== h) {
      c.width = w
      c.height = h
    }
    const ctx = c.getContext('2d')
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0)
    const W = c.clientWidth
    const H = c.clientHeight
    const pad = { left: 36, right: 12, top: 10, bottom: 24 }
    const plotW = W - pad.left - pad.right
    const plotH = H - pad.top - pad.bottom
    const x = (t) => pad.left + ((t - cutoff) / WINDOW_MS) * plotW
    const y = (level) => pad.top + plotH - (level / 100) * plotH
    ctx.clearRect(0, 0, W, H)
    this.#axes(ctx, { pad, plotW, plotH, x, y, now })
    ctx.lineWidth = 2
    for (const p of this.points) {
      const px = Math.round(x(p.timestamp)) + 0.5
      ctx.strokeStyle = colorOf(p.peakLevel)
      ctx.beginPath()
      ctx.moveTo(px, y(0))
      ctx.lineTo(px, y(p.peakLevel))
      ctx.stroke()
      ctx.fillStyle = colorOf(p.peakLevel)
      ctx.beginPath()
      ctx.arc(px, y(p.peakLevel), 3.5, 0, Math.PI * 2)
      ctx.fill()
    }
    this.#describe()
  }

  #axes(ctx, { pad, plotW, plotH, x, y, now }) {
    ctx.font = '11px system-ui, sans-serif'
    ctx.fillStyle = '#5f6b85'
    ctx.strokeStyle = '#e2e6ef'
    ctx.lineWidth = 1
    ctx.textAlign = 'right'
    ctx.textBaseline = 'middle'
    for (const level of [0, 25, 50, 75, 100]) {
      const py = Math.round(y(level)) + 0.5
      ctx.beginPath()
      ctx.moveTo(pad.left, py)
      ctx.lineTo(pad.left + plotW, py)
      ctx.stroke()
      ctx.fillText(String(level), pad.left - 6, py)
    }
    ctx.textAlign = 'center'
    ctx.textBaseline = 'top'
    for (let m = 10; m >= 0; m -= 2) {
      const px = x(now - m * 60_000)
      ctx.fillText(m === 0 ? 'now' : `−${m} min`, Math.min(Math.max(px, pad.left + 14), pad.left + plotW - 12), pad.top + plotH + 6)
    }
  }

  /** What the canvas shows, in words (screen readers) and data attributes. */
  #describe() {
    const last = this.points.at(-1)
    const c = this.canvas
    c.dataset.events = String(this.points.length)
    if (last === undefined) {
      delete c.dataset.lastLevel
      c.setAttribute('aria-label', 'Noise levels of the last 10 minutes: no event')
      return
    }
    c.dataset.lastLevel = String(last.peakLevel)
    const max = Math.max(...this.points.map((p) => p.peakLevel))
    c.setAttribute('aria-label', `Noise levels of the last 10 minutes: ${this.points.length} events, highest ${max}, last ${last.peakLevel}`)
  }
}

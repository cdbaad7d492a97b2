// The web console end to end in headless Chromium (Debian's `chromium`, driven by
// puppeteer-core; .ci/run installs it): open the printed URL, decode the QR code from a
// screenshot back to the exact pairing payload, pair a real Listener by approving in the
// page, see it listed and connected, see a NOISE_EVENT in the chart and the delivery
// indicator, refuse a request by click, revoke from the page and see the listener's
// channel closed. Saves docs/console.png (the README's screenshot). Never skipped: no
// Chromium is a failure. Runs `node dist/cli/main.js` (build first).
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import jsQRModule from 'jsqr'
import { PNG } from 'pngjs'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { AppErrorCode, generateIdentity, Listener, MemoryTrustStore, type ListenerChannel, type TrustEntry } from '../src/index.js'
import { consoleState, startConsoleAgent, until, type ConsoleAgent } from './web-console-helpers.js'

// jsqr is CommonJS with `exports.default`: under NodeNext the default import is module.exports.
const jsQR = jsQRModule.default

/** The browser globals the page callbacks below use (the test program has no DOM lib). */
interface PageElement {
  readonly textContent: string | null
  readonly dataset: Record<string, string | undefined>
  closest(selector: string): PageElement | null
  readonly complete?: boolean
  readonly naturalWidth?: number
}
declare const document: { getElementById(id: string): PageElement | null; querySelector(selector: string): PageElement | null }

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const SCREENSHOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'console.png')

let browser: Browser
let page: Page
let c: ConsoleAgent
/** Console errors, CSP violations and failed requests seen by the page. */
const pageProblems: string[] = []
const listeners: Listener[] = []

async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium; .ci/run does) or set CHROMIUM_PATH`)
  }
  try {
    return await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] })
  } catch (e) {
    throw new Error(`cannot launch headless Chromium (${CHROMIUM}): ${e instanceof Error ? e.message : String(e)}`)
  }
}

/** Decodes the QR code in a PNG screenshot. */
function decodeQr(png: Uint8Array): string | undefined {
  const image = PNG.sync.read(Buffer.from(png))
  return jsQR(new Uint8ClampedArray(image.data.buffer, image.data.byteOffset, image.data.length), image.width, image.height)?.data
}

async function qrFromPage(): Promise<string | undefined> {
  await page.waitForFunction(() => {
    const img = document.getElementById('qr')
    return img !== null && img.closest('[hidden]') === null && img.complete === true && (img.naturalWidth ?? 0) > 0
  })
  return decodeQr(await page.screenshot({ type: 'png' }))
}

function newListener(name: string): Listener {
  const l = new Listener({ identity: generateIdentity(), trustStore: new MemoryTrustStore(), name })
  listeners.push(l)
  return l
}

/** Why the browser or the agent did not start: every test fails with it (none is skipped). */
let setupError: unknown

beforeAll(async () => {
  try {
    browser = await launch()
    c = await startConsoleAgent([], 'Nursery')
  } catch (e) {
    setupError = e
    return
  }
  page = await browser.newPage()
  await page.setViewport({ width: 1280, height: 800, deviceScaleFactor: 1 })
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warn') pageProblems.push(`console.${m.type()}: ${m.text()}`)
  })
  page.on('pageerror', (e) => pageProblems.push(`page error: ${String(e)}`))
  page.on('requestfailed', (r) => {
    if (!r.url().endsWith('/api/events')) pageProblems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`)
  })
  page.on('dialog', (d) => void d.accept())
}, 60_000)

beforeEach(() => {
  if (setupError !== undefined) throw setupError
})

afterAll(async () => {
  for (const l of listeners) await l.close().catch(() => undefined)
  await browser?.close()
  await c?.stop()
})

describe('the console in headless Chromium', () => {
  let phone: Listener
  let monitorEntry: TrustEntry
  let channel: ListenerChannel

  it('opens with the printed URL: the token becomes an HttpOnly cookie and leaves the address bar', async () => {
    const res = await page.goto(c.url, { waitUntil: 'load' })
    expect(res?.status()).toBe(200)
    expect(page.url()).toBe(c.origin + '/')
    const cookies = await browser.cookies()
    expect(cookies.find((k) => k.name === `cribcall_console_${c.webPort}`)).toMatchObject({ httpOnly: true, sameSite: 'Strict', value: c.token })
    await page.waitForSelector('#conn[data-state="live"]')
    expect(await page.$eval('#monitor-name', (e) => e.textContent)).toBe('Nursery')
    const fp = (JSON.parse(c.qrPayload) as { monitorCertFingerprint: string }).monitorCertFingerprint
    expect(await page.$eval('#fingerprint', (e) => e.textContent?.replace(/\s/g, ''))).toBe(fp)
  })

  it('shows the QR code: decoded from a screenshot it is exactly the pairing payload', async () => {
    expect(await qrFromPage()).toBe(c.qrPayload)
    const box = await page.$eval('#qr', (e) => e.getBoundingClientRect().toJSON() as { width: number; height: number })
    expect(box.width).toBeGreaterThanOrEqual(300) // big enough for a phone camera
  })

  it('pairs a listener through the page: the request appears, Approve pairs it, it is listed as connected', async () => {
    phone = newListener('Phone')
    const paired = phone.pairWithQr(c.qrPayload, { host: '127.0.0.1', port: c.port })
    const approve = `#requests li[data-listener-id="${phone.identity.deviceId}"] button.approve`
    await page.waitForSelector(approve)
    expect(await page.$eval('#requests li', (e) => e.textContent)).toContain('Phone')
    // The reply to the click (which carries the state as it was when the click landed) is
    // held in the browser until the event stream has shown the listener paired and
    // connected, then delivered: the page must not fall back to the older state.
    const cdp = await page.createCDPSession()
    let releaseReply: (() => Promise<unknown>) | undefined
    const replyHeld = new Promise<void>((resolve) => {
      cdp.on('Fetch.requestPaused', (e: { requestId: string }) => {
        releaseReply = () => cdp.send('Fetch.continueRequest', { requestId: e.requestId })
        resolve()
      })
    })
    await cdp.send('Fetch.enable', { patterns: [{ urlPattern: '*/approve', requestStage: 'Response' }] })
    await page.click(approve)
    monitorEntry = await paired
    await c.agent.waitFor('paired', (e) => e.deviceId === phone.identity.deviceId && e.method === 'qr')
    channel = await phone.connect(monitorEntry.deviceId)
    const row = `#listeners tr[data-device-id="${phone.identity.deviceId}"][data-connected="true"]`
    await page.waitForSelector(row)
    await replyHeld
    await releaseReply?.()
    await page.waitForFunction(() => document.getElementById('toast')?.textContent === 'Approved') // the reply was handled
    await cdp.send('Fetch.disable')
    await cdp.detach()
    expect(await page.$(row)).not.toBeNull()
    const text = await page.$eval(row, (e) => e.textContent ?? '')
    expect(text).toContain('Phone')
    expect(text).toContain(phone.identity.deviceId)
    expect(text).toContain(phone.identity.fingerprint.slice(0, 16))
    expect(text).toContain('connected')
    await page.waitForSelector('#requests-empty:not([hidden])')
  })

  it('draws a NOISE_EVENT sent by the test in the chart and marks it delivered to the listener', async () => {
    // Pixels of the colour of a level-42 stem (#d99a1e) in the canvas, as the page drew it.
    const seriesPixels = async (): Promise<number> => {
      const url = await page.$eval('#noise-chart', (e) => (e as unknown as { toDataURL(): string }).toDataURL())
      const { data } = PNG.sync.read(Buffer.from(url.replace(/^data:image\/png;base64,/, ''), 'base64'))
      let n = 0
      for (let i = 0; i < data.length; i += 4) if (Math.abs(data[i]! - 0xd9) < 12 && Math.abs(data[i + 1]! - 0x9a) < 12 && Math.abs(data[i + 2]! - 0x1e) < 12) n++
      return n
    }
    expect(await page.$eval('#noise-chart', (e) => (e as unknown as PageElement).dataset.events)).toBe('0')
    expect(await seriesPixels()).toBe(0)
    const received = new Promise<number>((resolve) => channel.on('noise', (n) => n.peakLevel === 42 && resolve(n.peakLevel)))
    c.agent.write('noise 42')
    await c.agent.waitFor('noise-sent', (e) => e.peakLevel === 42 && e.listeners === 1)
    expect(await received).toBe(42)
    await page.waitForFunction(() => document.getElementById('noise-chart')?.dataset.lastLevel === '42')
    expect(await seriesPixels()).toBeGreaterThan(20)
    await page.waitForSelector(`tr[data-device-id="${phone.identity.deviceId}"] td.delivery[data-outcome="queued"][data-level="42"]`)
    expect(await page.$eval('#noise-last', (e) => e.textContent)).toMatch(/last 42 at .* sent to 1 of 1 paired/)
  })

  it('shows a waiting request and a running PIN session together (screenshot), then Refuse turns the request away', async () => {
    for (const level of [18, 73]) c.agent.write(`noise ${level}`)
    const tablet = newListener('Tablet')
    const refused = tablet.pairWithQr(c.qrPayload, { host: '127.0.0.1', port: c.port }).then(
      () => 'paired',
      (e: unknown) => (e as { code?: string }).code,
    )
    // A PIN session for a third device; the PIN is read from the page and never typed.
    const laptop = newListener('Laptop')
    const fingerprint = (JSON.parse(c.qrPayload) as { monitorCertFingerprint: string }).monitorCertFingerprint
    const pinShown = new Promise<string>((resolve, reject) => {
      void laptop.pairWithPin({ host: '127.0.0.1', port: c.port, monitorFingerprint: fingerprint }, ({ signal }) => {
        void page.waitForSelector('#pin-box:not([hidden])').then(() => page.$eval('#pin', (e) => e.textContent ?? '')).then(resolve, reject)
        return new Promise<string>((_r, rejectPin) => signal.addEventListener('abort', () => rejectPin(signal.reason)))
      }).catch((e: unknown) => reject(new Error(`PIN pairing ended before the PIN was shown: ${String(e)}`)))
    })
    const pin = await pinShown
    const events = await c.agent.waitFor('pin')
    expect(pin.replace(/\s/g, '')).toBe(events.pin)
    expect(await page.$eval('#pin-listener', (e) => e.textContent)).toBe('Laptop')
    await page.waitForSelector(`#requests li[data-listener-id="${tablet.identity.deviceId}"]`)
    await page.waitForFunction(() => document.getElementById('noise-chart')?.dataset.lastLevel === '73')
    await page.waitForSelector('#toast', { hidden: true }) // the 'Approved' note fades
    await page.screenshot({ path: SCREENSHOT, type: 'png' })
    const png = PNG.sync.read(Buffer.from(await page.screenshot({ type: 'png' })))
    expect([png.width, png.height]).toEqual([1280, 800])

    await page.click(`#requests li[data-listener-id="${tablet.identity.deviceId}"] button.refuse`)
    expect(await refused).toBe('ERR_PAIRING_REJECTED')
    await c.agent.waitFor('pairing-failed', (e) => e.reason === 'not approved' && e.fingerprint === tablet.identity.fingerprint)
    await laptop.close() // ends the PIN session: the page stops showing the PIN
    await page.waitForSelector('#pin-box[hidden]')
    expect((await consoleState(c)).pin).toBeNull()
  })

  it('revokes the listener from the page: its channel is closed at once (UNAUTHORIZED) and the row goes', async () => {
    const closed = new Promise<{ code: number }>((resolve) => channel.once('close', (info) => resolve(info)))
    await page.click(`#listeners tr[data-device-id="${phone.identity.deviceId}"] button.revoke`)
    const info = await Promise.race([closed, new Promise<never>((_r, reject) => setTimeout(() => reject(new Error('the channel was not closed within 5 s')), 5000))])
    expect(info.code).toBe(AppErrorCode.UNAUTHORIZED)
    await c.agent.waitFor('revoked', (e) => e.deviceId === phone.identity.deviceId)
    await page.waitForSelector(`#listeners tr[data-device-id="${phone.identity.deviceId}"]`, { hidden: true })
    await page.waitForSelector('#listeners-empty:not([hidden])')
  })

  it('closes and reopens pairing with the buttons: the QR code goes, then comes back with a new secret', async () => {
    await page.click('#close-pairing')
    await c.agent.waitFor('pairing-closed')
    await page.waitForSelector('#qr-box[hidden]')
    const from = c.agent.events.length
    await page.click('#open-pairing')
    const qr = await c.agent.waitFor('qr', () => true, 5000, from)
    expect(qr.payload).not.toBe(c.qrPayload)
    expect(await until('the new QR code', async () => ((await qrFromPage()) === qr.payload ? true : undefined))).toBe(true)
  })

  it('ran without a console error, CSP violation or failed request', () => {
    expect(pageProblems).toEqual([])
  })
})

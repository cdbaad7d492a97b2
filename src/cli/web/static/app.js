// CribCall monitor console: renders the state the agent streams (Server-Sent Events) and
// sends the operator's actions (POST, same origin, JSON). The DOM is built with
// textContent only: listener names come from the network.
import { NoiseChart } from './chart.js'

const $ = (id) => document.getElementById(id)

/** The monitor's clock minus ours (countdowns and the chart follow the monitor). */
let skew = 0
/** @type {any} */
let state = null
const chart = new NoiseChart($('noise-chart'), () => now())
const rendered = { requests: '', listeners: '' }

function el(tag, props = {}, children = []) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v
    else if (k === 'text') e.textContent = v
    else if (k.startsWith('data-') || k === 'title' || k === 'type' || k === 'aria-label') e.setAttribute(k, v)
    else e[k] = v
  }
  for (const c of children) e.append(c)
  return e
}

const now = () => Date.now() + skew
const pad2 = (n) => String(n).padStart(2, '0')
const fmtTime = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' })
function fmtDate(t) {
  const d = new Date(t)
  const year = d.getFullYear() === new Date().getFullYear() ? {} : { year: 'numeric' }
  return d.toLocaleString([], { ...year, month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
}
const groupHex = (hex) => hex.match(/.{1,4}/g).join(' ')

function fmtLeft(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000))
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${pad2(Math.floor((s % 3600) / 60))} min` : `${Math.floor(s / 60)}:${pad2(s % 60)}`
}

function fmtAgo(t) {
  if (t === null) return 'never'
  const s = Math.max(0, Math.round((now() - t) / 1000))
  if (s < 5) return 'just now'
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  return fmtDate(t)
}

let toastTimer
function toast(message, isError = false) {
  const t = $('toast')
  t.textContent = message
  t.className = isError ? 'toast error' : 'toast'
  t.hidden = false
  clearTimeout(toastTimer)
  toastTimer = setTimeout(() => (t.hidden = true), isError ? 8000 : 2500)
}

async function post(path, body = {}) {
  const res = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), credentials: 'same-origin' })
  const data = await res.json().catch(() => ({}))
  if (!res.ok) throw new Error(data.error ?? `HTTP ${res.status}`)
  if (data.state) render(data.state)
  return data
}

function act(button, path, body, done) {
  button.disabled = true
  post(path, body)
    .then(() => done !== undefined && toast(done))
    .catch((e) => toast(e.message, true))
    .finally(() => (button.disabled = false))
}

function renderIdentity(m) {
  $('monitor-name').textContent = m.name
  document.title = `${m.name} · CribCall console`
  $('device-id').textContent = m.deviceId
  $('fingerprint').textContent = groupHex(m.fingerprint)
  const others = m.reachableAt.filter((a) => a !== m.address)
  $('address').textContent = others.length > 0 ? `${m.address} (${others.join(', ')})` : m.address
}

function renderPairing(p, pin) {
  const status = $('pairing-status')
  status.className = p.open ? 'pill open' : 'pill closed'
  const qrBox = $('qr-box')
  const qr = $('qr')
  if (p.qrVersion !== null) {
    const src = `/api/qr.svg?v=${p.qrVersion}`
    if (qr.getAttribute('src') !== src) qr.setAttribute('src', src)
    qrBox.hidden = false
  } else {
    qrBox.hidden = true
    qr.removeAttribute('src')
  }
  $('pin-box').hidden = pin === null
  if (pin !== null) {
    $('pin').textContent = `${pin.pin.slice(0, 3)} ${pin.pin.slice(3)}`
    $('pin-listener').textContent = pin.listenerName
  } else $('pin').textContent = ''
  const note = $('pairing-note')
  if (!p.open && p.mode === 'off') note.textContent = 'Started with --pair off: no window opens by itself; Open pairing offers QR and PIN.'
  else if (!p.open) note.textContent = 'New listeners cannot pair while the window is closed.'
  else if (p.allowPin && !p.allowQr) note.textContent = 'PIN pairing: the PIN appears here when a listener asks.'
  else if (p.allowPin) note.textContent = 'PIN pairing too: the PIN appears here when a listener asks.'
  else note.textContent = ''
  $('open-pairing').textContent = p.open ? 'Reopen (new code)' : 'Open pairing'
  $('close-pairing').disabled = !p.open
  const minutes = $('minutes')
  if (minutes.dataset.touched !== 'yes') minutes.value = String(p.defaultMinutes)
}

function renderRequests(requests) {
  $('requests-count').textContent = String(requests.length)
  $('requests-count').className = requests.length > 0 ? 'pill attention' : 'pill'
  $('requests-empty').hidden = requests.length > 0
  const key = JSON.stringify(requests)
  if (key === rendered.requests) return
  rendered.requests = key
  $('requests').replaceChildren(
    ...requests.map((r) =>
      el('li', { 'data-listener-id': r.listenerId, 'data-fingerprint': r.fingerprint }, [
        el('div', { class: 'who' }, [
          el('strong', { text: r.name }),
          el('div', { class: 'meta mono', text: `${r.listenerId} · ${r.address}` }),
          el('div', { class: 'meta mono', text: `fingerprint ${groupHex(r.fingerprint)}` }),
          el('div', { class: r.legacy ? 'meta legacy' : 'meta', text: r.legacy ? 'by QR, legacy: nothing shows it read the QR code' : `by ${r.method === 'qr' ? 'QR code' : 'PIN'}` }),
        ]),
        el('div', { class: 'actions' }, [
          el('button', { type: 'button', class: 'approve', text: 'Approve' }),
          el('button', { type: 'button', class: 'refuse', text: 'Refuse' }),
        ]),
      ]),
    ),
  )
}

/** The per-listener delivery indicator: what the last broadcast did for this listener. */
function deliveryPill(d) {
  if (d === null) return el('span', { class: 'pill away', text: '—', title: 'no NOISE_EVENT since the console started' })
  const what = `level ${d.peakLevel} at ${fmtTime(d.timestamp)}: `
  if (d.outcome === 'queued') return el('span', { class: 'pill ok', text: `✓ ${d.peakLevel} · ${fmtTime(d.timestamp)}`, title: what + 'sent (queued on its live channel)' })
  if (d.outcome === 'disconnected-too-slow') return el('span', { class: 'pill bad', text: `✗ ${d.peakLevel} too slow`, title: what + 'its send queue was full: disconnected, caught up by the replay when it returns' })
  return el('span', { class: 'pill warn', text: `… ${d.peakLevel} pending`, title: what + 'not connected: replayed if it returns within the replay window' })
}

function renderListeners(listeners, force = false) {
  $('listeners-count').textContent = String(listeners.length)
  $('listeners-empty').hidden = listeners.length > 0
  $('listeners-table').hidden = listeners.length === 0
  const key = JSON.stringify(listeners)
  if (key === rendered.listeners && !force) return
  rendered.listeners = key
  $('listeners').replaceChildren(
    ...listeners.map((l) =>
      el('tr', { 'data-device-id': l.deviceId, 'data-connected': String(l.connected) }, [
        el('td', {}, [el('strong', { text: l.name }), el('div', { class: 'meta mono', text: l.deviceId, title: 'device ID' })]),
        el('td', { class: 'mono', text: `${l.fingerprint.slice(0, 16)}…`, title: l.fingerprint }),
        el('td', { text: fmtDate(l.pairedAt) }),
        el('td', { title: l.lastAddress === null ? '' : `last address ${l.lastAddress}` }, [
          el('span', { class: l.connected ? 'pill ok status' : 'pill away status', text: l.connected ? '● connected' : `away · seen ${fmtAgo(l.lastSeenAt)}` }),
        ]),
        el('td', { class: 'delivery', 'data-outcome': l.delivery?.outcome ?? '', 'data-level': String(l.delivery?.peakLevel ?? '') }, [deliveryPill(l.delivery)]),
        el('td', {}, [el('button', { type: 'button', class: 'danger small revoke', text: 'Revoke' })]),
      ]),
    ),
  )
}

/**
 * Shows a snapshot unless a newer one is already shown: snapshots come both from the event
 * stream and in replies to POSTs, and the reply to a click can arrive after a later change
 * was streamed (a stale reply would otherwise stay on screen until the next change).
 */
function render(s) {
  if (state !== null && state.epoch === s.epoch && s.version <= state.version) return
  state = s
  skew = s.now - Date.now()
  renderIdentity(s.monitor)
  renderPairing(s.pairing, s.pin)
  renderRequests(s.requests)
  renderListeners(s.listeners)
  tick()
}

/** Countdowns (every 250 ms). */
function tick() {
  if (state === null) return
  const p = state.pairing
  $('pairing-status').textContent = p.open ? `open · closes in ${fmtLeft(p.until - now())}` : 'closed'
  if (state.pin !== null) $('pin-countdown').textContent = fmtLeft(state.pin.expiresAt - now())
}

function showLast(p) {
  $('noise-last').textContent = `last ${p.peakLevel} at ${fmtTime(p.timestamp)} · sent to ${p.delivered} of ${p.paired} paired`
}

function connect() {
  const conn = $('conn')
  const es = new EventSource('/api/events')
  es.addEventListener('open', () => {
    conn.dataset.state = 'live'
    conn.textContent = '● live'
  })
  es.addEventListener('state', (e) => render(JSON.parse(e.data)))
  es.addEventListener('noise-history', (e) => {
    const points = JSON.parse(e.data)
    chart.setHistory(points)
    if (points.length > 0) showLast(points.at(-1))
  })
  es.addEventListener('noise', (e) => {
    const p = JSON.parse(e.data)
    chart.add(p)
    showLast(p)
  })
  es.addEventListener('error', () => {
    conn.dataset.state = 'lost'
    if (es.readyState === EventSource.CLOSED) {
      conn.textContent = 'disconnected: open the URL the agent printed'
      toast('The console lost the monitor (stopped, or restarted with a new token). Open the URL cribcall-agent printed.', true)
    } else conn.textContent = 'reconnecting…'
  })
}

async function copy(text) {
  if (navigator.clipboard !== undefined && window.isSecureContext) return navigator.clipboard.writeText(text)
  const area = el('textarea', { value: text, readOnly: true })
  document.body.append(area)
  area.select()
  const ok = document.execCommand('copy')
  area.remove()
  if (!ok) throw new Error('copy failed: select the fingerprint and copy it by hand')
}

function wire() {
  $('copy-fingerprint').addEventListener('click', () => {
    if (state === null) return
    copy(state.monitor.fingerprint).then(() => toast('Fingerprint copied'), (e) => toast(e.message, true))
  })
  $('minutes').addEventListener('input', (e) => (e.target.dataset.touched = 'yes'))
  $('pairing-form').addEventListener('submit', (e) => {
    e.preventDefault()
    act($('open-pairing'), '/api/pairing/open', { minutes: Number($('minutes').value) }, 'Pairing window open')
  })
  $('close-pairing').addEventListener('click', (e) => act(e.currentTarget, '/api/pairing/close', {}, 'Pairing window closed'))
  $('requests').addEventListener('click', (e) => {
    const button = e.target.closest('button')
    const item = e.target.closest('li')
    if (button === null || item === null) return
    const approve = button.classList.contains('approve')
    const id = encodeURIComponent(item.dataset.listenerId)
    act(button, `/api/requests/${id}/${approve ? 'approve' : 'refuse'}`, { fingerprint: item.dataset.fingerprint }, approve ? 'Approved' : 'Refused')
  })
  $('listeners').addEventListener('click', (e) => {
    const button = e.target.closest('button.revoke')
    const row = e.target.closest('tr')
    if (button === null || row === null) return
    const name = row.querySelector('strong').textContent
    if (!window.confirm(`Revoke "${name}"? It is disconnected at once and must pair again to listen.`)) return
    act(button, `/api/listeners/${encodeURIComponent(row.dataset.deviceId)}/revoke`, {}, `Revoked ${name}`)
  })
  setInterval(tick, 250)
  setInterval(() => chart.draw(), 1000)
  setInterval(() => state !== null && renderListeners(state.listeners, true), 5000)
  window.addEventListener('resize', () => chart.draw())
}

wire()
connect()

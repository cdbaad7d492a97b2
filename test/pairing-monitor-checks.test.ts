// Pairing over real loopback QUIC: the monitor's checks (SPEC §7.1 identity checks, the
// approve hook, robustness of the pairing window), and a fake monitor without the PIN
// that cannot make a listener trust it.
import { randomBytes } from 'node:crypto'

import { describe, expect, it } from 'vitest'

import {
  ControlChannel,
  PairingFailedError,
  PairingRejectedError,
  PinInitiator,
  generateIdentity,
  transcriptBytes,
  type CloseInfo,
  type Connection,
  type Identity,
  type Message,
  type TrustEntry,
} from '../src/index.js'
import { LOOPBACK, rejectionOf, sleep, withTimeout } from './helpers.js'
import { asPinRequired, nextEvent, pinInit, pinRecorder, submitPin, usePairingHarness } from './pairing-helpers.js'

const { h, startMonitor, newListener, rawPairingChannel, pairByQr } = usePairingHarness()

// ---------------------------------------------------------------------------
// QR checks (SPEC §7.1), the approve hook, and robustness of the pairing window
// ---------------------------------------------------------------------------

describe('monitor-side pairing checks', () => {
  function pairRequest(identity: Identity, over: Partial<{ listenerPublicKey: string; listenerCertFingerprint: string }> = {}): Message {
    return {
      type: 'PAIR_REQUEST',
      listenerId: identity.deviceId,
      listenerName: 'raw listener',
      listenerPublicKey: identity.publicKey,
      listenerCertFingerprint: identity.fingerprint,
      ...over,
    }
  }

  it('identity mismatch (QR fingerprint, QR public key, PIN_PAIRING_INIT fingerprint): ERROR UNAUTHORIZED in reply to the claim arrives, then close 2', async () => {
    const m = await startMonitor()
    m.monitor.openPairing({ onPin: () => undefined })
    const other = generateIdentity()
    const cases: Array<{ what: string; send: (id: Identity) => Message; detail: string; inReplyTo: string }> = [
      { what: 'QR fingerprint', send: (id) => pairRequest(id, { listenerCertFingerprint: other.fingerprint }), detail: 'listenerCertFingerprint is not the certificate presented in TLS', inReplyTo: 'PAIR_REQUEST' },
      { what: 'QR public key', send: (id) => pairRequest(id, { listenerPublicKey: other.publicKey }), detail: 'listenerPublicKey is not the key of the certificate presented in TLS', inReplyTo: 'PAIR_REQUEST' },
      {
        what: 'PIN init fingerprint',
        send: (id) => ({ type: 'PIN_PAIRING_INIT', listenerId: id.deviceId, listenerName: 'x', protocolVersion: 1, listenerCertFingerprint: other.fingerprint }),
        detail: 'listenerCertFingerprint is not the certificate presented in TLS',
        inReplyTo: 'PIN_PAIRING_INIT',
      },
    ]
    // Repeated: the ERROR frame used to be dropped by a close in the same IO turn most of the time.
    for (let round = 0; round < 5; round++) {
      for (const c of cases) {
        const { ch, identity, box } = await rawPairingChannel(m.monitor)
        ch.send(c.send(identity))
        expect(await box.next(), `${c.what}, round ${round}`).toEqual({ type: 'ERROR', code: 2, error: 'UNAUTHORIZED', message: c.detail, inReplyTo: c.inReplyTo })
        expect(await withTimeout(ch.closed, 3000, 'the close')).toMatchObject({ code: 2, byPeer: true, application: true })
      }
    }
    expect(m.store.list()).toEqual([])
  })

  it('approve hook: a refusal is PAIR_REJECTED NOT_PAIRING; it sees the TLS identity', async () => {
    const m = await startMonitor()
    const seen: Array<{ method: string; fingerprint: string; publicKey: string }> = []
    m.monitor.openPairing({
      approve: (r) => {
        seen.push({ method: r.method, fingerprint: r.fingerprint, publicKey: r.publicKey })
        return false
      },
    })
    const l = newListener()
    const err = await rejectionOf(l.listener.pairWithQr(m.monitor.pairingQrPayload(), { host: LOOPBACK }))
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('NOT_PAIRING')
    expect(seen).toEqual([{ method: 'qr', fingerprint: l.identity.fingerprint, publicKey: l.identity.publicKey }])
    expect(m.store.list()).toEqual([])
    expect(l.store.list()).toEqual([])
  })

  it('approve hook refusing a PIN pairing: PAIR_REJECTED NOT_PAIRING and a pairing-failed event, as for QR', async () => {
    const m = await startMonitor()
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin, approve: () => false })
    const failed = nextEvent<[{ method: string; reason: string; fingerprint: string }]>(m.monitor, 'pairing-failed')
    const l = newListener()
    const err = await rejectionOf(
      l.listener.pairWithPin({ host: LOOPBACK, port: m.monitor.address.port, monitorFingerprint: m.identity.fingerprint }, () => rec.last()),
    )
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('NOT_PAIRING')
    const [info] = await failed
    expect(info).toEqual({ method: 'pin', reason: 'not approved', fingerprint: l.identity.fingerprint })
    expect(m.store.list()).toEqual([])
    expect(l.store.list()).toEqual([])
  })

  it('a pairing window closed while the application was approving does not pair', async () => {
    const m = await startMonitor()
    m.monitor.openPairing({
      approve: async () => {
        m.monitor.closePairing()
        await sleep(5)
        return true
      },
    })
    const l = newListener()
    const err = await rejectionOf(l.listener.pairWithQr(m.monitor.pairingQrPayload(), { host: LOOPBACK, timeoutMs: 5000 }))
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('NOT_PAIRING')
    expect(m.store.list()).toEqual([])
    expect(l.store.list()).toEqual([])
  })

  it('PIN_PAIRING_INIT without onPin (nobody could see the PIN) or with allowPin: false: NOT_PAIRING', async () => {
    const m = await startMonitor()
    for (const options of [{}, { allowPin: false, onPin: () => undefined }]) {
      m.monitor.openPairing(options)
      const { ch, identity, box } = await rawPairingChannel(m.monitor)
      expect(await pinInit(ch, box, identity)).toEqual({ type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
      await ch.close()
    }
    expect(m.store.list()).toEqual([])
  })

  it('PAIR_REQUEST while only PIN pairing is allowed: NOT_PAIRING', async () => {
    const m = await startMonitor()
    m.monitor.openPairing({ allowQr: false, onPin: () => undefined })
    const { ch, identity, box } = await rawPairingChannel(m.monitor)
    ch.send(pairRequest(identity))
    expect(await box.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'NOT_PAIRING' })
    expect(m.store.list()).toEqual([])
  })

  it('a PIN_SUBMIT naming another session, from another channel, does not end the live session', async () => {
    const m = await startMonitor()
    const rec = pinRecorder()
    m.monitor.openPairing({ onPin: rec.onPin })
    const a = await rawPairingChannel(m.monitor)
    const req = asPinRequired(await pinInit(a.ch, a.box, a.identity))
    const b = await rawPairingChannel(m.monitor)
    submitPin(b.ch, { ...req, pairingSessionId: 'bogus-session' }, b.identity, '135790')
    expect(await b.box.next()).toEqual({ type: 'PAIR_REJECTED', reason: 'EXPIRED' })
    const { monitorTag } = submitPin(a.ch, req, a.identity, rec.last())
    expect(await a.box.next()).toEqual({ type: 'PAIR_ACCEPTED', monitorId: m.identity.deviceId, authTag: monitorTag.toString('base64') })
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([a.identity.fingerprint])
  })

  it('an already paired listener that pairs again gets an answer (accepted while open, NOT_PAIRING when closed)', async () => {
    const m = await startMonitor()
    const l = await pairByQr(m)
    const again = await l.listener.pairWithQr(m.monitor.pairingQrPayload(), { host: LOOPBACK, timeoutMs: 5000 })
    expect(again.fingerprint).toBe(m.identity.fingerprint)
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([l.identity.fingerprint])
    m.monitor.closePairing()
    const err = await rejectionOf(l.listener.pairWithQr(m.monitor.pairingQrPayload(), { host: LOOPBACK, timeoutMs: 5000 }))
    expect(err).toBeInstanceOf(PairingRejectedError)
    expect((err as PairingRejectedError).reason).toBe('NOT_PAIRING')
    expect(m.store.list().map((e) => e.fingerprint)).toEqual([l.identity.fingerprint])
  })
})

// ---------------------------------------------------------------------------
// A fake monitor without the PIN cannot make a listener trust it
// ---------------------------------------------------------------------------

type FakeAnswer = 'no-tag' | 'random-tag' | 'own-guess-tag' | 'reflected-listener-tag' | 'low-order-share'

async function fakeMonitor(answer: FakeAnswer): Promise<{ identity: Identity; port: number; closes: Promise<CloseInfo> }> {
  const identity = generateIdentity()
  const endpoint = await h.bind(identity)
  endpoint.listen({ acceptUnknown: true })
  let resolveClose!: (i: CloseInfo) => void
  const closes = new Promise<CloseInfo>((r) => (resolveClose = r))
  endpoint.on('connection', (conn: Connection) => {
    const ch = ControlChannel.accept(conn, { trust: 'pairing-only' })
    ch.on('error', () => undefined)
    void ch.closed.then(resolveClose)
    let initiator: PinInitiator | undefined
    const sid = randomBytes(12).toString('base64url')
    ch.on('message', (msg) => {
      if (msg.type === 'PIN_PAIRING_INIT') {
        // Its own CPace share, for a PIN it guessed.
        initiator = new PinInitiator('111111', sid, identity.fingerprint, ch.peerFingerprint)
        ch.send({
          type: 'PIN_REQUIRED',
          monitorId: identity.deviceId,
          pairingSessionId: sid,
          // 'low-order-share': the all-zero u-coordinate, which would make K the neutral element.
          pakeMsgA: answer === 'low-order-share' ? Buffer.alloc(32).toString('base64') : initiator.share.toString('base64'),
          expiresInSec: 60,
          maxAttempts: 3,
        })
      } else if (msg.type === 'PIN_SUBMIT' && initiator !== undefined) {
        let authTag: string | undefined
        if (answer === 'random-tag') authTag = randomBytes(32).toString('base64')
        if (answer === 'own-guess-tag') {
          authTag = initiator.confirm(Buffer.from(msg.pakeMsgB, 'base64'), transcriptBytes(msg.transcript)).monitorTag.toString('base64')
        }
        if (answer === 'reflected-listener-tag') authTag = msg.authTag
        ch.send({ type: 'PAIR_ACCEPTED', monitorId: identity.deviceId, ...(authTag === undefined ? {} : { authTag }) })
      }
    })
  })
  return { identity, port: endpoint.address.port, closes }
}

describe('a fake monitor that lacks the PIN', () => {
  for (const answer of ['no-tag', 'random-tag', 'own-guess-tag', 'reflected-listener-tag', 'low-order-share'] as const) {
    it(`${answer === 'low-order-share' ? 'a low-order pakeMsgA' : `PAIR_ACCEPTED with ${answer}`}: pairWithPin rejects (PairingFailedError), the listener trusts nothing`, async () => {
      const fake = await fakeMonitor(answer)
      const l = newListener()
      const paired: TrustEntry[] = []
      l.listener.on('paired', (e) => paired.push(e))
      const err = await rejectionOf(
        l.listener.pairWithPin({ host: LOOPBACK, port: fake.port, monitorFingerprint: fake.identity.fingerprint }, () => '482913'),
      )
      expect(err).toBeInstanceOf(PairingFailedError)
      expect((err as PairingFailedError).code).toBe('ERR_PAIRING_FAILED')
      expect((err as Error).message).toMatch(answer === 'low-order-share' ? /PIN_REQUIRED is unusable/ : /did not prove knowledge of the PIN/)
      expect(l.store.list()).toEqual([])
      expect(paired).toEqual([])
      // The listener hung up with UNAUTHORIZED.
      const info = await withTimeout(fake.closes, 5000, 'the fake monitor to see the close')
      expect(info).toMatchObject({ code: 2, byPeer: true, application: true })
    })
  }
})

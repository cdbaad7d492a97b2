// The gating rig of the protocol-layer tests (gating, malformed input): a monitor endpoint
// with "slots" of listener endpoints, so that many cases can run concurrently on fresh
// connections while each server-side connection is matched to its case by the client
// certificate fingerprint (one case per slot at a time).
import { ControlChannel, generateIdentity, type Connection, type Endpoint, type Identity, type Message, type Trust } from '../src/index.js'
import { Harness, LOOPBACK, withTimeout } from './helpers.js'
import { validMessages } from './protocol-helpers.js'

export type Direction = 'L->M' | 'M->L'

export interface Slot {
  /** Listener endpoint whose certificate the monitor knows (trusted on the monitor side). */
  readonly known: Endpoint
  readonly knownId: Identity
  /** Listener endpoint whose certificate the monitor does not know (pairing-only there). */
  readonly unknown: Endpoint
  readonly unknownId: Identity
}

/** Both ends of one test connection. */
export interface Link {
  /** The side that writes raw frames. */
  readonly sender: Connection
  /** The side under test. */
  readonly receiver: ControlChannel
  /** Frames the sender received (after the stream-opening frame of an M->L link). */
  readonly senderFrames: Buffer[]
  /** Messages the receiver delivered to 'message'. */
  readonly delivered: Message[]
  /** 'noise' deliveries on the receiver. */
  readonly noise: Message[]
  /** 'error' events on the receiver. */
  readonly receiverErrors: Error[]
}

export class GatingRig {
  readonly h = new Harness()
  monitor!: Endpoint
  monitorId!: Identity
  slots: Slot[] = []
  readonly #waiters = new Map<string, (c: Connection) => void>()

  async start(slots: number): Promise<void> {
    this.monitorId = generateIdentity()
    this.monitor = await this.h.bind(this.monitorId)
    for (let i = 0; i < slots; i++) {
      const knownId = generateIdentity({ keyType: i % 2 === 0 ? 'p256' : 'ed25519' })
      const unknownId = generateIdentity()
      this.slots.push({ known: await this.h.bind(knownId), knownId, unknown: await this.h.bind(unknownId), unknownId })
    }
    this.monitor.setKnownPeers(this.slots.map((s) => s.knownId.fingerprint))
    this.monitor.listen({ acceptUnknown: true })
    this.monitor.on('connection', (c) => {
      const w = this.#waiters.get(c.peerFingerprint)
      if (w === undefined) {
        void c.close(0, 'unexpected')
        return
      }
      this.#waiters.delete(c.peerFingerprint)
      w(c)
    })
  }

  /** Opens a fresh link for one case. `trust` is the receiver's trust. */
  async link(slot: Slot, dir: Direction, trust: Trust): Promise<Link> {
    const client = dir === 'L->M' && trust === 'pairing-only' ? slot.unknown : slot.known
    const clientId = client === slot.known ? slot.knownId : slot.unknownId
    const serverSide = withTimeout(
      new Promise<Connection>((resolve) => this.#waiters.set(clientId.fingerprint, resolve)),
      5000,
      "the monitor's 'connection' event",
    )
    const conn = await client.connect({ host: LOOPBACK, port: this.monitor.address.port, serverFingerprint: this.monitorId.fingerprint })
    const sconn = await serverSide
    const senderFrames: Buffer[] = []
    const delivered: Message[] = []
    const noise: Message[] = []
    const receiverErrors: Error[] = []
    let sender: Connection
    let receiver: ControlChannel
    if (dir === 'L->M') {
      sender = conn
      receiver = ControlChannel.accept(sconn)
      sender.on('frame', (p) => {
        senderFrames.push(p)
      })
    } else {
      sender = sconn
      receiver = new ControlChannel(conn, { role: 'listener', trust })
      // The listener opens the control stream with its first frame.
      const opener = withTimeout(
        new Promise<Buffer>((resolve) => sender.once('frame', resolve)),
        5000,
        'the stream-opening frame',
      )
      receiver.send(
        trust === 'trusted'
          ? { type: 'PING', timestamp: 1 }
          : { ...validMessages().PAIR_REQUEST, listenerCertFingerprint: clientId.fingerprint },
      )
      await opener
      sender.on('frame', (p) => {
        senderFrames.push(p)
      })
    }
    receiver.on('message', (m) => {
      delivered.push(m)
    })
    receiver.on('noise', (m) => {
      noise.push(m)
    })
    receiver.on('error', (e) => {
      receiverErrors.push(e)
    })
    return { sender, receiver, senderFrames, delivered, noise, receiverErrors }
  }

  async stop(): Promise<void> {
    await this.h.closeAll()
  }
}

/** Closes both ends of a link and waits until both reported 'close'. */
export async function closeLink(link: Link): Promise<void> {
  void link.sender.close(0, 'case done')
  void link.receiver.close(0, 'case done')
  await withTimeout(Promise.all([link.sender.closed, link.receiver.closed]), 5000, 'the link to close')
}

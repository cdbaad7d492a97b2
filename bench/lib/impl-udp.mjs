// The floor for the round-trip workload: raw UDP ping-pong between two Node processes
// with `dgram` (no encryption, no reliability, no connection state). Each datagram
// carries one frame with the same 4-byte length prefix, so the bytes on the wire match
// the frame workloads. Both sockets are connect()ed to their peer (the server to the
// first client that writes to it), so a send does no address handling: the fastest
// datagram ping-pong Node offers. Only the round-trip workload uses it, with one client.
//
// Same interface as bench/lib/impl-quic.mjs (see its header), reduced to what a
// connectionless echo needs.
import dgram from 'node:dgram'

import { HOST, encodeFrame } from './common.mjs'

export const label = 'raw UDP (dgram)'

/** A "connection" over a connect()ed socket. */
function conn(socket) {
  let onFrame = () => undefined
  return {
    deliver: (datagram) => onFrame(datagram.subarray(4)),
    send: (payload) => socket.send(encodeFrame(payload)),
    write(payload) {
      socket.send(encodeFrame(payload))
    },
    onFrame: (fn) => (onFrame = fn),
    onClose: () => undefined,
    close: async () => undefined,
    closed: false,
  }
}

function bound(socket) {
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, HOST, () => {
      socket.off('error', reject)
      resolve()
    })
  })
}

function connected(socket, port, address) {
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.connect(port, address, () => {
      socket.off('error', reject)
      resolve()
    })
  })
}

export async function createServer() {
  const socket = dgram.createSocket('udp4')
  await bound(socket)
  let peer = null
  let onConnection = () => undefined
  socket.on('message', async (msg, rinfo) => {
    if (peer === null) {
      // The first datagram: connect to its sender (a connected socket only hears from it).
      peer = conn(socket)
      await connected(socket, rinfo.port, rinfo.address)
      onConnection(peer)
    }
    peer.deliver(msg)
  })
  return {
    port: socket.address().port,
    errors: [],
    onConnection: (fn) => (onConnection = fn),
    serialize: (obj) => Buffer.from(JSON.stringify(obj)),
    broadcaster(conns) {
      return (payload) => {
        for (const c of conns) c.send(payload)
      }
    },
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  }
}

export async function createClient() {
  const sockets = []
  return {
    errors: [],
    async connect({ port }) {
      const socket = dgram.createSocket('udp4')
      await bound(socket)
      await connected(socket, port, HOST)
      sockets.push(socket)
      const c = conn(socket)
      socket.on('message', (msg) => c.deliver(msg))
      return c
    },
    async close() {
      await Promise.all(sockets.map((s) => new Promise((resolve) => s.close(() => resolve()))))
    },
  }
}

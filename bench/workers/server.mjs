// Benchmark worker: the server side of one workload for one implementation, in its own
// process (forked by bench/run.mjs with --expose-gc). It answers the orchestrator's IPC
// requests (see serveOps in bench/lib/common.mjs):
//
//   init { impl, identity, peers, options, mode, sinkBytes } -> { port }
//        mode 'echo': every frame is sent back; 'sink': frames are counted and a DONE
//        frame goes back once sinkBytes arrived on a connection; 'idle': frames ignored.
//        Every connection counts as greeted once its first frame arrived (the client's
//        first frame opens the control stream: SPEC.md §2.3).
//   count -> { connections, greeted }        waitConnections { n, timeoutMs } (greeted)
//   fanout { events } -> { t0, sendMs, connections }   (serialise once, send to all)
// plus the built-in gc / rss / cpu / exit (the orchestrator ends every worker with exit,
// then SIGKILL if it lingers).
import { DONE, condition, loadImpl, monoMs, noiseEvent, serveOps } from '../lib/common.mjs'

let server
const conns = new Set()
/** Connections whose client has sent its first frame (which opens the control stream). */
const greeted = new Set()
const changed = condition()

function attach(conn, mode, sinkBytes) {
  conns.add(conn)
  conn.onClose(() => {
    conns.delete(conn)
    greeted.delete(conn)
    changed.notify()
  })
  let handle = null
  if (mode === 'echo') {
    handle = (payload) => conn.send(payload)
  } else if (mode === 'sink') {
    let bytes = 0
    handle = (payload) => {
      bytes += payload.length
      if (bytes >= sinkBytes) {
        bytes = 0
        conn.send(DONE)
      }
    }
  }
  let first = true
  conn.onFrame((payload) => {
    if (first) {
      first = false
      greeted.add(conn)
      changed.notify()
    }
    handle?.(payload)
  })
  changed.notify()
}

serveOps({
  async init({ impl, identity, peers, options = {}, mode = 'idle', sinkBytes = 0 }) {
    const adapter = await loadImpl(impl)
    server = await adapter.createServer({ identity, peers, options })
    server.onConnection((conn) => attach(conn, mode, sinkBytes))
    return { port: server.port }
  },

  async count() {
    return { connections: conns.size, greeted: greeted.size, errors: server?.errors.slice(0, 5) ?? [] }
  },

  /** Resolves once n connections are open and have sent their first frame. */
  async waitConnections({ n, timeoutMs }) {
    await changed.wait(() => greeted.size >= n, timeoutMs, `${n} greeted server connections (have ${conns.size} open, ${greeted.size} greeted)`)
    return { connections: conns.size }
  },

  /** NOISE_EVENTs 0..events-1, each serialised once and sent to every greeted connection. */
  async fanout({ events }) {
    const send = server.broadcaster([...greeted])
    const t0 = monoMs()
    for (let i = 0; i < events; i++) send(server.serialize(noiseEvent(i)))
    return { t0, sendMs: monoMs() - t0, connections: greeted.size }
  },
})

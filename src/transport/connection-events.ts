// What the endpoint's native events mean for a Connection: the init of the connection
// a handshake event introduces, and the CloseInfo a connection ends with.
import type { CloseInfo, ConnectionInit, Role } from './connection.js'
import { AppErrorCode } from './errors.js'
import type { NativeEvent } from './native-events.js'

/**
 * The Connection a handshake event introduces: 'connection' on the server side,
 * 'connected' on the client side (where the peer always matched the pin, so is known).
 */
export function connectionInit(role: Role, event: Extract<NativeEvent, { kind: 'connection' | 'connected' }>): ConnectionInit {
  return {
    connId: event.connId,
    role,
    peerFingerprint: event.peerFingerprint,
    peerCertificate: event.peerCertDer,
    peerKnown: event.kind === 'connected' || event.peerKnown,
    remoteAddress: { host: event.remoteHost, port: event.remotePort },
  }
}

/** The CloseInfo of a native 'close' event (errorCode only when the event names one). */
export function closeInfoOf(event: Extract<NativeEvent, { kind: 'close' }>): CloseInfo {
  const info: { -readonly [K in keyof CloseInfo]: CloseInfo[K] } = {
    code: event.code,
    reason: event.reason,
    byPeer: event.byPeer,
    application: event.application,
  }
  if (event.errorCode !== undefined) info.errorCode = event.errorCode
  return info
}

/** The CloseInfo of the connections still open when their endpoint stops. */
export function endpointClosedInfo(): CloseInfo {
  return {
    code: AppErrorCode.OK,
    reason: 'endpoint closed',
    byPeer: false,
    application: true,
    errorCode: 'ERR_ENDPOINT_CLOSED',
  }
}

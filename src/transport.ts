// cribcall-quic/transport: the transport layer on its own — a QUIC endpoint with pinned
// mutual TLS and a framed control stream (Endpoint, Connection, identities, errors),
// without the protocol, pairing, store and role layers. Importing it costs about half of
// the full package (README, "Start-up"). The same classes as the package root exports:
// both entries share one copy of the code (scripts/bundle.mjs).
export {
  AbortError,
  AppErrorCode,
  BindError,
  ConnectionClosedError,
  CribcallError,
  ERROR_CODES,
  type CribcallErrorCode,
  EndpointClosedError,
  FrameTooLargeError,
  HandlerError,
  HandshakeFailedError,
  HandshakeTimeoutError,
  IdleTimeoutError,
  ConnectionResetError,
  ConnectionRefusedError,
  InternalError,
  InvalidArgumentError,
  PeerRejectedError,
  PinMismatchError,
  SendBufferFullError,
  SocketError,
  TlsError,
  TooManyConnectionsError,
} from './transport/errors.js'
export {
  Endpoint,
  type ConnectOptions,
  type EndpointEvents,
  type EndpointOptions,
  type EndpointStats,
  type ListenOptions,
} from './transport/endpoint.js'
export {
  Connection,
  MAX_BUFFERED_FRAMES,
  type Address,
  type CloseInfo,
  type ConnectionEvents,
  type Role,
} from './transport/connection.js'
export {
  fingerprintOf,
  generateIdentity,
  type GenerateIdentityOptions,
  type Identity,
  type KeyType,
} from './transport/identity.js'
export { TypedEmitter, type EventMap, type Listener as EventListener } from './transport/emitter.js'

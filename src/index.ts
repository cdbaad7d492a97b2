// Public API of cribcall-quic. The transport layer (QUIC endpoint, pinned mutual TLS,
// framed control stream) is what exists today; the control-channel and pairing layers
// are built on top of it.
export {
  AbortError,
  AppErrorCode,
  BindError,
  ConnectionClosedError,
  CribcallError,
  EndpointClosedError,
  FrameTooLargeError,
  HandlerError,
  HandshakeFailedError,
  HandshakeTimeoutError,
  IdleTimeoutError,
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
export { TypedEmitter, type EventMap, type Listener } from './transport/emitter.js'

// Endpoint.stats(): the counters an endpoint reports, copied from the native ones.

export interface EndpointStats {
  connections: number
  /** Stateless resets sent for packets of connections this endpoint does not have. */
  statelessResetsSent: number
  /** Connections that ended with a stateless reset from the peer. */
  statelessResetsReceived: number
  /** Server handshakes started (connection state created). */
  handshakesStarted: number
  /** Handshakes refused for capacity (maxConnections, maxPairingConnections) or given up for a newer one (maxHalfOpen). */
  handshakesRefused: number
  /** Retry packets sent (address validation). */
  handshakesRetried: number
  /** Initials dropped for a forged, foreign-address or expired Retry token. */
  invalidTokens: number
  /** Server handshakes in progress now. */
  halfOpen: number
  /** Connections closed by a deadline (pairing deadline, frame timeout). */
  closedByDeadline: number
  /** Unsolicited replies sent: version negotiation, Retry, stateless resets, refusals. */
  unsolicitedRepliesSent: number
  handshakesRejected: number
  streamBytesReceived: number
  streamBytesSent: number
  framesReceived: number
  framesSent: number
  packetsReceived: number
  packetsSent: number
  /** System calls that sent packets: fewer than packets where UDP GSO batches them (Linux). */
  sendCalls: number
  /** System calls that received packets: fewer than packets where UDP GRO batches them (Linux). */
  recvCalls: number
}

/** The public counters of `s` (the native statistics may carry more), as a new object. */
export function statsOf(s: EndpointStats): EndpointStats {
  return {
    connections: s.connections,
    statelessResetsSent: s.statelessResetsSent,
    statelessResetsReceived: s.statelessResetsReceived,
    handshakesStarted: s.handshakesStarted,
    handshakesRefused: s.handshakesRefused,
    handshakesRetried: s.handshakesRetried,
    invalidTokens: s.invalidTokens,
    halfOpen: s.halfOpen,
    closedByDeadline: s.closedByDeadline,
    unsolicitedRepliesSent: s.unsolicitedRepliesSent,
    handshakesRejected: s.handshakesRejected,
    streamBytesReceived: s.streamBytesReceived,
    streamBytesSent: s.streamBytesSent,
    framesReceived: s.framesReceived,
    framesSent: s.framesSent,
    packetsReceived: s.packetsReceived,
    packetsSent: s.packetsSent,
    sendCalls: s.sendCalls,
    recvCalls: s.recvCalls,
  }
}

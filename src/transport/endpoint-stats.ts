// Endpoint.stats(): the counters an endpoint reports. Their type and documentation are
// the native addon's (`EndpointStats` in the generated index.d.ts, from the Rust `///`
// docs): one definition.
import type { EndpointStats as NativeEndpointStats } from '../../index.js'

/** The counters of an endpoint (`Endpoint.stats()`). */
export type EndpointStats = NativeEndpointStats

/** A copy of the native counters (the caller may keep or change it). */
export function statsOf(s: EndpointStats): EndpointStats {
  return { ...s }
}

// Small helpers the roles share.
import { X509Certificate } from 'node:crypto'

/** `host:port`, IPv6 hosts in brackets (the trust store's `lastAddress` form). */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/** Parses `hostPort`'s form back. */
export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s)
  if (m === null) return undefined
  return { host: m[1] as string, port: Number(m[2]) }
}

/** base64 of the SubjectPublicKeyInfo DER of a certificate (as TLS presented it). */
export function publicKeyOf(certDer: Buffer): string {
  return new X509Certificate(certDer).publicKey.export({ type: 'spki', format: 'der' }).toString('base64')
}

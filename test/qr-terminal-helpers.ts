// Shared by the terminal QR test files (qr-terminal*.test.ts): a monitor's QR payload
// input, and the compact form's SPEC.md §7.1.8 vectors.
import { generateIdentity, generateQrPairingSecret, type Identity } from '../src/index.js'
import type { QrPayloadInput } from '../src/pairing/qr.js'

export function monitorInput(name: string, over: Partial<QrPayloadInput> = {}, identity: Identity = generateIdentity()): QrPayloadInput {
  return {
    monitorId: identity.deviceId,
    monitorName: name,
    monitorCertFingerprint: identity.fingerprint,
    monitorPublicKey: identity.publicKey,
    pairingSecret: generateQrPairingSecret(),
    defaultPort: 48080,
    ...over,
  }
}

// SPEC.md §7.1.8 vectors (reproduced with an independent Base45 in Python).
export const SPEC_VECTORS = [
  {
    input: {
      monitorCertFingerprint: 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90',
      pairingSecret: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8',
      monitorId: '7c1f3a2e-8d4b-4f6a-9e0c-1b2d3e4f5a6b',
      defaultPort: 48080,
      monitorName: 'Nursery monitor',
    },
    carriedName: 'Nursery monitor',
    compact:
      'CC1:*JK2YOA3TG+0O95WN9+$DW6I*JK2YOA3TG+0O95WN9+$DW6I100KB0*M0DY0W016C1PN1:Y1I12$C2BO2UZ2423ND3.O3G 35VF:F7 %HZ1A5:JRJ3L*7HJBKXNF-94LE5$C3EFP$D5/DHWEO2',
  },
  {
    input: {
      monitorCertFingerprint: 'ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100',
      pairingSecret: '__79_Pv6-fj39vX08_Lx8O_u7ezr6uno5-bl5OPi4eA',
      monitorId: 'c0ffee00-1234-4abc-8def-0123456789ab',
      defaultPort: 443,
      monitorName: 'Chambre de bébé 👶',
    },
    carriedName: 'Chambre de bébé ',
    compact:
      'CC1:/FWZ1SRWNJIJB4F3ZA+K6W62/FWZ1SRWNJIJB4F3ZA+K6W62EGW+4WL%V2RVSFV94VZ$UGQU.EUN3U4$TUPTBET$2TI S:OS.HO/3UPD27K9K.HL60$Y88IH%90LN8BEC2KCDZC6VCA444XO%LC6HL',
  },
] as const

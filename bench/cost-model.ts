// Card cost model: turns a recorded APDU trace and the card-side crypto operations of a transaction
// into an estimated tap time on a real chip over ISO/IEC 14443 (docs/performance.md explains it).

/** What a card does during a transaction, as the model prices it. */
export type CardOp =
  | { op: 'rsa-private'; what: 'sign' | 'decrypt' }
  | { op: 'rsa-public'; what: 'verify' | 'encrypt' }
  | { op: 'aes'; bytes: number } // CBC or ECB over `bytes`
  | { op: 'cmac'; bytes: number }
  | { op: 'sha256'; bytes: number }
  | { op: 'random'; bytes: number }
  | { op: 'nvm-write'; bytes: number }
  | { op: 'sm9'; what: 'sign' | 'verify' | 'encapsulate' | 'decapsulate' };

export interface ChipProfile {
  id: string;
  chip: string;
  /** RSA-2048, ms: JCAlgTest (FACTS.md); `estimated` lists the figures that are not measured ones. */
  rsaSignMs: number;
  rsaDecryptMs: number;
  rsaVerifyMs: number;
  /** AES-128-CBC over 256 bytes, ms (JCAlgTest). */
  aes256Ms: number;
  estimated: string[];
}

/** FACTS.md, "Real cards and gates": JCAlgTest figures per chip. */
export const CHIP_PROFILES: ChipProfile[] = [
  { id: 'jcop4', chip: 'NXP J3R180 (JCOP4)', rsaSignMs: 75.7, rsaDecryptMs: 73.5, rsaVerifyMs: 24.7, aes256Ms: 1.86, estimated: [] },
  { id: 'jcop3', chip: 'NXP J3H145 (JCOP3)', rsaSignMs: 221, rsaDecryptMs: 217, rsaVerifyMs: 39.3, aes256Ms: 9.0, estimated: [] },
  // SECORA ID X: no RSA verify figure; JCOP4's verify/sign ratio (0.33) applied to its sign time.
  { id: 'secora', chip: 'Infineon SECORA ID X', rsaSignMs: 88.7, rsaDecryptMs: 62.5, rsaVerifyMs: 28.9, aes256Ms: 1.0, estimated: ['rsaVerifyMs'] },
  // JCOP 2.4.1: only decrypt is measured; sign taken equal to decrypt (both are one private-key exponentiation).
  { id: 'jcop241', chip: 'NXP J3A081 (JCOP 2.4.1)', rsaSignMs: 443, rsaDecryptMs: 443, rsaVerifyMs: 146, aes256Ms: 66, estimated: ['rsaSignMs', 'rsaVerifyMs'] },
];

/**
 * Assumptions the public figures do not give (docs/performance.md lists them). Each is per chip
 * scaled by its AES speed relative to JCOP4, because the same silicon generation sets both.
 */
export const ASSUMPTIONS = {
  /** A cipher call costs its blocks plus about four blocks of setup (Cipher.init, APDU buffer copies). */
  aesSetupBlocks: 4,
  /** SHA-256 per 64-byte block, in AES-128 blocks (MessageDigest is about twice an AES block on these chips). */
  shaBlockInAesBlocks: 2,
  /** RandomData (TRNG + DRBG), ms per call on JCOP4. */
  randomMsJcop4: 0.5,
  /** JCVM dispatch of one APDU (select the applet, parse, respond), ms on JCOP4. */
  apduOverheadMsJcop4: 1.5,
  /** NVM: a transaction writes the changed bytes plus the same amount to the commit buffer; ms per 64-byte page on JCOP4. */
  nvmPageBytes: 64,
  nvmPageMsJcop4: 1.0,
  /** ISO-DEP: 3 bytes per frame (PCB, CRC), frames up to 256 bytes, 9 bit times per byte (8 + parity). */
  frameOverheadBytes: 3,
  maxFrameBytes: 256,
  bitsPerByte: 9,
  /** Direction switch on the air (frame delay time plus reader turnaround), ms. */
  turnaroundMs: 0.2,
} as const;

export interface TraceExchange {
  command: string;
  apdu: Uint8Array;
  response: Uint8Array;
}

/** Frames and bytes on the air for one message, chained into ≤ 256-byte frames; each extra frame is acknowledged. */
function messageAir(bytes: number): { bytes: number; turnarounds: number } {
  const a = ASSUMPTIONS;
  const payload = a.maxFrameBytes - a.frameOverheadBytes;
  const frames = Math.max(1, Math.ceil(bytes / payload));
  // Every frame but the last is answered by a 3-byte R(ACK): two more direction switches each.
  return { bytes: bytes + frames * a.frameOverheadBytes + (frames - 1) * a.frameOverheadBytes, turnarounds: 1 + 2 * (frames - 1) };
}

export function wireMs(trace: TraceExchange[], kbitPerS: number): { ms: number; airBytes: number } {
  let airBytes = 0;
  let turnarounds = 0;
  for (const e of trace) {
    for (const m of [messageAir(e.apdu.length), messageAir(e.response.length)]) {
      airBytes += m.bytes;
      turnarounds += m.turnarounds;
    }
  }
  const ms = (airBytes * ASSUMPTIONS.bitsPerByte) / kbitPerS + turnarounds * ASSUMPTIONS.turnaroundMs;
  return { ms, airBytes };
}

export function cardMs(ops: CardOp[], apdus: number, p: ChipProfile): number {
  const a = ASSUMPTIONS;
  const block = p.aes256Ms / 16;
  const scale = p.aes256Ms / CHIP_PROFILES[0]!.aes256Ms;
  const blocks = (n: number) => Math.max(1, Math.ceil(n / 16));
  let ms = apdus * a.apduOverheadMsJcop4 * Math.max(1, scale);
  for (const o of ops) {
    switch (o.op) {
      case 'rsa-private':
        ms += o.what === 'sign' ? p.rsaSignMs : p.rsaDecryptMs;
        break;
      case 'rsa-public':
        // OAEP encryption with e = 65537 costs what a verify does.
        ms += p.rsaVerifyMs;
        break;
      case 'aes':
        ms += (blocks(o.bytes) + a.aesSetupBlocks) * block;
        break;
      case 'cmac':
        // One block for the subkey, the CBC chain over the message.
        ms += (blocks(o.bytes) + 1 + a.aesSetupBlocks) * block;
        break;
      case 'sha256':
        ms += (Math.ceil((o.bytes + 9) / 64) * a.shaBlockInAesBlocks + a.aesSetupBlocks) * block;
        break;
      case 'random':
        ms += a.randomMsJcop4 * Math.max(1, scale);
        break;
      case 'nvm-write':
        ms += 2 * Math.ceil(o.bytes / a.nvmPageBytes) * a.nvmPageMsJcop4 * Math.max(1, scale);
        break;
      case 'sm9':
        return NaN; // no public chip figures for SM9 (no Java Card offers pairings)
    }
  }
  return ms;
}

export interface TapEstimate {
  profile: string;
  kbitPerS: number;
  wireMs: number;
  cardMs: number;
  totalMs: number;
}

/** Estimated tap time (wire + card) per chip profile and bit rate; NaN where the chip cannot price an op. */
export function estimateTap(trace: TraceExchange[], ops: CardOp[], rates: number[] = [106, 424]): TapEstimate[] {
  const out: TapEstimate[] = [];
  for (const p of CHIP_PROFILES) {
    const card = cardMs(ops, trace.length, p);
    for (const r of rates) {
      const w = wireMs(trace, r).ms;
      out.push({ profile: p.id, kbitPerS: r, wireMs: w, cardMs: card, totalMs: w + card });
    }
  }
  return out;
}

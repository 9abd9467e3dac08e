// GENERATE KEY (personalisation, RSA suite): the card makes one of its two key pairs and answers the public
// key (SubjectPublicKeyInfo DER); the private key never leaves it.

import { command } from '../spec.js';

export const GENERATE_KEY = command('GENERATE KEY');

/** P1: the card encryption key pair (keys 2/3) or the receipt signing key pair. */
export const GENERATE_KEY_P1 = { ENCRYPTION: 0x01, SIGNING: 0x02 } as const;

/** P2: the RSA modulus size. */
export const GENERATE_KEY_P2 = { RSA_2048: 0x00, RSA_3072: 0x01 } as const;

export function rsaBitsOf(p2: number): 2048 | 3072 {
  return p2 === GENERATE_KEY_P2.RSA_3072 ? 3072 : 2048;
}

export function p2ForRsaBits(bits: 2048 | 3072): number {
  return bits === 3072 ? GENERATE_KEY_P2.RSA_3072 : GENERATE_KEY_P2.RSA_2048;
}

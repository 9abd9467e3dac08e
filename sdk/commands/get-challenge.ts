// GET CHALLENGE: an 8-byte one-time card challenge, which the next WRITE USAGE or DELETE (gate mode pki)
// must carry; VERIFY hands one out too, inside the ticket view.

import { command, LIMITS } from '../spec.js';

export const GET_CHALLENGE = command('GET CHALLENGE');

/** Le must be exactly this (else 6CXX with it). */
export const CHALLENGE_LENGTH = LIMITS.challengeLength;

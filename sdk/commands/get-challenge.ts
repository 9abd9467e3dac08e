// GET CHALLENGE: an 8-byte one-time card challenge for EXTERNAL AUTHENTICATE (the issuer signs it). It arms no
// WRITE USAGE or DELETE: those answer the view a VERIFY showed, whose own challenge travels inside that view.

import { command, LIMITS } from '../spec.js';

export const GET_CHALLENGE = command('GET CHALLENGE');

/** Le must be exactly this (else 6CXX with it). */
export const CHALLENGE_LENGTH = LIMITS.challengeLength;

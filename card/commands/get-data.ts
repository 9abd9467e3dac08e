// GET DATA: the value of one data object named by P2 (serial, suite, public keys, certificates, life cycle,
// capacity, installed keys, protocol version, identity); the identifying ones only after EXTERNAL AUTHENTICATE.

import { utf8 } from '../../sdk/bytes.js';
import { encodeCapacity, encodeInstalledKeys, IDENTIFYING_OBJECTS } from '../../sdk/commands/get-data.js';
import { LIFECYCLE, protocol, SW, T } from '../../sdk/spec.js';
import { refuse, type CommandHandler } from './context.js';

export const getData: CommandHandler = (ctx, apdu) => {
  const s = ctx.state;
  // A keyless reader learns that this is an e-ticket card and nothing that tells one card from another.
  if (s.lifecycle === LIFECYCLE.OPERATIONAL && IDENTIFYING_OBJECTS.includes(apdu.p2) && !ctx.ram.issuerAuthenticated) refuse(SW.SECURITY_STATUS_NOT_SATISFIED, 'EXTERNAL AUTHENTICATE first');
  const some = (v: Uint8Array | undefined) => (v ?? refuse(SW.REFERENCED_DATA_NOT_FOUND)).slice();
  switch (apdu.p2) {
    case T.CARD_SERIAL:
      return s.serial.slice();
    case T.SUITE:
      return new Uint8Array([s.suite]);
    case T.CARD_ENCRYPTION_PUBLIC_KEY:
      return some(s.encKey?.publicKey);
    case T.CARD_SIGNING_PUBLIC_KEY:
      return some(s.signKey?.publicKey);
    case T.CARD_ENCRYPTION_CERTIFICATE:
      return some(s.encCert);
    case T.CARD_SIGNING_CERTIFICATE:
      return some(s.signCert);
    case T.LIFECYCLE:
      return new Uint8Array([s.lifecycle]);
    case T.CAPACITY:
      return encodeCapacity({ totalBytes: s.capacity, freeBytes: Math.max(0, s.capacity - ctx.usedBytes), tickets: s.tickets.length, tombstones: s.tombstones.length });
    case T.INSTALLED_KEYS:
      return encodeInstalledKeys([
        ...s.authorityKeys.map((k) => ({ kind: 'authority' as const, keyId: k.id })),
        ...s.terminalKeys.map((k) => ({ kind: 'terminal' as const, keyId: k.id })),
        ...s.symKeys.map((k) => ({ kind: 'diversified' as const, keyId: k.id })),
      ]);
    case T.PROTOCOL_VERSION:
      return new Uint8Array([protocol.version]);
    case T.CARD_IDENTITY:
      return utf8(s.identity ?? refuse(SW.REFERENCED_DATA_NOT_FOUND));
    default:
      return refuse(SW.REFERENCED_DATA_NOT_FOUND);
  }
};

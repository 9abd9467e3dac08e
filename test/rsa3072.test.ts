// RSA-3072 as the option issue 2 promises: card keys generated on the card at 3072 bits (GENERATE KEY
// P2=01), a 3072-bit authority and terminal, and the whole flow (load, verify with TF_V, gate) working.

import { describe, expect, it } from 'vitest';
import { EticketCard } from '../card/applet.js';
import { CheckingTerminal } from '../host/checking.js';
import { IssuingTerminal } from '../host/issuing.js';
import { personalizeCard } from '../host/personalize.js';
import { CardSession } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';
import { RsaPrivateKey, rsaPublicKey } from '../sdk/crypto/rsa.js';
import { toServiceDate } from '../sdk/fields.js';
import { AuthenticationServer } from '../sdk/roles/authority.js';
import { CertificateAuthority } from '../sdk/roles/ca.js';
import { TerminalKeys } from '../sdk/roles/terminal-keys.js';
import { TicketServer } from '../sdk/roles/ticket-server.js';
import { CaTrust } from '../sdk/roles/trust.js';
import { T } from '../sdk/spec.js';

describe('RSA-3072', () => {
  it('card keys generated at 3072 bits; a 3072-bit authority and gate run the whole flow', async () => {
    const ca = CertificateAuthority.create('3072 CA', 10, RsaPrivateKey.generate(3072));
    const trust = new CaTrust(ca.certificateDer);
    const authorityKey = RsaPrivateKey.generate(3072);
    const terminal = TerminalKeys.generateRsa(3072);
    const card = EticketCard.inMemory();
    const session = new CardSession(new EmulatorTransport(card));
    const credentials = await personalizeCard(session, {
      ca,
      rsaKeySize: 3072,
      authorities: [{ publicKey: authorityKey.publicKey, scopes: ['*'] }],
      terminals: [{ publicKey: terminal.publicKey, scopes: ['*'] }],
    });
    const authority = new AuthenticationServer(authorityKey, trust);
    // The 3072-bit authority authorises the issuer: a locked card shows its keys only then.
    const issuing = new IssuingTerminal(session, { authorize: (c) => authority.authorizeIssuer(c) });
    for (const tag of [T.CARD_ENCRYPTION_PUBLIC_KEY, T.CARD_SIGNING_PUBLIC_KEY]) {
      const pub = await issuing.getData(tag);
      expect(rsaPublicKey(pub!).asymmetricKeyDetails?.modulusLength).toBe(3072);
    }
    const now = Math.floor(Date.now() / 1000);
    const face = new TicketServer('CR').createTicket({ serviceDate: toServiceDate(new Date(now * 1000)), origin: 'BJS', train: 'G9' });
    await issuing.load(authority.issue(face, credentials).sealed);
    const gate = new CheckingTerminal(session, { keys: terminal, authorities: [authorityKey.publicKey], cardTrust: trust, gateId: 'G1', station: 'BJS', clock: () => now });
    const view = await gate.verifyTicket({ tid: face.tid });
    expect(view.verificationCode?.signature.length).toBe(384);
    const r = await gate.passGate('entry');
    expect(r.decision.pass).toBe(true);
    expect(r.receipt?.signature.length).toBe(384);
  });
});

// Signing off the thread (Signer.signAsync, the batch issuance's TF_V and bills): the same scheme as sign(), checked
// by the suite's verify; where the suite has no thread-pool signer (SM9) signAsync() signs on the calling thread.

import { describe, expect, it } from 'vitest';
import { RsaPrivateKey, rsaSuite } from './rsa.js';
import { signAsync } from './suite.js';
import { sm9Suite } from './sm9-suite.js';
import { KeyGenerationCentre } from '../roles/kgc.js';
import { utf8 } from '../bytes.js';
import { CertificateAuthority } from '../roles/ca.js';
import { AuthenticationServer } from '../roles/authority.js';
import { CaTrust } from '../roles/trust.js';
import { TicketServer } from '../roles/ticket-server.js';
import { verificationCodeMessage } from '../ticket.js';
import { decodeBill, signBill, signBillAsync, verifyBill } from '../roles/bill.js';
import { CryptoError } from '../errors.js';

describe('signatures computed off the thread', () => {
  const key = RsaPrivateKey.generate(2048);

  it('RSA: 32 signatures at once on the thread pool each verify (PSS: randomised, so each differs) and none verifies another message', async () => {
    const messages = Array.from({ length: 32 }, (_, i) => utf8(`ticket ${i}`));
    const sigs = await Promise.all(messages.map((m) => key.signAsync(m)));
    sigs.forEach((s, i) => {
      expect(s.length).toBe(256);
      expect(rsaSuite.verify(key.publicKey, messages[i], s)).toBe(true);
      expect(rsaSuite.verify(key.publicKey, messages[(i + 1) % 32], s)).toBe(false);
    });
    expect(new Set(sigs.map((s) => Buffer.from(s).toString('hex'))).size).toBe(32);
  });

  it('SM9 has no thread-pool signer: signAsync() signs on this thread and the signature verifies', async () => {
    const signer = KeyGenerationCentre.create().signer('alice');
    expect(signer.signAsync).toBeUndefined();
    const sig = await signAsync(signer, utf8('ticket'));
    expect(sm9Suite.verify(signer.publicKey, utf8('ticket'), sig)).toBe(true);
  });

  it('a TF_V and a bill signed off the thread are those sign() makes: the same face and fields, a signature that verifies', async () => {
    const ca = CertificateAuthority.create('test CA');
    const authority = new AuthenticationServer(key, new CaTrust(ca.certificateDer));
    const serial = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    const face = new TicketServer('CR').createTicket({ serviceDate: '2026-12-01', train: 'G1' });
    const [sync, async] = [authority.sign(face, { serial }), await authority.signAsync(face, { serial })];
    expect(Buffer.from(async.faceEncoded).equals(Buffer.from(sync.faceEncoded))).toBe(true);
    expect(async.verificationCode.authorityKeyId).toEqual(sync.verificationCode.authorityKeyId);
    expect(rsaSuite.verify(key.publicKey, verificationCodeMessage(async.faceEncoded), async.verificationCode.signature)).toBe(true);
    const fields = { billId: '00'.repeat(16), kind: 'sale' as const, operator: 'CR', tid: face.tid, faceDigest: 'AB'.repeat(32), card: '0102030405060708', seller: '(operator)', price: 100, currency: 'CNY', time: 1_800_000_000, item: { serviceDate: '2026-12-01' } };
    const a = await signBillAsync(key, fields);
    const s = signBill(key, fields);
    expect({ ...a.bill, signature: '' }).toEqual({ ...s.bill, signature: '' });
    const decoded = decodeBill(a.document);
    expect(() => verifyBill(decoded, key.publicKey)).not.toThrow();
    expect(() => verifyBill({ ...decoded, price: 101 }, key.publicKey)).toThrow(CryptoError);
  });
});

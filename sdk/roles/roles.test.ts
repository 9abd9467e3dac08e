// Back-office roles: the CA certifies card keys and nothing else passes for them; the authority seals
// only to keys it can trace to its CA; the ticket server never issues a TID twice.

import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, verifyCardCertificate, verifyClientCertificate } from './ca.js';
import { AuthenticationServer } from './authority.js';
import { CaTrust } from './trust.js';
import { MemoryLedger, TicketServer } from './ticket-server.js';
import { RsaPrivateKey } from '../crypto/rsa.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import forge from 'node-forge';

/** `der` with its subject public key replaced by `spki`, signed again (sha256WithRSAEncryption) by `key`. */
function resign(der: Uint8Array, key: RsaPrivateKey, spki: Uint8Array): Uint8Array {
  const fromDer = (b: Uint8Array) => forge.asn1.fromDer(forge.util.createBuffer(Buffer.from(b).toString('binary')));
  const toDer = (a: forge.asn1.Asn1) => Buffer.from(forge.asn1.toDer(a).getBytes(), 'binary');
  const cert = fromDer(der).value as forge.asn1.Asn1[];
  const tbs = cert[0].value as forge.asn1.Asn1[];
  // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
  tbs[6] = fromDer(spki);
  const signature = nodeSign('sha256', toDer(cert[0]), key.keyObject());
  cert[2] = forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.BITSTRING, false, '\u0000' + signature.toString('binary'));
  return new Uint8Array(toDer(forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.SEQUENCE, true, cert)));
}

describe('certificate authority and card trust', () => {
  let ca: CertificateAuthority;
  let rogue: CertificateAuthority;
  let cardKey: RsaPrivateKey;
  const serial = new Uint8Array([0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8]);
  beforeAll(() => {
    ca = CertificateAuthority.create('test CA');
    rogue = CertificateAuthority.create('rogue CA');
    cardKey = RsaPrivateKey.generate(2048);
  });

  it('certifies a card key for one usage and names the card serial', () => {
    const cert = ca.certifyCardKey(serial, 'encryption', cardKey.publicKey);
    const c = verifyCardCertificate(ca.certificateDer, cert, 'encryption');
    expect(c.serial).toEqual(serial);
    expect(Buffer.from(c.publicKey).equals(Buffer.from(cardKey.publicKey))).toBe(true);
  });

  it('refuses a certificate from another CA, for another usage, or damaged', () => {
    const foreign = rogue.certifyCardKey(serial, 'encryption', cardKey.publicKey);
    expect(() => verifyCardCertificate(ca.certificateDer, foreign, 'encryption')).toThrow(/not issued by the trusted CA/);
    const signing = ca.certifyCardKey(serial, 'signature', cardKey.publicKey);
    expect(() => verifyCardCertificate(ca.certificateDer, signing, 'encryption')).toThrow(CryptoError);
    const damaged = ca.certifyCardKey(serial, 'encryption', cardKey.publicKey);
    damaged[damaged.length - 5] ^= 1;
    expect(() => verifyCardCertificate(ca.certificateDer, damaged, 'encryption')).toThrow(CryptoError);
  });

  it('checks validity at the given time, and refuses the CA certificate itself or a client certificate as a card certificate (native X509Certificate)', () => {
    const cert = ca.certifyCardKey(serial, 'signature', cardKey.publicKey, 5);
    const c = verifyCardCertificate(ca.certificateDer, cert, 'signature');
    expect(c.notAfter.getTime()).toBeGreaterThan(Date.now() + 4 * 365 * 86400_000);
    expect(() => verifyCardCertificate(ca.certificateDer, cert, 'signature', new Date(Date.now() + 6 * 365 * 86400_000))).toThrow(/card certificate is not valid now/);
    expect(() => verifyCardCertificate(ca.certificateDer, cert, 'signature', new Date(Date.now() - 3600_000))).toThrow(/card certificate is not valid now/);
    expect(() => verifyCardCertificate(ca.certificateDer, ca.certificateDer, 'signature')).toThrow(/certificate is for "undefined"/);
    const client = ca.certifyClientKey('seller-1', 'seller', cardKey.publicKey);
    expect(() => verifyCardCertificate(ca.certificateDer, client, 'signature')).toThrow(/certificate is for "eticket seller"/);
    expect(() => verifyCardCertificate(ca.certificateDer, new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]), 'signature')).toThrow(/not an X.509 certificate/);
  });

  it('a client certificate names its client id exactly, special characters included; another id, role or CA is refused', () => {
    const id = 'gate "7", hall=B\nnorth+x\\y';
    const cert = ca.certifyClientKey(id, 'terminal', cardKey.publicKey);
    const c = verifyClientCertificate(ca.certificateDer, cert, 'terminal', id);
    expect(c.clientId).toBe(id);
    expect(Buffer.from(c.publicKey).equals(Buffer.from(cardKey.publicKey))).toBe(true);
    expect(() => verifyClientCertificate(ca.certificateDer, cert, 'terminal', 'gate "7"')).toThrow(`certificate names ${id}, not gate "7"`);
    expect(() => verifyClientCertificate(ca.certificateDer, cert, 'seller', id)).toThrow(/certificate is not for a seller/);
    expect(() => verifyClientCertificate(rogue.certificateDer, cert, 'terminal', id)).toThrow(/client certificate was not issued by the operator CA/);
  });

  it('checking a card certificate (compiled package, its own process) never loads node-forge: only issuing one does', () => {
    const cert = Buffer.from(ca.certifyCardKey(serial, 'encryption', cardKey.publicKey)).toString('hex');
    const script = `
      import { createRequire } from 'node:module';
      const { verifyCardCertificate } = await import(${JSON.stringify(new URL('../../dist/sdk/roles/ca.js', import.meta.url).href)});
      const c = verifyCardCertificate(Buffer.from(process.env.CA, 'hex'), Buffer.from(process.env.CERT, 'hex'), 'encryption');
      const forge = Object.keys(createRequire(import.meta.url).cache).filter((m) => m.includes('node-forge'));
      console.log(JSON.stringify({ serial: Buffer.from(c.serial).toString('hex'), forge }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, CA: Buffer.from(ca.certificateDer).toString('hex'), CERT: cert }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ serial: 'a1a2a3a4a5a6a7a8', forge: [] });
  });

  it('a certificate the CA signed over a non-RSA key is refused as a card or client certificate (what forge refused before)', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ format: 'der', type: 'spki' });
    const card = resign(ca.certifyCardKey(serial, 'encryption', cardKey.publicKey), ca.key, new Uint8Array(ec));
    expect(() => verifyCardCertificate(ca.certificateDer, card, 'encryption')).toThrow(/certificate key is not RSA/);
    const client = resign(ca.certifyClientKey('seller-1', 'seller', cardKey.publicKey), ca.key, new Uint8Array(ec));
    expect(() => verifyClientCertificate(ca.certificateDer, client, 'seller', 'seller-1')).toThrow(/certificate key is not RSA/);
    // The same re-signing with the CA's key over an RSA key passes (the helper makes valid certificates).
    const rsa = resign(ca.certifyCardKey(serial, 'encryption', cardKey.publicKey), ca.key, cardKey.publicKey);
    expect(verifyCardCertificate(ca.certificateDer, rsa, 'encryption').serial).toEqual(serial);
  });

  it('an impostor CA with the same name: its certificates are refused (the issuer name matches, the signature does not)', () => {
    const twin = CertificateAuthority.create('test CA');
    expect(() => verifyCardCertificate(ca.certificateDer, twin.certifyCardKey(serial, 'encryption', cardKey.publicKey), 'encryption')).toThrow(/card certificate was not issued by the trusted CA/);
    expect(() => verifyClientCertificate(ca.certificateDer, twin.certifyClientKey('seller-1', 'seller', cardKey.publicKey), 'seller', 'seller-1')).toThrow(/client certificate was not issued by the operator CA/);
  });

  it('the authority refuses to seal to a card it cannot trace to its CA, or whose certificate names another card', () => {
    const authority = new AuthenticationServer(RsaPrivateKey.generate(2048), new CaTrust(ca.certificateDer));
    const face = new TicketServer('CR').createTicket({ serviceDate: '2026-12-01' });
    const ticket = authority.sign(face, { serial });
    const foreign = rogue.certifyCardKey(serial, 'encryption', cardKey.publicKey);
    expect(() => authority.seal(ticket, { suite: 'rsa', serial, encryptionCertificate: foreign })).toThrow(CryptoError);
    const mine = ca.certifyCardKey(serial, 'encryption', cardKey.publicKey);
    const otherSerial = serial.slice();
    otherSerial[0] ^= 0xff;
    expect(() => authority.seal(ticket, { suite: 'rsa', serial: otherSerial, encryptionCertificate: mine })).toThrow(/names card/);
    expect(() => authority.seal(ticket, { suite: 'rsa', serial })).toThrow(/no encryption certificate/);
    expect(authority.seal(ticket, { suite: 'rsa', serial, encryptionCertificate: mine }).length).toBeGreaterThan(256);
  });

  it('CaTrust checks a certificate chain once and then serves it from its cache; other bytes, a rogue CA, another card are still refused', () => {
    const trust = new CaTrust(ca.certificateDer);
    const mine = ca.certifyCardKey(serial, 'encryption', cardKey.publicKey);
    const card = { suite: 'rsa' as const, serial, encryptionCertificate: mine };
    const key = trust.encryptionKey(card);
    for (let i = 0; i < 5; i++) expect(trust.encryptionKey(card)).toEqual(key);
    expect(trust.chainChecks).toBe(1);
    const altered = mine.slice();
    altered[altered.length - 10] ^= 0x01; // inside the CA's signature
    expect(() => trust.encryptionKey({ ...card, encryptionCertificate: altered })).toThrow(/not issued by the trusted CA/);
    expect(() => trust.encryptionKey({ ...card, encryptionCertificate: rogue.certifyCardKey(serial, 'encryption', cardKey.publicKey) })).toThrow(/not issued by the trusted CA/);
    const otherSerial = serial.map((b) => b ^ 0xff);
    expect(() => trust.encryptionKey({ ...card, serial: otherSerial })).toThrow(/names card/);
    // The same bytes for another usage are a separate check (and refused: the certificate says encryption).
    expect(() => trust.signingKey({ ...card, signingCertificate: mine })).toThrow(CryptoError);
    expect(trust.chainChecks).toBe(4);
  });

  it('a CA reloaded from its key and certificate keeps certifying; a mismatched key is refused', () => {
    const again = CertificateAuthority.load(ca.key, ca.certificateDer);
    expect(() => verifyCardCertificate(ca.certificateDer, again.certifyCardKey(serial, 'signature', cardKey.publicKey), 'signature')).not.toThrow();
    expect(() => CertificateAuthority.load(cardKey, ca.certificateDer)).toThrow(InvalidInputError);
  });
});

describe('ticket server', () => {
  it('issues unique TIDs and refuses a TID it already issued', () => {
    const ledger = new MemoryLedger();
    const server = new TicketServer('CR', ledger, () => 1_800_000_000);
    const tids = new Set(Array.from({ length: 50 }, () => server.createTicket({ serviceDate: 20261201 }).tid));
    expect(tids.size).toBe(50);
    const own = server.createTicket({ serviceDate: 20261201, tid: 'MY-1' });
    expect(own.tid).toBe('MY-1');
    expect(() => server.createTicket({ serviceDate: 20261201, tid: 'MY-1' })).toThrow(/already issued/);
  });

  it('validates every field before spending a TID, and defaults validity to the service day', () => {
    const ledger = new MemoryLedger();
    const server = new TicketServer('CR', ledger);
    expect(() => server.createTicket({ serviceDate: 20261201, tid: 'BAD', seat: 'way-too-long-seat' })).toThrow(/seat/);
    expect(ledger.has('BAD')).toBe(false);
    const face = server.createTicket({ serviceDate: '2026-12-01' });
    expect(face.validFrom).toBe(Date.UTC(2026, 11, 1) / 1000);
    expect(face.validUntil - face.validFrom).toBe(28 * 3600);
    expect(() => new TicketServer('no spaces allowed')).toThrow(InvalidInputError);
  });
});

// Known-answer tests of SM9 against the worked examples of GM/T 0044-2016 part 5 (Annexes A, C, D)
// and pairing values, all byte for byte.
//
// Sources: sm9-gmt0044-kat.json beside this file, a copy of the project's shared KAT file (Annex A, Annex D, curve, H1/H2 inputs; see its
// "sources": GmSSL tests/sm9test.c and emmansun/gmsm internal/sm9). Annex C (key encapsulation,
// same master key ke as Annex D, so it also gives deB of Annex D) comes from emmansun/gmsm
// internal/sm9/kat.go KATWrapKeySample; the two extra pairing values (pairing2 = e(RA, deB) and
// pairing3 = e(Ppub-e, P2)^rB from the Annex B key exchange) from GmSSL tests/sm9test.c.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  H1, H2, N, decapsulate, decrypt, encapsulate, encrypt, extractEncPrivateKey, extractSignPrivateKey,
  generateEncMasterKey, generateSignMasterKey, pairing, sign, verify,
} from './index.js';
import { G1, G2, g1FromBytes, g2FromBytes, g2ToBytes } from './curves.js';
import { gtPow, pair, prepareG2 } from './pairing.js';
import { f12toBytes } from './fields.js';

const kat = JSON.parse(readFileSync(new URL('./sm9-gmt0044-kat.json', import.meta.url), 'utf8'));
const A = kat.signature_annex_A;
const D = kat.encryption_annex_D;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex').toUpperCase();
const bytes = (s: string) => new Uint8Array(Buffer.from(s.replace(/[\s-]/g, ''), 'hex'));
const utf8 = (s: string) => new TextEncoder().encode(s);
const up = (s: string) => s.replace(/[\s-]/g, '').toUpperCase();

/** Annex C (GM/T 0044 part 5), via emmansun/gmsm internal/sm9/kat.go KATWrapKeySample. */
const C = {
  ke: '0001EDEE3778F441F8DEA3D9FA0ACC4E07EE36C93F9A08618AF4AD85CEDE1C22',
  Ppub_e:
    '787ED7B8A51F3AB84E0A66003F32DA5C720B17ECA7137D39ABC66E3C80A892FF769DE61791E5ADC4B9FF85A31354900B202871279A8C49DC3F220F644C57A7B1',
  deB:
    '94736ACD2C8C8796CC4785E938301A139A059D3537B6414140B2D31EECF41683115BAE85F5D8BC6C3DBD9E5342979ACCCF3C2F4F28420B1CB4F8C0B59A19B1587AA5E47570DA7600CD760A0CF7BEAF71C447F3844753FE74FA7BA92CA7D3B55F27538A62E7F7BFB51DCE08704796D94C9D56734F119EA44732B50E31CDEB75C1',
  r: '74015F8489C01EF4270456F9E6475BFB602BDE7F33FD482AB4E3684A6722',
  C: '1EDEE2C3F465914491DE44CEFB2CB434AB02C308D9DC5E2067B4FED5AAAC8A0F1C9B4C435ECA35AB83BB734174C0F78FDE81A53374AFF3B3602BBC5E37BE9A4C',
  K: '4FF5CF86D2AD40C8F4BAC98D76ABDBDE0C0E2F0A829D3F911EF5B2BCE0695480',
};

/** Annex B values used by GmSSL tests/sm9test.c test_sm9_pairing. */
const B = {
  RA: '7CBA5B19069EE66AA79D490413D11846B9BA76DD22567F809CF23B6D964BB265A9760C99CB6F706343FED05637085864958D6C90902ABA7D405FBEDF7B781599',
  deB: '74CCC3AC9C383C60AF083972B96D05C75F12C8907D128A17ADAFBAB8C5A4ACF701092FF4DE89362670C21711B6DBE52DCD5F8E40C6654B3DECE573C2AB3D29B244B0294AA04290E1524FF3E3DA8CFD432BB64DE3A8040B5B88D1B5FC86A4EBC18CFC48FB4FF37F1E27727464F3C34E2153861AD08E972D1625FC1A7BD18D5539',
  pairing2:
    '28542FB6954C84BE6A5F2988A31CB6817BA0781966FA83D9673A9577D3C0C1345E27C19FC02ED9AE37F5BB7BE9C03C2B87DE027539CCF03E6B7D36DE4AB45CD1A1ABFCD30C57DB0F1A838E3A8F2BF823479C978BD137230506EA6249C891049E3497477913AB89F5E2960F382B1B5C8EE09DE0FA498BA95C4409D630D343DA404FEC93472DA33A4DB6599095C0CF895E3A7B993EE5E4EBE3B9AB7D7D5FF2A3D1647BA154C3E8E185DFC33657C1F128D480F3F7E3F16801208029E19434C733BB73F21693C66FC23724DB26380C526223C705DAF6BA18B763A68623C86A632B050F63A071A6D62EA45B59A1942DFF5335D1A232C9C5664FAD5D6AF54C11418B0D8C8E9D8D905780D50E779067F2C4B1C8F83A8B59D735BB52AF35F56730BDE5AC861CCD9978617267CE4AD9789F77739E62F2E57B48C2FF26D2E90A79A1D86B939B1CA08F64712E33AEDA3F44BD6CB633E0F722211E344D73EC9BBEBC921427656BA584CE742A2A3AB41C15D3EF94EDEB8EF74A2BDCDAAECC09ABA567981F6437',
  Ppub_e: '9174542668E8F14AB273C0945C3690C66E5DD09678B86F734C4350567ED0628354E598C6BF749A3DACC9FFFEDD9DB6866C50457CFC7AA2A4AD65C3168FF74210',
  rB: '00018B98C44BEF9F8537FB7D071B2C928B3BC65BD3D69E1EEE213564905634FE',
  pairing3:
    '1052D6E9D13E381909DFF7B2B41E13C987D0A9068423B769480DACCE6A06F4925FFEB92AD870F97DC0893114DA22A44DBC9E7A8B6CA31A0CF0467265A1FB48C72C5C3B37E4F2FF83DB33D98C0317BCBBBBF4AC6DF6B89ECA58268B280045E6126CED9E2D7C9CD3D5AD630DEFAB0B831506218037EE0F861CF9B43C78434AEC380AE7BF3E1AEC0CB67A03440906C7DFB3BCD4B6EEEBB7E371F0094AD4A816088D98DBC791D0671CACA12236CDF8F39E15AEB96FAEB39606D5B04AC581746A663D00DD2B7416BAA91172E89D5309D834F78C1E31B4483BB97185931BAD7BE1B9B57EBAC0349F8544469E60C32F6075FB0468A68147FF013537DF792FFCE024F85710CC2B561A62B62DA36AEFD60850714F49170FD94A0010C6D4B651B64F3A3A5E58C9687BEDDCD9E4FEDAB16B884D1FE6DFA117B2AB821F74E0BF7ACDA22698592A430968F16086061904CE201847934B11CA0F9E9528F5A9D0CE8F015C9AEA79934FDDA6D3AB48C8571CE2354B79742AA498CB8CDDE6BD1FA5946345A1A652F6',
};

describe('SM9 curve parameters (KAT file "curve")', () => {
  it('P1 and P2 are the standard generators, in their groups', () => {
    const c = kat.curve;
    expect(hex(g1FromBytes(bytes(c.P1.x + c.P1.y)).toBytes(false).subarray(1))).toBe(up(c.P1.x + c.P1.y));
    expect(hex(g2ToBytes(g2FromBytes(bytes(c.P2.x1 + c.P2.x0 + c.P2.y1 + c.P2.y0))))).toBe(up(c.P2.x1 + c.P2.x0 + c.P2.y1 + c.P2.y0));
    expect(N).toBe(BigInt('0x' + c.N));
    expect(G1.BASE.multiplyUnsafe(N - 1n).negate().equals(G1.BASE)).toBe(true);
  });
});

describe('pairing KATs', () => {
  it('e(P1, Ppub-s) = g of Annex A', () => {
    const P1 = bytes(kat.curve.P1.x + kat.curve.P1.y);
    expect(hex(pairing(P1, bytes(A.Ppub_s)))).toBe(up(A.g_eP1_Ppubs));
  });
  it('e(RA, deB) of Annex B (GmSSL pairing2)', () => {
    expect(hex(pairing(bytes(B.RA), bytes(B.deB)))).toBe(B.pairing2);
  });
  it('e(Ppub-e, P2)^rB of Annex B (GmSSL pairing3)', () => {
    const g = pair(g1FromBytes(bytes(B.Ppub_e)), prepareG2(G2.BASE));
    expect(hex(f12toBytes(gtPow(g, BigInt('0x' + B.rB))))).toBe(B.pairing3);
  });
});

describe('Annex A: signature', () => {
  const master = generateSignMasterKey(bytes(A.ks));
  const dsA = extractSignPrivateKey(master.privateKey, utf8(A.ID_A), 0x01);
  it('master public key Ppub-s', () => expect(hex(master.publicKey)).toBe(up(A.Ppub_s)));
  it('H1(IDA ‖ hid)', () => expect(H1(bytes(A.ID_A_hex + A.hid))).toBe(BigInt('0x' + A.H1_IDA_hid)));
  it('user key dsA', () => expect(hex(dsA)).toBe(up(A.dsA)));
  it('H2(M ‖ w) = h', () => expect(H2(bytes(A.M_hex + A.w))).toBe(BigInt('0x' + A.h)));
  it('signature h ‖ S with the standard r', () => {
    const sig = sign(dsA, master.publicKey, utf8(A.M), bytes(A.r));
    expect(hex(sig)).toBe(up(A.h + A.S));
    expect(verify(master.publicKey, utf8(A.ID_A), utf8(A.M), sig)).toBe(true);
  });
});

describe('Annex C: key encapsulation', () => {
  const master = generateEncMasterKey(bytes(C.ke));
  it('master public key Ppub-e', () => expect(hex(master.publicKey)).toBe(C.Ppub_e));
  it('user key deB', () => expect(hex(extractEncPrivateKey(master.privateKey, utf8('Bob'), 0x03))).toBe(C.deB));
  it('C and K with the standard r', () => {
    const { key, encapsulation } = encapsulate(master.publicKey, utf8('Bob'), 32, bytes(C.r));
    expect(hex(encapsulation)).toBe(C.C);
    expect(hex(key)).toBe(C.K);
    expect(hex(decapsulate(bytes(C.deB), utf8('Bob'), encapsulation, 32))).toBe(C.K);
  });
});

describe('Annex D: encryption (stream-cipher mode, C1 ‖ C3 ‖ C2)', () => {
  const master = generateEncMasterKey(bytes(D.ke));
  const deB = extractEncPrivateKey(master.privateKey, utf8(D.ID_B), 0x03);
  const ct = encrypt(master.publicKey, utf8(D.ID_B), utf8(D.M), bytes(D.r));
  it('user key deB', () => expect(hex(deB)).toBe(C.deB));
  it('C1, C3, C2', () => {
    const expected = up(D.C_C1_C3_C2_streamcipher);
    expect(hex(ct.subarray(0, 64))).toBe(up(D.C1));
    expect(hex(ct.subarray(64, 96))).toBe(expected.slice(128, 192));
    expect(hex(ct.subarray(96))).toBe(expected.slice(192));
    expect(hex(ct)).toBe(expected);
  });
  it('KEM view: K1 ‖ K2 of length 20 + 32', () => {
    const { key, encapsulation } = encapsulate(master.publicKey, utf8(D.ID_B), 52, bytes(D.r));
    expect(hex(encapsulation)).toBe(up(D.C1));
    expect(hex(key)).toBe(up(D.K1_K2_klen_20plus32));
  });
  it('decrypts to M', () => {
    expect(new TextDecoder().decode(decrypt(deB, utf8(D.ID_B), bytes(D.C_C1_C3_C2_streamcipher)))).toBe(D.M);
  });
});

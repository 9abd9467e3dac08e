// Bills: what a sale (or refund) was, to which card, by which seller, at what price and time, signed by the
// authority's current signing key. A JSON document whose signature covers its canonical form (keys sorted).

import { createHash } from 'node:crypto';
import { concat, fromHex, hex, utf8 } from '../bytes.js';
import { CryptoError, InvalidInputError } from '../errors.js';
import { getSuite } from '../crypto/suites.js';
import { keyId, signAsync, type Signer } from '../crypto/suite.js';
import type { SuiteName } from '../spec.js';

export const BILL_FORMAT = 'eticket-bill/1';
export const BILL_CONTEXT = utf8('ETKT BILL 1');

/** What was sold, in words a person checks: service, date, seat. Strings only. */
export type BillItem = Partial<Record<'service' | 'serviceDate' | 'class' | 'coach' | 'seat' | 'origin' | 'destination' | 'passenger', string>>;

/** A bill's signed fields: sale or refund, ticket, card, seller, price, time, and the key that signs it. */
export interface BillFields {
  format: typeof BILL_FORMAT;
  billId: string;
  kind: 'sale' | 'refund';
  operator: string;
  tid: string;
  /** SHA-256 (hex) of the encoded ticket face TF_A the bill is for. */
  faceDigest: string;
  /** Card serial (hex) the ticket was sealed to. */
  card: string;
  /** Seller client id, or "(operator)" for the operator's own sales. */
  seller: string;
  /** Minor units (fen, cents). */
  price: number;
  currency: string;
  /** Epoch seconds. */
  time: number;
  item: BillItem;
  /** Key id (hex) of the signing key, and its suite. */
  keyId: string;
  suite: SuiteName;
}

/** A signed bill (eticket-bill/1): its fields and the signature over their canonical JSON; verifyBill checks it. */
export interface Bill extends BillFields {
  /** Hex. */
  signature: string;
}

const TEXT = /^[\x20-\x7e\u00a0-\uffff]{0,64}$/;
const ITEM_KEYS = ['service', 'serviceDate', 'class', 'coach', 'seat', 'origin', 'destination', 'passenger'];

/** JSON with keys sorted at every level: one text for one value, so the signature has one reading. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const o = value as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

export function faceDigest(encodedFace: Uint8Array): string {
  return hex(new Uint8Array(createHash('sha256').update(encodedFace).digest()));
}

function fail(message: string): never {
  throw new CryptoError(`not a valid bill: ${message}`);
}

/** Check every field's type and form; the result has exactly the bill's fields. */
function validate(j: Record<string, unknown>, withSignature: boolean): Bill {
  const allowed = ['format', 'billId', 'kind', 'operator', 'tid', 'faceDigest', 'card', 'seller', 'price', 'currency', 'time', 'item', 'keyId', 'suite', ...(withSignature ? ['signature'] : [])];
  for (const k of Object.keys(j)) if (!allowed.includes(k)) fail(`unknown field "${k}"`);
  const str = (k: string, re: RegExp) => {
    const v = j[k];
    if (typeof v !== 'string' || !re.test(v)) fail(`field ${k} is missing or malformed`);
    return v;
  };
  const int = (k: string) => {
    const v = j[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`field ${k} must be a whole number`);
    return v;
  };
  if (j.format !== BILL_FORMAT) fail(`format is not ${BILL_FORMAT}`);
  const item = j.item;
  if (typeof item !== 'object' || item === null || Array.isArray(item)) fail('item must be an object');
  for (const [k, v] of Object.entries(item)) if (!ITEM_KEYS.includes(k) || typeof v !== 'string' || !TEXT.test(v)) fail(`item.${k} is not allowed or not short text`);
  const kind = str('kind', /^(sale|refund)$/) as 'sale' | 'refund';
  const suite = str('suite', /^(rsa|sm9)$/) as SuiteName;
  return {
    format: BILL_FORMAT,
    billId: str('billId', /^[0-9A-F]{32}$/),
    kind,
    operator: str('operator', /^[A-Za-z0-9_.-]{1,16}$/),
    tid: str('tid', /^.{1,32}$/u),
    faceDigest: str('faceDigest', /^[0-9A-F]{64}$/),
    card: str('card', /^[0-9A-F]{16}$/),
    seller: str('seller', /^([A-Za-z0-9_.-]{1,32}|\(operator\))$/),
    price: int('price'),
    currency: str('currency', /^[A-Z]{3}$/),
    time: int('time'),
    item: item as BillItem,
    keyId: str('keyId', /^[0-9A-F]{16}$/),
    suite,
    signature: withSignature ? str('signature', /^[0-9A-F]{2,2048}$/) : '',
  };
}

function signedBytes(fields: BillFields): Uint8Array {
  return concat(BILL_CONTEXT, utf8(canonicalJson(fields)));
}

/** Sign a bill with the authority's current signing key; returns the document as stored and sent. */
export function signBill(signer: Signer, fields: Omit<BillFields, 'format' | 'keyId' | 'suite'>): { bill: Bill; document: string } {
  const clean = billToSign(signer, fields);
  return billDocument(clean, signer.sign(signedBytes(clean)));
}

/** signBill(), with the signature computed off this thread where the key allows (Signer.signAsync): for batches. */
export async function signBillAsync(signer: Signer, fields: Omit<BillFields, 'format' | 'keyId' | 'suite'>): Promise<{ bill: Bill; document: string }> {
  const clean = billToSign(signer, fields);
  return billDocument(clean, await signAsync(signer, signedBytes(clean)));
}

/** The bill's fields, checked, with the signer's key id and suite: what its signature covers. */
function billToSign(signer: Signer, fields: Omit<BillFields, 'format' | 'keyId' | 'suite'>): BillFields {
  const f: BillFields = { format: BILL_FORMAT, ...fields, keyId: hex(keyId(signer.publicKey)), suite: signer.suite };
  let checked: Bill;
  try {
    checked = validate(f as unknown as Record<string, unknown>, false);
  } catch (e) {
    throw new InvalidInputError((e as Error).message.replace(/^not a valid bill: /, 'bill: '));
  }
  const { signature: _s, ...clean } = checked;
  return clean;
}

function billDocument(clean: BillFields, signature: Uint8Array): { bill: Bill; document: string } {
  const bill: Bill = { ...clean, signature: hex(signature) };
  return { bill, document: canonicalJson(bill) };
}

/** Parse a bill document (JSON text or object); CryptoError when it is not a well-formed bill. */
export function decodeBill(document: string | Record<string, unknown>): Bill {
  let j: unknown = document;
  if (typeof document === 'string') {
    try {
      j = JSON.parse(document);
    } catch {
      fail('not JSON');
    }
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) fail('not a JSON object');
  return validate(j as Record<string, unknown>, true);
}

/** Check a bill's signature with `publicKey` (the key its keyId names). Throws CryptoError. */
export function verifyBill(bill: Bill, publicKey: Uint8Array): void {
  if (hex(keyId(publicKey)) !== bill.keyId) throw new CryptoError(`bill names key ${bill.keyId}, not the key given (${hex(keyId(publicKey))})`);
  const { signature, ...fields } = bill;
  if (!getSuite(bill.suite).verify(publicKey, signedBytes(fields), fromHex(signature))) throw new CryptoError(`bill signature does not verify with key ${bill.keyId}: forged or altered`);
}

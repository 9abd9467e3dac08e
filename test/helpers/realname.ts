// Test helper for real-name tickets: an in-memory holder vault (master keys), checking terminals with their
// signing key, encryption key and TOTP secret (as `eticket terminal add` makes them), and holder records.

import { randomBytes } from 'node:crypto';
import { hex } from '../../sdk/bytes.js';
import { RsaPrivateKey } from '../../sdk/crypto/rsa.js';
import { keyId, type Decrypter, type Signer } from '../../sdk/crypto/suite.js';
import type { TotpParameters } from '../../sdk/crypto/totp.js';
import type { KeyGenerationCentre } from '../../sdk/roles/kgc.js';
import type { HolderRecord } from '../../sdk/roles/realname.js';
import type { SuiteName } from '../../sdk/spec.js';
import { HOLDER_MASTER_KEY_LENGTH, holderMasterKeyId, RealNameService, type HolderVault } from '../../backoffice/realname.js';
import type { ClientRecord } from '../../backoffice/store/store.js';

export class MemoryVault implements HolderVault {
  readonly keys = new Map<string, Uint8Array>();
  private currentId = '';

  constructor() {
    this.rotate();
  }

  /** A new current master key; the old ones stay until `forget`. */
  rotate(): string {
    const key = new Uint8Array(randomBytes(HOLDER_MASTER_KEY_LENGTH));
    this.currentId = holderMasterKeyId(key);
    this.keys.set(this.currentId, key);
    return this.currentId;
  }

  forget(id: string): void {
    this.keys.delete(id);
  }

  current(): { id: string; key: Uint8Array } {
    return { id: this.currentId, key: this.keys.get(this.currentId)! };
  }

  key(id: string): Uint8Array | undefined {
    return this.keys.get(id);
  }
}

export interface TestTerminal {
  client: Omit<ClientRecord, 'status' | 'createdAt'>;
  signer: Signer;
  decrypter: Decrypter;
  totp: { secret: Uint8Array; parameters: TotpParameters };
}

/** A gate or inspector of operator CR with everything registration gives it (no CA certificate: tests trust the store). */
export function testTerminal(suite: SuiteName, id: string, kind: 'gate' | 'inspector' | 'issuing', options: { station?: string; kgc?: KeyGenerationCentre; totp?: TotpParameters } = {}): TestTerminal {
  let signer: Signer;
  let decrypter: Decrypter;
  let identity: string | undefined;
  if (suite === 'sm9') {
    identity = `eticket:terminal:CR:${id}`;
    signer = options.kgc!.signer(identity);
    decrypter = options.kgc!.decrypter(identity);
  } else {
    signer = RsaPrivateKey.generate(2048);
    decrypter = RsaPrivateKey.generate(2048);
  }
  const parameters = options.totp ?? { algorithm: 'SHA1', digits: 6, period: 30 };
  return {
    client: { clientId: id, role: 'terminal', name: id, operator: 'CR', suite, publicKey: signer.publicKey, identity, keyId: hex(keyId(signer.publicKey)), kind, station: options.station, encryptionKey: decrypter.publicKey },
    signer,
    decrypter,
    totp: { secret: RealNameService.newTotpSecret(parameters), parameters },
  };
}

export const HOLDERS: HolderRecord[] = [
  { name: 'Li Wei', document: { type: 'id-card', number: '11010519491231002X' } },
  { name: 'Wang Fang', document: { type: 'passport', number: 'E12345678' } },
  { name: 'Zhang Min', document: { type: 'id-card', number: '310101199001011234' } },
];

/** The strings that must never appear outside the back office's encrypted store and the terminals that read them. */
export function secretsOf(h: HolderRecord): string[] {
  return [h.name, h.document.number];
}

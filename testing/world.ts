// A test harness that wires a whole e-ticket system in one process: CA / KGC, authority, ticket server,
// checking-terminal keys and personalised emulated cards. The demo, the tests and the benchmarks start here.

import { EticketCard, type CreateCardOptions } from '../card/applet.js';
import { MemoryBackend, type NvmBackend } from '../card/nvm.js';
import { RsaPrivateKey } from '../sdk/crypto/rsa.js';
import type { Signer } from '../sdk/crypto/suite.js';
import type { SuiteName } from '../sdk/spec.js';
import { AuthenticationServer } from '../sdk/roles/authority.js';
import { CertificateAuthority } from '../sdk/roles/ca.js';
import { TerminalKeys } from '../sdk/roles/terminal-keys.js';
import { TicketServer } from '../sdk/roles/ticket-server.js';
import { CaTrust, KgcTrust, type CardCredentials, type CardTrust } from '../sdk/roles/trust.js';
import { cardIdentity, KeyGenerationCentre } from '../sdk/roles/kgc.js';
import { randomBytes } from 'node:crypto';
import { CheckingTerminal, type GateMode, type OperatorMasterKey } from '../host/checking.js';
import { IssuingTerminal } from '../host/issuing.js';
import { personalizeCard, type IdentityKeyIssuer, type KeyGrant } from '../host/personalize.js';
import { CardSession, type SessionOptions } from '../host/session.js';
import { EmulatorTransport } from '../host/transport/emulator.js';

/** The keys of a test back office for one suite: authority, terminal keys, card trust, and the CA (RSA) or KGC (SM9). */
export interface SuiteWorld {
  suite: SuiteName;
  authorityKey: Signer;
  terminalKeys: TerminalKeys;
  cardTrust: CardTrust;
  ca?: CertificateAuthority;
  kgc?: IdentityKeyIssuer;
}

/** Builders for suites other than RSA register here (SM9 does, from sdk/crypto/sm9-suite). */
export const suiteWorldBuilders: Partial<Record<SuiteName, () => SuiteWorld>> = {
  rsa: () => {
    const ca = CertificateAuthority.create('eticket test CA');
    return { suite: 'rsa', ca, authorityKey: RsaPrivateKey.generate(2048), terminalKeys: TerminalKeys.generateRsa(2048), cardTrust: new CaTrust(ca.certificateDer) };
  },
  sm9: () => {
    const kgc = KeyGenerationCentre.create();
    const terminalId = `eticket:terminal:${randomBytes(4).toString('hex')}`;
    return {
      suite: 'sm9',
      kgc,
      authorityKey: kgc.signer(`eticket:authority:${randomBytes(4).toString('hex')}`),
      terminalKeys: new TerminalKeys(kgc.decrypter(terminalId), kgc.signer(terminalId)),
      cardTrust: new KgcTrust(kgc.signMasterPublicKey, kgc.encMasterPublicKey, cardIdentity),
    };
  },
};

/** A personalised emulated card with its transport, session and issuing terminal, and the credentials sealing needs. */
export interface WorldCard {
  card: EticketCard;
  transport: EmulatorTransport;
  session: CardSession;
  issuing: IssuingTerminal;
  credentials: CardCredentials;
}

/** A whole e-ticket system in one process for tests and demos: back-office roles with fresh in-memory keys, and emulated cards personalised by them. */
export class World {
  readonly authority: AuthenticationServer;
  readonly ticketServer: TicketServer;
  /** Epoch seconds seen by terminals; tests move it. */
  now = Math.floor(Date.now() / 1000);
  /** The operator's checking master key (gate mode sym); every card gets its diversified key. */
  readonly masterKey: OperatorMasterKey;

  constructor(readonly keys: SuiteWorld, readonly operator = 'CR') {
    this.authority = new AuthenticationServer(keys.authorityKey, keys.cardTrust);
    this.ticketServer = new TicketServer(operator, undefined, () => this.now);
    this.masterKey = { operator, key: new Uint8Array(randomBytes(16)) };
  }

  /** A new test back office for `suite` (keys generated now) and `operator`. */
  static create(suite: SuiteName = 'rsa', operator = 'CR'): World {
    const build = suiteWorldBuilders[suite];
    if (!build) throw new Error(`suite ${suite} is not available`);
    return new World(build(), operator);
  }

  /** The crypto suite of this back office. */
  get suite(): SuiteName {
    return this.keys.suite;
  }

  /** The authority's public key as personalisation installs it, valid for `scopes`. */
  authorityGrant(scopes = ['*']): KeyGrant {
    return { publicKey: this.keys.authorityKey.publicKey, scopes };
  }

  /** The checking terminals' public key bundle as personalisation installs it, valid for `scopes`. */
  terminalGrant(scopes = ['*']): KeyGrant {
    return { publicKey: this.keys.terminalKeys.publicKey, scopes };
  }

  /** Manufacture and personalise an emulated card. */
  async newCard(
    options: CreateCardOptions & { backend?: NvmBackend | string; authorities?: KeyGrant[]; terminals?: KeyGrant[]; masterKeys?: OperatorMasterKey[]; session?: SessionOptions } = {},
  ): Promise<WorldCard> {
    const card = EticketCard.create(options.backend ?? new MemoryBackend(), { ...options, suite: this.suite });
    const transport = new EmulatorTransport(card);
    const session = new CardSession(transport, options.session);
    const credentials = await personalizeCard(session, {
      ca: this.keys.ca,
      kgc: this.keys.kgc,
      authorities: options.authorities ?? [this.authorityGrant()],
      terminals: options.terminals ?? [this.terminalGrant()],
      masterKeys: options.masterKeys ?? [this.masterKey],
    });
    const issuing = this.issuingTerminal(session);
    await issuing.open();
    return { card, transport, session, issuing, credentials };
  }

  /** An issuing terminal authorised by this world's authority (EXTERNAL AUTHENTICATE) to read a card's identity. */
  issuingTerminal(session: CardSession): IssuingTerminal {
    return new IssuingTerminal(session, { authorize: (challenge) => this.authority.authorizeIssuer(challenge) });
  }

  /** A checking terminal over `session` with this back office's keys (options override station, gate id, keys, mode). */
  checkingTerminal(
    session: CardSession,
    options: { station?: string; gateId?: string; keys?: TerminalKeys; mode?: GateMode; masterKeys?: OperatorMasterKey[] } = {},
  ): CheckingTerminal {
    return new CheckingTerminal(session, {
      mode: options.mode,
      masterKeys: options.masterKeys ?? [this.masterKey],
      keys: options.keys ?? this.keys.terminalKeys,
      authorities: [this.keys.authorityKey.publicKey],
      cardTrust: this.keys.cardTrust,
      gateId: options.gateId ?? 'G01',
      station: options.station ?? 'BJS',
      clock: () => this.now,
    });
  }
}

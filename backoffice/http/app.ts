// The back office's HTTP API (`eticket serve`): Fastify with a JSON schema on every route, from which the
// OpenAPI document is generated. Sellers book and fetch their tickets and bills; issuing terminals fetch the
// sealed tickets waiting for a card; gates fetch the key set; anyone registered may ask for arbitration.

import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { fromHex, hex } from '../../sdk/bytes.js';
import { CryptoError, EticketError, InvalidInputError } from '../../sdk/errors.js';
import { decodeBill, type Bill } from '../../sdk/roles/bill.js';
import { parseServiceDate, toServiceDate } from '../../sdk/fields.js';
import { holderRecord } from '../../sdk/roles/realname.js';
import { parseAuthorization } from '../../sdk/roles/request-signing.js';
import { symTransactionFromJson } from '../../sdk/roles/sym-receipts.js';
import type { CardCredentials } from '../../sdk/roles/trust.js';
import { TlvError } from '../../sdk/tlv.js';
import { arbitrate, type Evidence, type ReceiptEvidence } from '../arbitration.js';
import { JournalUploadError } from '../journal.js';
import { HolderRefusedError, type HolderRefusal } from '../realname.js';
import { billOf, type Backoffice } from '../service.js';
import { NotFoundError, StoreConflictError, type ClientRecord, type TicketRecord } from '../store/store.js';
import { authenticate, type Role } from './auth.js';
import * as S from './schemas.js';

export interface AppDeps {
  bo: Backoffice;
}

export interface AppOptions {
  /** Accepted distance between a request's timestamp and the service's clock (default 120 s). */
  maxSkewMs?: number;
  /** Where refusals and internal errors are logged (one JSON line each); default stderr. */
  log?: (line: Record<string, unknown>) => void;
  bodyLimit?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    client?: ClientRecord;
    rawBody?: string;
  }
}

class HttpError extends Error {
  constructor(readonly statusCode: number, readonly error: string, message: string) {
    super(message);
  }
}

const unauthorized = () => new HttpError(401, 'unauthorized', 'authentication failed');
const forbidden = () => new HttpError(403, 'forbidden', 'this client may not use this route');

function cardOf(c: S.CardBody): CardCredentials {
  return {
    suite: c.suite,
    serial: fromHex(c.serial),
    encryptionCertificate: c.encryptionCertificate ? fromHex(c.encryptionCertificate) : undefined,
    signingCertificate: c.signingCertificate ? fromHex(c.signingCertificate) : undefined,
    identity: c.identity,
  };
}

async function bookingJson(bo: Backoffice, t: TicketRecord): Promise<S.BookingReply> {
  const bills = await bo.store.billsOf(t);
  const sale = bills.find((b) => b.kind === 'sale');
  const refund = bills.find((b) => b.kind === 'refund');
  return {
    tid: t.tid,
    status: t.status,
    card: t.cardSerial,
    seller: t.sellerId ?? '(operator)',
    serviceId: t.serviceId,
    class: t.travelClass,
    coach: t.coach,
    seat: t.seat,
    price: t.fare ?? 0,
    currency: t.currency ?? 'XXX',
    sealed: hex(t.sealed),
    bill: sale ? billOf(sale) : undefined,
    refund: refund ? billOf(refund) : undefined,
  };
}

function receiptEvidence(b: S.ReceiptBody): ReceiptEvidence {
  return { encoded: fromHex(b.receipt), transaction: b.transaction ? symTransactionFromJson(b.transaction) : undefined, signingCertificate: b.signingCertificate ? fromHex(b.signingCertificate) : undefined };
}

export async function buildApp(deps: AppDeps | undefined, options: AppOptions = {}): Promise<FastifyInstance> {
  const log = options.log ?? ((l) => process.stderr.write(JSON.stringify(l) + '\n'));
  const maxSkewMs = options.maxSkewMs ?? 120_000;
  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimit ?? 256 * 1024,
    // Reject what the schema does not allow instead of quietly changing it.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    return503OnClosing: true,
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'eticket back office', version: '1', description: 'Sellers, issuing terminals, gates and arbitration. Every /v1 route but /v1/health needs an ETKT-SIG signed request (docs/backoffice.md).' },
      components: { securitySchemes: { etktSig: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'ETKT-SIG client=<id>, ts=<ms>, nonce=<32 hex>, sig=<base64 of the signature over "ETKT REQ 1\\nMETHOD\\npath\\nclient\\nts\\nnonce\\nsha256(body) hex">' } } },
      tags: [{ name: 'sellers' }, { name: 'terminals' }, { name: 'gates' }, { name: 'real-name' }, { name: 'arbitration' }, { name: 'service' }],
    },
  });

  // Bodies are kept as text: the signature covers the bytes as sent, and JSON is parsed only after authentication.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, _body, done) => done(new HttpError(415, 'unsupported_media_type', 'send application/json'), undefined));

  /** `onRefused`: what else to do with an authentication failure (the holder route logs it by ticket). */
  const guard = (roles: Role[], onRefused?: (req: FastifyRequest, reason: HolderRefusal) => Promise<void>) => async (req: FastifyRequest) => {
    const raw = typeof req.body === 'string' ? req.body : '';
    req.rawBody = raw;
    if (!deps) throw new HttpError(503, 'unavailable', 'no store');
    const r = await authenticate(deps.bo.store, req.method, req.url, req.headers.authorization, raw, { maxSkewMs });
    if (!r.ok) {
      // The log line names the request, never its body (a booking's body can hold a holder's name).
      log({ event: 'refused', status: 401, reason: r.reason, method: req.method, url: req.url.slice(0, 200), ip: req.ip });
      await onRefused?.(req, r.reason);
      throw unauthorized();
    }
    if (!roles.includes(r.client.role)) {
      log({ event: 'refused', status: 403, client: r.client.clientId, method: req.method, url: req.url.slice(0, 200) });
      throw forbidden();
    }
    req.client = r.client;
    if (raw) {
      try {
        req.body = JSON.parse(raw);
      } catch {
        throw new HttpError(400, 'bad_request', 'the body is not JSON');
      }
    } else if (req.method === 'POST') {
      throw new HttpError(400, 'bad_request', 'the body is missing');
    }
  };

  app.setErrorHandler((err: unknown, req, reply) => {
    const e = err as { statusCode?: number; validation?: unknown; message?: string; code?: string };
    let status = 500;
    let error = 'internal';
    let message = 'internal error';
    if (err instanceof HttpError) ({ statusCode: status, error, message } = err);
    else if (err instanceof HolderRefusedError) [status, error, message] = [err.status, err.error, err.message];
    else if (e.validation) [status, error, message] = [400, 'bad_request', e.message ?? 'invalid request'];
    else if (err instanceof StoreConflictError) [status, error, message] = [409, err.reason, err.message];
    else if (err instanceof NotFoundError) [status, error, message] = [404, 'not_found', err.message];
    else if (err instanceof CryptoError) [status, error, message] = [422, 'unverifiable', err.message];
    else if (err instanceof JournalUploadError) [status, error, message] = [err.status, err.status === 403 ? 'forbidden' : 'bad_request', err.message];
    else if (err instanceof InvalidInputError || err instanceof TlvError) [status, error, message] = [400, 'bad_request', err.message];
    else if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) [status, error, message] = [e.statusCode, e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'too_large' : 'bad_request', e.message ?? 'bad request'];
    else if (err instanceof EticketError) [status, error, message] = [400, 'bad_request', err.message];
    if (status >= 500) log({ event: 'error', method: req.method, url: req.url.slice(0, 200), message: (err as Error)?.message, stack: (err as Error)?.stack });
    void reply.status(status).send({ statusCode: status, error, message });
  });
  app.setNotFoundHandler((_req, reply) => {
    void reply.status(404).send({ statusCode: 404, error: 'not_found', message: 'no such route' });
  });

  const bo = () => deps!.bo;
  const own = async (req: FastifyRequest, tid: string): Promise<TicketRecord> => {
    const t = await bo().store.ticket(bo().operator, tid);
    // Another seller's ticket is "not found": a seller learns nothing about tickets it did not sell.
    if (!t || t.sellerId !== req.client!.clientId) throw new NotFoundError(`no booking ${tid}`);
    return t;
  };

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get('/v1/health', { schema: { tags: ['service'], summary: 'Liveness (no authentication; reveals nothing)', response: { 200: S.Health } } }, async () => ({ ok: true }));

  app.get<{ Querystring: S.ServicesQuery }>(
    '/v1/services',
    { preValidation: guard(['seller']), schema: { tags: ['sellers'], summary: 'Services on sale, with seats left per class', security: [{ etktSig: [] }], querystring: S.ServicesQuery, response: { 200: S.ServicesReply, ...S.errors } } },
    async (req) => {
      const date = req.query.date ? parseServiceDate(req.query.date) : undefined;
      const services = await bo().store.services(bo().operator, { date, code: req.query.train });
      return { services };
    },
  );

  app.post<{ Body: S.BookingBody }>(
    '/v1/bookings',
    {
      preValidation: guard(['seller']),
      schema: { tags: ['sellers'], summary: 'Book a seat: the ticket is issued, sealed to the card and billed, atomically', security: [{ etktSig: [] }], body: S.BookingBody, response: { 200: S.BookingReply, 201: S.BookingReply, ...S.errors } },
    },
    async (req, reply) => {
      const b = req.body;
      const svc = await bo().store.service(b.service);
      if (!svc || svc.operator !== bo().operator) throw new NotFoundError(`no service ${b.service}`);
      const seller = req.client!.clientId;
      if (b.passenger && b.holder) throw new HttpError(400, 'bad_request', 'a real-name booking (holder) carries no passenger name');
      const out = await bo().issue({
        request: { serviceDate: svc.serviceDate, ...(b.passenger ? { passenger: b.passenger } : {}) },
        card: cardOf(b.card),
        sellerId: seller,
        requestKey: b.requestId ? `${seller}:${b.requestId}` : undefined,
        booking: { serviceId: b.service, class: b.class },
        holder: b.holder ? holderRecord(b.holder) : undefined,
      });
      if (out.ticket.sellerId !== seller) throw new StoreConflictError('this request id names another seller\'s booking', 'request_id_taken');
      void reply.status(out.status === 'new' ? 201 : 200);
      return bookingJson(bo(), out.ticket);
    },
  );

  app.get<{ Params: S.TidParams }>(
    '/v1/bookings/:tid',
    { preValidation: guard(['seller']), schema: { tags: ['sellers'], summary: "One of this seller's bookings: status, sealed ticket, bill and refund", security: [{ etktSig: [] }], params: S.TidParams, response: { 200: S.BookingReply, ...S.errors } } },
    async (req) => bookingJson(bo(), await own(req, req.params.tid)),
  );

  app.get<{ Params: S.TidParams }>(
    '/v1/bookings/:tid/sealed',
    { preValidation: guard(['seller']), schema: { tags: ['sellers'], summary: 'The sealed ticket (first ciphertext) to hand to the card by any channel', security: [{ etktSig: [] }], params: S.TidParams, response: { 200: S.SealedReply, ...S.errors } } },
    async (req) => {
      const t = await own(req, req.params.tid);
      return { tid: t.tid, card: t.cardSerial, sealed: hex(t.sealed) };
    },
  );

  app.get<{ Params: S.TidParams }>(
    '/v1/bookings/:tid/bill',
    { preValidation: guard(['seller']), schema: { tags: ['sellers'], summary: 'The signed bill of the sale', security: [{ etktSig: [] }], params: S.TidParams, response: { 200: S.Bill, ...S.errors } } },
    async (req) => {
      const t = await own(req, req.params.tid);
      const sale = (await bo().store.billsOf(t)).find((b) => b.kind === 'sale');
      if (!sale) throw new NotFoundError(`booking ${t.tid} has no bill`);
      return billOf(sale);
    },
  );

  app.post<{ Params: S.TidParams; Body: S.CancelBody }>(
    '/v1/bookings/:tid/cancel',
    {
      preValidation: guard(['seller']),
      schema: { tags: ['sellers'], summary: 'Cancel: frees the seat and bills the refund. A ticket on a card needs its deletion receipt', security: [{ etktSig: [] }], params: S.TidParams, body: S.CancelBody, response: { 200: S.BookingReply, ...S.errors } },
    },
    async (req) => {
      await own(req, req.params.tid);
      const deletion = req.body.receipt ? receiptEvidence(req.body as S.ReceiptBody) : undefined;
      const r = await bo().cancel(req.params.tid, { deletion, sellerId: req.client!.clientId, source: `api:${req.client!.clientId}` });
      return bookingJson(bo(), r.ticket);
    },
  );

  app.post<{ Body: S.PassBody }>(
    '/v1/passes',
    {
      preValidation: guard(['seller']),
      schema: { tags: ['sellers'], summary: 'Sell a metro pass (any station, priced per trip and charged to this seller): issued, sealed to the card and billed', security: [{ etktSig: [] }], body: S.PassBody, response: { 200: S.BookingReply, 201: S.BookingReply, ...S.errors } },
    },
    async (req, reply) => {
      const b = req.body;
      const seller = req.client!.clientId;
      const out = await bo().issuePass({ card: cardOf(b.card), sellerId: seller, requestKey: b.requestId ? `${seller}:${b.requestId}` : undefined, firstDay: b.validFrom ? parseServiceDate(b.validFrom) : toServiceDate(new Date()), days: b.days ?? 1, maxEntries: b.maxEntries, passenger: b.passenger });
      if (out.ticket.sellerId !== seller) throw new StoreConflictError('this request id names another seller\'s booking', 'request_id_taken');
      void reply.status(out.status === 'new' ? 201 : 200);
      return bookingJson(bo(), out.ticket);
    },
  );

  app.get<{ Querystring: S.PendingQuery }>(
    '/v1/terminal/pending',
    { preValidation: guard(['terminal']), schema: { tags: ['terminals'], summary: 'Sealed tickets waiting for this card (an issuing terminal loads them)', security: [{ etktSig: [] }], querystring: S.PendingQuery, response: { 200: S.PendingReply, ...S.errors } } },
    async (req) => ({ card: req.query.card.toUpperCase(), tickets: (await bo().store.pendingFor(req.query.card.toUpperCase())).map((t) => ({ tid: t.tid, sealed: hex(t.sealed), issuedAt: t.issuedAt.toISOString() })) }),
  );

  app.post<{ Body: S.LoadedBody }>(
    '/v1/terminal/loaded',
    { preValidation: guard(['terminal']), schema: { tags: ['terminals'], summary: 'The card took the ticket (LOAD answered)', security: [{ etktSig: [] }], body: S.LoadedBody, response: { 200: S.LoadedReply, ...S.errors } } },
    async (req) => {
      const t = await bo().store.ticket(bo().operator, req.body.tid);
      if (!t || t.cardSerial !== req.body.card.toUpperCase()) throw new NotFoundError(`no ticket ${req.body.tid} for card ${req.body.card}`);
      const updated = await bo().markLoaded(t.tid, req.body.sequenceNumber);
      if (!updated) throw new StoreConflictError(`ticket ${t.tid} is ${t.status}`, 'not_loadable');
      return { tid: t.tid, status: 'loaded' as const };
    },
  );

  app.post<{ Body: S.AuthorizationBody }>(
    '/v1/terminal/authorization',
    {
      preValidation: guard(['terminal']),
      schema: {
        tags: ['terminals'],
        summary: "EXTERNAL AUTHENTICATE data for a card's challenge: with it an issuing terminal reads the card's serial and certificates (issuing terminals only)",
        security: [{ etktSig: [] }],
        body: S.AuthorizationBody,
        response: { 200: S.AuthorizationReply, ...S.errors },
      },
    },
    async (req) => {
      // Gates and inspectors have no business reading card identities: only issuing terminals get authorisations.
      if (req.client!.kind !== undefined && req.client!.kind !== 'issuing') throw forbidden();
      const a = await bo().authorizeIssuer(fromHex(req.body.challenge));
      log({ event: 'issuer_authorization', client: req.client!.clientId, keyId: a.keyId });
      return { authorization: hex(a.authorization), keyId: a.keyId };
    },
  );

  app.post<{ Body: S.ReceiptBody }>(
    '/v1/receipts',
    { preValidation: guard(['terminal']), schema: { tags: ['terminals'], summary: 'Hand in a card receipt (usage or deletion): verified, then stored once', security: [{ etktSig: [] }], body: S.ReceiptBody, response: { 200: S.ReceiptReply, ...S.errors } } },
    async (req) => {
      const ev = receiptEvidence(req.body);
      const checked = req.body.deletion === true ? await bo().recordDeletion(ev, `api:${req.client!.clientId}`) : await bo().recordReceipt(ev, `api:${req.client!.clientId}`);
      return { tid: checked.tid, card: checked.cardSerial, counter: checked.counter, kind: checked.deletion ? ('deletion' as const) : ('usage' as const), mode: checked.mode };
    },
  );

  app.post<{ Body: S.JournalBody }>(
    '/v1/journal',
    {
      preValidation: guard(['terminal']),
      // A batch of 200 records is about 200 KB of JSON; allow ten times that.
      bodyLimit: 4 * 1024 * 1024,
      schema: { tags: ['gates'], summary: "Upload a batch of this gate's journal: verified (checkpoint, chain, card receipts) and stored once per (gate, seq)", security: [{ etktSig: [] }], body: S.JournalBody, response: { 200: S.JournalReply, ...S.errors } },
    },
    async (req) => {
      const r = await bo().journal.ingest(req.client!, req.body);
      if (r.quarantined) log({ event: 'journal_quarantine', gate: r.gate, quarantined: r.quarantined, reasons: r.reasons.slice(0, 5) });
      return { gate: r.gate, through: r.through, stored: r.stored, duplicates: r.duplicates, quarantined: r.quarantined };
    },
  );

  app.get<{ Querystring: S.DenylistQuery }>(
    '/v1/denylist',
    { preValidation: guard(['terminal']), schema: { tags: ['gates'], summary: 'The denylist, signed: a delta from the version the gate holds (since), else in full', security: [{ etktSig: [] }], querystring: S.DenylistQuery, response: { 200: S.DenylistReply, ...S.errors } } },
    async (req) => bo().denylist.document(req.query.since === undefined ? undefined : Number(req.query.since)),
  );

  // An authentication failure on the holder route is logged by ticket too, under the id the caller claimed.
  const holderRefused = async (req: FastifyRequest, reason: HolderRefusal) => {
    const claimed = parseAuthorization(req.headers.authorization)?.clientId ?? '(none)';
    const tid = (req.params as { tid?: string }).tid;
    await bo().realName.logRefusal({ clientId: claimed, operator: bo().operator, tid: tid && /^[\x21-\x7e]{1,32}$/.test(tid) ? tid : undefined, reason });
  };

  app.post<{ Params: S.TidParams; Body: S.HolderReadBody }>(
    '/v1/tickets/:tid/holder',
    {
      preValidation: guard(['terminal', 'seller'], holderRefused),
      // A malformed request is refused like any other, and logged by ticket and terminal first.
      attachValidation: true,
      schema: {
        tags: ['real-name'],
        summary: "A real-name ticket's holder, for a permitted gate or inspector: signed request, TOTP, read limit; answered sealed to the terminal's key. Every read and refusal is logged",
        security: [{ etktSig: [] }],
        params: S.TidParams,
        body: S.HolderReadBody,
        response: { 200: S.HolderReadReply, ...S.holderErrors },
      },
    },
    async (req) => {
      if (req.validationError) {
        await bo().realName.logRefusal({ clientId: req.client!.clientId, operator: bo().operator, tid: /^[\x21-\x7e]{1,32}$/.test(req.params.tid) ? req.params.tid : undefined, reason: 'bad_request' });
        throw new HttpError(400, 'bad_request', req.validationError.message);
      }
      const b = req.body;
      const a = await bo().realName.read(req.client!, { operator: b.operator ?? bo().operator, tid: req.params.tid, holderRef: fromHex(b.holderRef), totp: b.totp, challenge: fromHex(b.challenge) });
      return { tid: a.tid, sealed: hex(a.sealed), readsLeft: a.readsLeft, expiresAt: a.expiresAt.toISOString() };
    },
  );

  app.get(
    '/v1/keys',
    { preValidation: guard(['terminal', 'seller']), schema: { tags: ['gates'], summary: "The authority's key set: root keys and certified signing keys (A4), current and retired", security: [{ etktSig: [] }], response: { 200: S.KeysReply, ...S.errors } } },
    async () => {
      const keys = await bo().store.authorityKeys(bo().operator);
      const current = await bo().store.currentSigningKey(bo().operator);
      return {
        operator: bo().operator,
        suite: bo().keys.suite,
        current: current?.keyId,
        keys: keys.map((k) => ({ keyId: k.keyId, role: k.role, publicKey: hex(k.publicKey), certificate: k.certificate ? hex(k.certificate) : undefined, identity: k.identity, validFrom: k.validFrom.toISOString(), validUntil: k.validUntil?.toISOString(), retiredAt: k.retiredAt?.toISOString() })),
      };
    },
  );

  app.post<{ Body: S.VerifyBody }>(
    '/v1/verify',
    { preValidation: guard(['terminal', 'seller']), schema: { tags: ['arbitration'], summary: 'Verify a ticket, bill or card receipt against the key history', security: [{ etktSig: [] }], body: S.VerifyBody, response: { 200: S.Verdict, ...S.errors } } },
    async (req) => {
      const b = req.body;
      let evidence: Evidence;
      if (b.bill) evidence = { kind: 'bill', bill: decodeBill(b.bill as unknown as Record<string, unknown>) as Bill };
      else if (b.receipt) evidence = { kind: 'receipt', ...receiptEvidence(b as S.ReceiptBody) };
      else if (b.ticket) evidence = { kind: 'ticket', face: fromHex(b.ticket.face), verificationCode: fromHex(b.ticket.verificationCode) };
      else throw new HttpError(400, 'bad_request', 'give one of bill, receipt, ticket');
      const store = bo().store;
      return arbitrate(evidence, { history: await store.authorityKeys(), cardTrust: bo().keys.cardTrust, masterKeys: bo().keys.masterKeys(), card: (s) => store.card(s), operator: bo().operator, ticket: (op, tid) => store.ticket(op, tid) });
    },
  );

  return app;
}

/** The OpenAPI document of the API (what docs/openapi.json holds). */
export async function openApiDocument(): Promise<Record<string, unknown>> {
  const app = await buildApp(undefined);
  await app.ready();
  const doc = app.swagger() as unknown as Record<string, unknown>;
  await app.close();
  return doc;
}

export type { FastifyReply };

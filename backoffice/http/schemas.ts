// JSON schemas of the HTTP API (bodies, queries, params, replies) and the TypeScript types they describe.
// Fastify validates requests and serialises replies with them; @fastify/swagger turns them into OpenAPI.

const hex = (min: number, max: number) => ({ type: 'string', pattern: `^([0-9A-Fa-f]{2}){${min},${max}}$` }) as const;
const serial = { type: 'string', pattern: '^[0-9A-Fa-f]{16}$', description: 'card serial, 8 bytes hex' } as const;
const tid = { type: 'string', minLength: 1, maxLength: 32, pattern: '^[\\x21-\\x7e]+$' } as const;
const keyId = { type: 'string', pattern: '^[0-9A-F]{16}$' } as const;
const time = { type: 'string', format: 'date-time' } as const;

const ErrorReply = {
  type: 'object',
  required: ['statusCode', 'error', 'message'],
  properties: { statusCode: { type: 'integer' }, error: { type: 'string' }, message: { type: 'string' } },
  additionalProperties: false,
} as const;

/** Every error answer has the same shape: status, a short code, and a sentence. */
export const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply, 409: ErrorReply, 422: ErrorReply } as const;
/** The holder-data route adds 410 (expired, reads exhausted, ticket closed) and 503 (master key not here). */
export const holderErrors = { ...errors, 410: ErrorReply, 503: ErrorReply } as const;

export const Health = { type: 'object', required: ['ok'], properties: { ok: { type: 'boolean' } }, additionalProperties: false } as const;

export const ServicesQuery = {
  type: 'object',
  properties: { date: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' }, train: { type: 'string', minLength: 1, maxLength: 16 } },
  additionalProperties: false,
} as const;
export interface ServicesQuery {
  date?: string;
  train?: string;
}

const ServiceClass = {
  type: 'object',
  required: ['class', 'price', 'currency', 'capacity', 'seatsLeft'],
  properties: { class: { type: 'string' }, price: { type: 'integer' }, currency: { type: 'string' }, capacity: { type: 'integer' }, seatsLeft: { type: 'integer' } },
  additionalProperties: false,
} as const;

const Service = {
  type: 'object',
  required: ['serviceId', 'operator', 'code', 'serviceDate', 'classes'],
  properties: {
    serviceId: { type: 'integer' },
    operator: { type: 'string' },
    code: { type: 'string' },
    serviceDate: { type: 'integer', description: 'YYYYMMDD' },
    origin: { type: 'string' },
    destination: { type: 'string' },
    departure: { type: 'integer', description: 'minutes after midnight' },
    kind: { type: 'integer' },
    classes: { type: 'array', items: ServiceClass },
  },
  additionalProperties: false,
} as const;

export const ServicesReply = { type: 'object', required: ['services'], properties: { services: { type: 'array', items: Service } }, additionalProperties: false } as const;

export const Card = {
  type: 'object',
  description: 'The card the ticket is sealed to, as `eticket card info --json` gives its credentials',
  required: ['suite', 'serial'],
  properties: {
    suite: { type: 'string', enum: ['rsa', 'sm9'] },
    serial,
    encryptionCertificate: hex(1, 4096),
    signingCertificate: hex(1, 4096),
    identity: { type: 'string', minLength: 1, maxLength: 64 },
  },
  additionalProperties: false,
} as const;
export interface CardBody {
  suite: 'rsa' | 'sm9';
  serial: string;
  encryptionCertificate?: string;
  signingCertificate?: string;
  identity?: string;
}

export const Holder = {
  type: 'object',
  description: 'Real-name ticket: the holder record, kept encrypted by the back office until the ticket expires and shown only to permitted checking terminals (docs/realname.md). Never written to the card, the bill or any log.',
  required: ['name', 'document'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 64 },
    document: {
      type: 'object',
      required: ['type', 'number'],
      properties: { type: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,16}$', description: 'e.g. id-card, passport' }, number: { type: 'string', minLength: 1, maxLength: 32 } },
      additionalProperties: false,
    },
    photo: { type: 'string', maxLength: 43692, pattern: '^[A-Za-z0-9+/]*={0,2}$', description: 'JPEG or PNG, base64, at most 32 KiB' },
  },
  additionalProperties: false,
} as const;
export interface HolderBody {
  name: string;
  document: { type: string; number: string };
  photo?: string;
}

export const BookingBody = {
  type: 'object',
  required: ['service', 'class', 'card'],
  properties: {
    service: { type: 'integer', minimum: 1, maximum: 2147483647 },
    class: { type: 'string', minLength: 1, maxLength: 8 },
    card: Card,
    passenger: { type: 'string', minLength: 1, maxLength: 32 },
    holder: Holder,
    requestId: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$', description: 'idempotency key: the same id books once and answers the same booking' },
  },
  additionalProperties: false,
} as const;
export interface BookingBody {
  service: number;
  class: string;
  card: CardBody;
  passenger?: string;
  holder?: HolderBody;
  requestId?: string;
}

export const Bill = {
  type: 'object',
  description: 'eticket-bill/1: signed by the authority key named by keyId over "ETKT BILL 1" ‖ canonical JSON of the other fields',
  required: ['format', 'billId', 'kind', 'operator', 'tid', 'faceDigest', 'card', 'seller', 'price', 'currency', 'time', 'item', 'keyId', 'suite', 'signature'],
  properties: {
    format: { type: 'string', enum: ['eticket-bill/1'] },
    billId: { type: 'string' },
    kind: { type: 'string', enum: ['sale', 'refund'] },
    operator: { type: 'string' },
    tid: { type: 'string' },
    faceDigest: { type: 'string' },
    card: { type: 'string' },
    seller: { type: 'string' },
    price: { type: 'integer' },
    currency: { type: 'string' },
    time: { type: 'integer', description: 'epoch seconds' },
    item: { type: 'object', additionalProperties: { type: 'string' } },
    keyId,
    suite: { type: 'string', enum: ['rsa', 'sm9'] },
    signature: { type: 'string' },
  },
  additionalProperties: false,
} as const;

export const BookingReply = {
  type: 'object',
  required: ['tid', 'status', 'card', 'seller', 'price', 'currency', 'sealed'],
  properties: {
    tid: { type: 'string' },
    status: { type: 'string', enum: ['sealed', 'loaded', 'deleted', 'cancelled'] },
    card: { type: 'string' },
    seller: { type: 'string' },
    serviceId: { type: 'integer' },
    class: { type: 'string' },
    coach: { type: 'string' },
    seat: { type: 'string' },
    price: { type: 'integer' },
    currency: { type: 'string' },
    sealed: { type: 'string', description: 'the first ciphertext, hex: LOAD it onto the card' },
    bill: Bill,
    refund: Bill,
  },
  additionalProperties: false,
} as const;
export interface BookingReply {
  tid: string;
  status: 'sealed' | 'loaded' | 'deleted' | 'cancelled';
  card: string;
  seller: string;
  serviceId?: number;
  class?: string;
  coach?: string;
  seat?: string;
  price: number;
  currency: string;
  sealed: string;
  bill?: unknown;
  refund?: unknown;
}

export const TidParams = { type: 'object', required: ['tid'], properties: { tid }, additionalProperties: false } as const;
export interface TidParams {
  tid: string;
}

export const SealedReply = { type: 'object', required: ['tid', 'card', 'sealed'], properties: { tid: { type: 'string' }, card: { type: 'string' }, sealed: { type: 'string' } }, additionalProperties: false } as const;

const SymTransaction = {
  type: 'object',
  description: 'gate mode sym: what the gate logged with the receipt (as `eticket use --json` prints it)',
  required: ['operator', 'keyId', 'terminalChallenge', 'cardChallenge', 'viewMac', 'command', 'macedCommand'],
  properties: {
    operator: { type: 'string', minLength: 1, maxLength: 16 },
    keyId: hex(8, 8),
    terminalChallenge: hex(16, 16),
    cardChallenge: hex(8, 8),
    viewMac: hex(8, 8),
    command: { type: 'string', enum: ['WRITE USAGE', 'DELETE'] },
    macedCommand: hex(1, 1024),
  },
  additionalProperties: false,
} as const;

const receiptProps = {
  receipt: { ...hex(1, 2048), description: 'the B4 receipt as the card sent it, hex' },
  transaction: SymTransaction,
  signingCertificate: hex(1, 4096),
} as const;

export const ReceiptBody = {
  type: 'object',
  required: ['receipt'],
  properties: { ...receiptProps, deletion: { type: 'boolean', description: 'a deletion receipt: also close the ticket' } },
  additionalProperties: false,
} as const;
export interface ReceiptBody {
  receipt: string;
  transaction?: Record<string, string>;
  signingCertificate?: string;
  deletion?: boolean;
}

export const CancelBody = { type: 'object', properties: receiptProps, additionalProperties: false } as const;
export type CancelBody = Partial<ReceiptBody>;

export const ReceiptReply = {
  type: 'object',
  required: ['tid', 'card', 'counter', 'kind', 'mode'],
  properties: { tid: { type: 'string' }, card: { type: 'string' }, counter: { type: 'integer' }, kind: { type: 'string', enum: ['usage', 'deletion'] }, mode: { type: 'string', enum: ['pki', 'sym'] } },
  additionalProperties: false,
} as const;

export const PendingQuery = { type: 'object', required: ['card'], properties: { card: serial }, additionalProperties: false } as const;
export interface PendingQuery {
  card: string;
}

export const PendingReply = {
  type: 'object',
  required: ['card', 'tickets'],
  properties: {
    card: { type: 'string' },
    tickets: { type: 'array', items: { type: 'object', required: ['tid', 'sealed', 'issuedAt'], properties: { tid: { type: 'string' }, sealed: { type: 'string' }, issuedAt: time }, additionalProperties: false } },
  },
  additionalProperties: false,
} as const;

export const LoadedBody = {
  type: 'object',
  required: ['tid', 'card'],
  properties: { tid, card: serial, sequenceNumber: { type: 'integer', minimum: 1, maximum: 65535 } },
  additionalProperties: false,
} as const;
export interface LoadedBody {
  tid: string;
  card: string;
  sequenceNumber?: number;
}
export const LoadedReply = { type: 'object', required: ['tid', 'status'], properties: { tid: { type: 'string' }, status: { type: 'string', enum: ['loaded'] } }, additionalProperties: false } as const;

export const AuthorizationBody = {
  type: 'object',
  required: ['challenge'],
  properties: { challenge: { type: 'string', pattern: '^[0-9A-Fa-f]{16}$', description: 'the card challenge RC from GET CHALLENGE, 8 bytes hex' } },
  additionalProperties: false,
} as const;
export interface AuthorizationBody {
  challenge: string;
}
export const AuthorizationReply = {
  type: 'object',
  required: ['authorization', 'keyId'],
  properties: { authorization: { type: 'string', description: 'EXTERNAL AUTHENTICATE data { C1, [A4], 9E }, hex' }, keyId },
  additionalProperties: false,
} as const;

export const KeysReply = {
  type: 'object',
  required: ['operator', 'suite', 'keys'],
  properties: {
    operator: { type: 'string' },
    suite: { type: 'string' },
    current: { type: 'string', description: 'key id bills are signed with now' },
    keys: {
      type: 'array',
      items: {
        type: 'object',
        required: ['keyId', 'role', 'publicKey', 'validFrom'],
        properties: {
          keyId,
          role: { type: 'string', enum: ['root', 'signing'] },
          publicKey: { type: 'string' },
          certificate: { type: 'string', description: 'A4 key certificate (apdu-spec README 3.6), hex' },
          identity: { type: 'string' },
          validFrom: time,
          validUntil: time,
          retiredAt: time,
        },
        additionalProperties: false,
      },
    },
  },
  additionalProperties: false,
} as const;

export const VerifyBody = {
  type: 'object',
  description: 'exactly one of bill, receipt (with transaction for sym), ticket',
  properties: {
    bill: { type: 'object' },
    ...receiptProps,
    ticket: { type: 'object', required: ['face', 'verificationCode'], properties: { face: hex(1, 2048), verificationCode: hex(1, 2048) }, additionalProperties: false },
  },
  additionalProperties: false,
  minProperties: 1,
} as const;
export interface VerifyBody {
  bill?: Record<string, unknown>;
  receipt?: string;
  transaction?: Record<string, string>;
  signingCertificate?: string;
  ticket?: { face: string; verificationCode: string };
}

export const Verdict = {
  type: 'object',
  required: ['ok', 'kind', 'subject'],
  properties: {
    ok: { type: 'boolean' },
    kind: { type: 'string', enum: ['ticket', 'bill', 'receipt'] },
    reason: { type: 'string' },
    signer: {
      type: 'object',
      properties: { keyId: { type: 'string' }, role: { type: 'string' }, suite: { type: 'string' }, validFrom: { type: 'string' }, validUntil: { type: 'string' }, retiredAt: { type: 'string' }, subject: { type: 'string' } },
      additionalProperties: false,
    },
    signedAt: { type: 'string' },
    validAtTime: { type: 'boolean' },
    subject: { type: 'object', additionalProperties: true },
  },
  additionalProperties: false,
} as const;

// ------------------------------------------------------------------------------------- gates: journals --

const gateId = { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,32}$' } as const;

export const JournalBody = {
  type: 'object',
  description: 'One batch of a gate journal (docs/gates.md): consecutive records of this gate, the last of which the checkpoint signs',
  required: ['gate', 'records', 'checkpoint'],
  properties: {
    gate: gateId,
    records: { type: 'array', minItems: 1, maxItems: 2000, items: { type: 'string', pattern: '^([0-9A-Fa-f]{2}){8,8192}$' }, description: 'encoded records (E0 templates), hex' },
    checkpoint: {
      type: 'object',
      required: ['gate', 'seq', 'head', 'time', 'signature'],
      properties: {
        gate: gateId,
        seq: { type: 'integer', minimum: 1, maximum: 281474976710655 },
        head: { type: 'string', pattern: '^[0-9A-Fa-f]{64}$' },
        time: { type: 'integer', minimum: 0, maximum: 281474976710655, description: 'epoch milliseconds, gate clock' },
        signature: hex(1, 1024),
      },
      additionalProperties: false,
    },
  },
  additionalProperties: false,
} as const;
export interface JournalBody {
  gate: string;
  records: string[];
  checkpoint: { gate: string; seq: number; head: string; time: number; signature: string };
}

export const JournalReply = {
  type: 'object',
  required: ['gate', 'through', 'stored', 'duplicates', 'quarantined'],
  properties: {
    gate: { type: 'string' },
    through: { type: 'integer', description: 'every record up to this seq is stored or kept apart: the gate may drop them' },
    stored: { type: 'integer' },
    duplicates: { type: 'integer' },
    quarantined: { type: 'integer', description: 'records kept apart because they did not verify (listed in the clearing report)' },
  },
  additionalProperties: false,
} as const;

export const DenylistQuery = {
  type: 'object',
  properties: { since: { type: 'string', pattern: '^\\d{1,9}$', description: 'the version the gate holds: the answer is a delta from it when possible' } },
  additionalProperties: false,
} as const;
export interface DenylistQuery {
  since?: string;
}

const serials = { type: 'array', items: { type: 'string', pattern: '^[0-9A-F]{16}$' } } as const;
export const DenylistReply = {
  type: 'object',
  description: 'eticket-denylist/1, signed by the authority key named by keyId (its A4 certificate in `certificate` when it is a signing key) over "ETKT DENY 1" ‖ canonical JSON of the other fields',
  required: ['format', 'operator', 'version', 'kind', 'time', 'keyId', 'suite', 'signature'],
  properties: {
    format: { type: 'string', enum: ['eticket-denylist/1'] },
    operator: { type: 'string' },
    version: { type: 'integer' },
    kind: { type: 'string', enum: ['full', 'delta'] },
    base: { type: 'integer' },
    cards: serials,
    added: serials,
    removed: serials,
    time: { type: 'integer' },
    keyId,
    suite: { type: 'string', enum: ['rsa', 'sm9'] },
    certificate: { type: 'string' },
    signature: { type: 'string' },
  },
  additionalProperties: false,
} as const;

export const PassBody = {
  type: 'object',
  description: 'A metro pass: no origin or destination, valid at any station for `days` days from `validFrom`, each trip priced by the fare table and charged to the seller',
  required: ['card'],
  properties: {
    card: Card,
    validFrom: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$', description: 'first day (UTC, YYYY-MM-DD), default today' },
    days: { type: 'integer', minimum: 1, maximum: 366, default: 1 },
    maxEntries: { type: 'integer', minimum: 1, maximum: 255, default: 255 },
    passenger: { type: 'string', minLength: 1, maxLength: 32 },
    requestId: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$' },
  },
  additionalProperties: false,
} as const;
export interface PassBody {
  card: CardBody;
  validFrom?: string;
  days?: number;
  maxEntries?: number;
  passenger?: string;
  requestId?: string;
}
export const HolderReadBody = {
  type: 'object',
  description: 'A checking terminal asks for the holder of a real-name ticket it has just read from the card',
  required: ['holderRef', 'totp', 'challenge'],
  properties: {
    operator: { type: 'string', minLength: 1, maxLength: 16, description: 'the face\'s operator (default: this back office\'s)' },
    holderRef: { ...hex(16, 16), description: 'face field 95, hex' },
    totp: {
      type: 'object',
      required: ['code', 'time'],
      properties: { code: { type: 'string', pattern: '^[0-9]{6,8}$' }, time: { type: 'integer', minimum: 0, maximum: 1099511627775, description: 'Unix seconds the code was computed for (RFC 6238 T = floor(time / period))' } },
      additionalProperties: false,
    },
    challenge: { ...hex(16, 16), description: '16 random bytes, hex: the sealed answer carries them back' },
  },
  additionalProperties: false,
} as const;
export interface HolderReadBody {
  operator?: string;
  holderRef: string;
  totp: { code: string; time: number };
  challenge: string;
}

export const HolderReadReply = {
  type: 'object',
  required: ['tid', 'sealed', 'readsLeft', 'expiresAt'],
  properties: {
    tid: { type: 'string' },
    sealed: { type: 'string', description: 'envelope B1 to the terminal\'s encryption key (apdu-spec README 3.8): the holder record, the binding salt, this challenge' },
    readsLeft: { type: 'integer' },
    expiresAt: time,
  },
  additionalProperties: false,
} as const;

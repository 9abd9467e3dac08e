// The `eticket` package: what a gate, an issuing kiosk or a personalisation station embeds. Terminals in the
// patent's words, over a card session, over any transport; typed errors, receipts, keys loaded from files, and
// the back office's HTTP client.
/**
 * The host SDK of the eticket system. A gate is a {@link CheckingTerminal} over a {@link CardSession} over any
 * {@link Transport}: `eticket/pcsc` for card readers, `eticket/emulator` for the emulated card. A production
 * gate loads its keys with {@link loadGateConfig}; card refusals are {@link CardStatusError}s naming the command
 * and the status word; reader faults are {@link TransportError}s; a card that breaks the protocol is a
 * {@link CardMisbehavedError}. Protocol version 2: a locked card tells its identity only to an issuing terminal
 * authorised by the operator's authority (an {@link IssuerAuthorizer}: {@link AuthenticationServer.authorizeIssuer}
 * in process, {@link BackofficeClient.authorizeIssuer} over HTTP); tickets are bound to one card; signing keys
 * rotate under a root through key certificates ({@link signKeyCertificate}). Sellers, issuing kiosks and gates reach
 * the operator's back office over HTTP with {@link BackofficeClient} (requests signed with the client's credential
 * file, {@link loadCredential}). A gate checks a real-name ticket's holder with a {@link BackofficeHolderChecker} in
 * its configuration: each tap's `realName` is a {@link RealNameCheck}; holder requests carry a TOTP code
 * ({@link totp}, RFC 6238).
 *
 * @module eticket
 */

// --- terminals -------------------------------------------------------------------------------------------------
export {
  CheckingTerminal,
  checkTerminalConfig,
  GATE_COMMAND_DEADLINE_MS,
  PkiNotConfiguredError,
  REALNAME_WAIT_MS,
  type CheckingTerminalConfig,
  type GateMode,
  type GateSession,
  type TicketQuery,
  type TicketView,
} from '../host/checking.js';
export { decide, reject, REJECT_MESSAGES, rejectFor, type Direction, type GateDecision, type RejectReason } from '../host/gate.js';
export {
  IssuingTerminal,
  isDuplicate,
  parseFci,
  type CardCapacity,
  type CardInfo,
  type FciInfo,
  type IssuerAuthorizer,
  type IssuingTerminalOptions,
} from '../host/issuing.js';
export { personalizeCard, type KeyGrant, type PersonalizationProfile } from '../host/personalize.js';

// --- a gate's configuration from files -------------------------------------------------------------------------
export { GATE_FILE, GATE_FORMAT, loadGateConfig, readGateFile, validateGateFile, type GateConfig, type GateFile, type LoadGateOptions } from '../host/gate-config.js';

// --- session and transports ------------------------------------------------------------------------------------
export { CardSession, DEFAULT_COMMAND_DEADLINE_MS, formatTrace, type SendOptions, type SessionOptions, type TraceEntry } from '../host/session.js';
export type { CardEvent, Transport, TransportInfo } from '../host/transport/transport.js';
export { dumpFileWriter, RecordingTransport, type RecordingOptions } from '../host/transport/recording.js';
export { parseDump, ReplayMismatchError, ReplayTransport, toHex, type ApduDump, type DumpEntry, type DumpExchange, type DumpReset, type ReplayOptions } from '../host/transport/replay.js';

// --- the back office over HTTP: sellers, issuing terminals and gates (docs/backoffice.md) -------------------------
export {
  BackofficeClient,
  BackofficeHttpError,
  BackofficeUnreachableError,
  type AuthorityKeyInfo,
  type BackofficeClientOptions,
  type Booking,
  type KeySet,
  type ReceiptUpload,
  type ServiceClassInfo,
  type ServiceInfo,
  type HolderRead,
  type TotpStepStore,
  type Verdict,
} from '../host/backoffice-client.js';
export { credentialSummary, loadCredential, type ClientCredentialFile, type ClientIdentity, type RealNameCredential } from '../sdk/roles/client-credential.js';
export { decodeBill, verifyBill, type Bill, type BillFields, type BillItem } from '../sdk/roles/bill.js';

// --- real-name tickets: the gate's holder check (docs/realname.md) ------------------------------------------------
export { BackofficeHolderChecker, checkWithin, realNameCheckFor, totpStepFile, type RealNameCheck, type RealNameChecker, type RealNameStatus } from '../host/realname.js';
export { HOLDER_LIMITS, HolderRecordError, holderJson, holderRecord, type HolderJson, type HolderRecord } from '../sdk/holder.js';
export { checkHolderAnswer, HOLDER_ANSWER_FORMAT, holderBinding, HolderBindingError, openHolderAnswer, type HolderAnswer } from '../sdk/roles/realname.js';
export {
  checkTotpParameters,
  DEFAULT_TOTP,
  hotp,
  TOTP_ALGORITHMS,
  TOTP_SECRET_LENGTH,
  totp,
  totpForStep,
  totpStep,
  type TotpAlgorithm,
  type TotpParameters,
} from '../sdk/crypto/totp.js';

// --- errors ----------------------------------------------------------------------------------------------------
export {
  CardMisbehavedError,
  CardRemovedError,
  CardStatusError,
  CryptoError,
  EticketError,
  InvalidInputError,
  IssuerAuthorizationRequiredError,
  ReaderNotFoundError,
  RelayError,
  TicketNotFoundError,
  TransportError,
  TransportTimeoutError,
  TransportUnavailableError,
  WrongCardError,
  type Misbehaviour,
} from '../sdk/errors.js';
export { ApduFormatError } from '../sdk/apdu.js';
export { TlvError } from '../sdk/tlv.js';
export { EnvelopeError } from '../sdk/crypto/envelope.js';
export { InsecurePermissionsError } from '../sdk/files.js';

// --- receipts --------------------------------------------------------------------------------------------------
export { parseReceipt, receiptSignedBytes, type Receipt } from '../sdk/receipt.js';
export {
  SymKeyCache,
  symTransactionFromJson,
  symTransactionToJson,
  verifySymReceipt,
  type OperatorMasterKey,
  type SymCommandName,
  type SymTransaction,
  type SymVerifyOptions,
  type VerifiedSymReceipt,
} from '../sdk/roles/sym-receipts.js';

// --- tickets and the protocol's names --------------------------------------------------------------------------
export { FACE_VERSION, faceDigestOf, isRealName, TICKET_FLAG, USAGE_FLAG, type TicketFace, type UsageRecord, type VerificationCode } from '../sdk/ticket.js';
export { formatServiceDate, parseServiceDate, toServiceDate } from '../sdk/fields.js';
export { AID, describeSw, LIMITS, SW, USAGE_EVENT, USAGE_STATE, type SuiteName } from '../sdk/spec.js';
export { fromHex, hex } from '../sdk/bytes.js';

// --- keys ------------------------------------------------------------------------------------------------------
export { KeyFileRejectedError, KeyStore, openSecret, sealSecret, type SealedSecret } from '../sdk/roles/keystore.js';
export {
  cardTrustFromFile,
  copyTerminalKeys,
  decodeKgcPublicKeys,
  encodeKgcPublicKeys,
  fromPem,
  loadMasterKey,
  loadTerminalKeys,
  masterKeyName,
  PEM_LABEL,
  readPemFile,
  SECRET_KIND,
  storeMasterKey,
  TERMINAL_KEY_NAMES,
  toPem,
  type KgcPublicKeys,
  type MasterKeyRef,
} from '../sdk/roles/key-files.js';
export { TerminalKeys } from '../sdk/roles/terminal-keys.js';
export { CaTrust, KgcTrust, type CardCredentials, type CardTrust, type IdentityKeyIssuer } from '../sdk/roles/trust.js';
export { RsaPrivateKey, type RsaKeySize } from '../sdk/crypto/rsa.js';
export type { CryptoSuite, Decrypter, Signer } from '../sdk/crypto/suite.js';

// --- back-office roles (pure logic: the service runs them; tests and tools may too) -----------------------------
export { AuthenticationServer, type AuthenticationServerOptions, type SignedTicket } from '../sdk/roles/authority.js';
export {
  decodeKeyCertificate,
  KEY_CERTIFICATE_CONTEXT,
  keyCertificateBody,
  signKeyCertificate,
  verifyKeyCertificate,
  type KeyCertificate,
  type KeyCertificateFields,
} from '../sdk/roles/key-certificate.js';
export { resolveSigningKey, signingKeyOrThrow, type KeyChainCheck, type KeyChainFailure, type KeyChainResult, type RootKey } from '../sdk/roles/key-chain.js';
export {
  decodeIssuerAuthorization,
  encodeIssuerAuthorization,
  issuerAuthorizationMessage,
  type IssuerAuthorization,
} from '../sdk/commands/external-authenticate.js';
export { CertificateAuthority, verifyCardCertificate, type CardKeyUsage, type CertifiedCardKey } from '../sdk/roles/ca.js';
export { cardIdentity, KeyGenerationCentre, type KgcMasterKeys } from '../sdk/roles/kgc.js';
export { FileLedger, MemoryLedger, TicketServer, type TicketRequest, type TidLedger } from '../sdk/roles/ticket-server.js';

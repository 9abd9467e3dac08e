// `eticket/vectors`: the APDU conformance vectors of apdu-spec and their runner, for QA against the emulator or
// a card in a PC/SC reader, with JUnit / TAP / JSON reports.
/**
 * Run the conformance vectors: {@link loadVectorFiles} (the package's own files: {@link vectorFiles}), a
 * {@link CardProvider} ({@link imageProvider} for emulated cards, {@link readerProvider} for a reader), then
 * {@link runVectors} and {@link writeReport}. The vectors use TEST ONLY keys that are not in the package: give
 * their directory (`test-vectors/keys/` of the eticket repository) as `keysDir` or `$ETICKET_TEST_KEYS`.
 *
 * @module eticket/vectors
 */
export { loadVectorFile, loadVectorFiles, runVectors, validateVectorFile, type Acquired, type ApduLog, type CardProvider, type RunOptions, type RunReport, type TestOutcome } from '../test-vectors/runner.js';
export { ImageFactory, imageProvider, profileKeyIds, readerProvider } from '../test-vectors/providers.js';
export { summaryTable, writeReport, type ReportFormat } from '../test-vectors/reports.js';
export { coverage, type Coverage } from '../test-vectors/coverage.js';
export { authority, loadTestKeys, masterKey, personalizationProfile, terminal, testKeysDir, type TestAuthority, type TestKeys, type TestMasterKey, type TestTerminal } from '../test-vectors/testkeys.js';
export { VECTOR_DIR, vectorFiles } from '../test-vectors/files.js';
export type * from '../test-vectors/format.js';

// `eticket/pcsc`: card readers through the PC/SC service (pcscd) and the optional npm binding `pcsclite`.
// Kept apart from the main entry so that a program without readers never needs the native binding.
/**
 * PC/SC transport: {@link PcscTransport} drives a reader by name; {@link listReaders} and {@link waitForCard}
 * find one. The native binding runs in a child process (the PC/SC agent, shipped as
 * `dist/host/transport/pcsc-agent.cjs`), so no PC/SC call can block the caller; {@link PcscAgentOptions} sets
 * its environment. Without the optional dependency `pcsclite` the first use throws TransportUnavailableError
 * (from `eticket`) saying how to install it.
 *
 * @module eticket/pcsc
 */
export {
  listReaders,
  matchReader,
  PcscTransport,
  pcscErrorCode,
  waitForCard,
  waitForRemoval,
  type PcscAgentOptions,
  type PcscDisposition,
  type PcscProtocol,
  type PcscReaderStatus,
  type PcscShareMode,
  type PcscTransportOptions,
} from '../host/transport/pcsc.js';

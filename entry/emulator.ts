// `eticket/emulator`: the emulated e-ticket card for tests and demos: in process, from an image file, or put
// into pcscd's virtual reader (vsmartcard vpcd) so that any PC/SC program sees it.
/**
 * The emulated card ({@link EticketCard}) with its NVM backends, the in-process {@link EmulatorTransport}, and
 * the vpcd bridge ({@link VpcdBridge}, or {@link startVpcdChild} for a card in its own process). A reference and
 * a test target, not a secure element: not constant-time, NVM in a plain file.
 *
 * @module eticket/emulator
 */
export { CardRefusal, EticketCard, openCardImage, type CreateCardOptions, type SymSession, type VolatileState } from '../card/applet.js';
export type { Icc } from '../sdk/icc.js';
export { FaultInjector, FileBackend, MemoryBackend, NvmCorruptError, NvmStore, NvmWriteError, PowerCutError, type NvmBackend, type Region } from '../card/nvm.js';
export { VPCD_PORT, VpcdBridge, vpcdPort, type ReconnectPolicy, type VpcdBridgeOptions, type VpcdEvent, type VpcdTiming } from '../card/vpcd.js';
export { startVpcdChild, VpcdChild, type ChildExit, type IccFactorySpec, type VpcdChildOptions } from '../card/vpcd-child.js';
export { EmulatorTransport } from '../host/transport/emulator.js';

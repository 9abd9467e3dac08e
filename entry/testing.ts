// `eticket/testing`: a whole e-ticket system in one process for an integrator's tests: a test back office
// (CA or KGC, authority, ticket server, gate keys, master key) and personalised emulated cards.
/**
 * {@link World}: a test back office and emulated cards, ready in one call. Its keys are made fresh in memory
 * for each World and never leave the process; never use it to make keys for real cards.
 *
 * @module eticket/testing
 */
export { suiteWorldBuilders, World, type SuiteWorld, type WorldCard } from '../testing/world.js';

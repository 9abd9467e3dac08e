// A production gate: its keys and trust root from its configuration directory (`eticket provision-gate`), cards in
// a PC/SC reader, one JSON line per tap with the card's receipt for the back office. Needs pcscd and a reader.
//
//   ETICKET_GATE_PASSPHRASE=... node production-gate.js <gate-dir> <reader> entry|exit [--once]
//
// --once: stop after one card; exit status 0 when it passed, 6 when it was rejected (as `eticket gate`).

import { parseArgs } from 'node:util';
import { CardSession, CheckingTerminal, hex, loadGateConfig, TransportError, TransportTimeoutError, type Direction } from 'eticket';
import { PcscTransport } from 'eticket/pcsc';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { once: { type: 'boolean' } } });
const [dir, reader, direction] = positionals;
if (!dir || !reader || (direction !== 'entry' && direction !== 'exit')) {
  console.error('usage: production-gate <gate-dir> <reader> entry|exit [--once]');
  process.exit(1);
}
const passphrase = process.env.ETICKET_GATE_PASSPHRASE;
if (!passphrase) {
  console.error('production-gate: set ETICKET_GATE_PASSPHRASE (the passphrase given at eticket provision-gate)');
  process.exit(1);
}

// Keys 4/5 (or the checking master key in mode sym), authority keys, CA certificate or KGC keys, gate id, station.
const config = loadGateConfig(dir, { passphrase });
const transport = new PcscTransport({ reader });
const gateDirection: Direction = direction;

let stopping = false;
process.once('SIGINT', () => (stopping = true));
process.once('SIGTERM', () => (stopping = true));
console.error(`gate ${config.gateId} at ${config.station} (${gateDirection}, mode ${config.mode}) waiting for cards on "${reader}"`);

while (!stopping) {
  try {
    await transport.waitForCard(500);
  } catch (e) {
    if (e instanceof TransportTimeoutError) continue; // nobody there yet: look again (and notice Ctrl-C)
    throw e;
  }
  const session = new CardSession(transport);
  let pass = false;
  try {
    // passGate never throws for a refusal: a ticket that is used, expired or for another station is a REJECT.
    const { decision, ticket, receipt } = await new CheckingTerminal(session, config).passGate(gateDirection);
    pass = decision.pass;
    // A real gate opens its barrier on PASS and journals the receipt before it does (the back office stores it).
    console.log(
      JSON.stringify({
        pass,
        reason: decision.reason,
        message: decision.message,
        gate: config.gateId,
        tid: ticket?.face.tid,
        card: ticket && hex(ticket.cardSerial),
        counter: receipt?.counter,
        receipt: receipt && hex(receipt.encoded),
      }),
    );
  } catch (e) {
    // A card pulled mid-tap is the passenger's problem, not the gate's: report it and wait for the next card.
    if (!(e instanceof TransportError)) throw e;
    console.log(JSON.stringify({ pass: false, reason: 'transport', message: e.message, gate: config.gateId }));
  } finally {
    await session.close().catch(() => undefined);
  }
  if (values.once) {
    process.exitCode = pass ? 0 : 6;
    break;
  }
  // One tap per presentation: wait for the card to leave before serving the next passenger.
  while (!stopping && (await transport.status()).cardPresent) await new Promise((r) => setTimeout(r, 100));
}
await transport.disconnect();
// A PC/SC call left stuck in pcscd keeps the native pcsclite context, and so the process, alive: a gate that is
// done exits explicitly (the eticket CLI does the same).
process.exit();

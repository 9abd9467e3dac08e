// An issuing kiosk (出票終端): a passenger presents a card and the kiosk loads the tickets the back office sealed
// to that card (first ciphertexts, here the JSON Lines files `eticket issue --out` writes), then shows the space left.
// The kiosk holds no secret: a sealed ticket is only usable on the card it was sealed to.
//
//   node issuing-kiosk.js <inbox-dir> --reader <name>     a card in a PC/SC reader
//   node issuing-kiosk.js <inbox-dir> --card <image>      an emulated card image (no reader needed)
//
// Exit status 0 when every ticket for the card is on it, 2 when the card refused one (e.g. full).

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CardSession, CardStatusError, fromHex, hex, IssuingTerminal, isDuplicate, SW, type Transport } from 'eticket';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { reader: { type: 'string' }, card: { type: 'string' } } });
const [inbox] = positionals;
if (!inbox || Boolean(values.reader) === Boolean(values.card)) {
  console.error('usage: issuing-kiosk <inbox-dir> (--reader <name> | --card <image>)');
  process.exit(1);
}

/** Readers come from eticket/pcsc; the emulated card from eticket/emulator (each loaded only when used). */
async function openTransport(): Promise<Transport> {
  if (values.reader) {
    const { PcscTransport } = await import('eticket/pcsc');
    const reader = new PcscTransport({ reader: values.reader });
    await reader.waitForCard(30_000);
    return reader;
  }
  const { EmulatorTransport, EticketCard } = await import('eticket/emulator');
  return new EmulatorTransport(EticketCard.open(values.card!));
}

/** The sealed tickets waiting for card `serial` (lines of `eticket issue --out` files: { tid, card, sealed }). */
function waitingFor(serial: string): { tid: string; sealed: Uint8Array }[] {
  const out: { tid: string; sealed: Uint8Array }[] = [];
  for (const file of readdirSync(inbox).filter((f) => f.endsWith('.jsonl'))) {
    for (const line of readFileSync(join(inbox, file), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const entry = JSON.parse(line) as { tid: string; card: string; sealed: string };
      if (entry.card.toUpperCase() === serial) out.push({ tid: entry.tid, sealed: fromHex(entry.sealed) });
    }
  }
  return out;
}

const session = new CardSession(await openTransport());
try {
  const kiosk = new IssuingTerminal(session);
  const card = await kiosk.open();
  if (card.lifecycle !== 'OPERATIONAL') throw new Error(`card ${card.serialHex} is not personalised: it cannot hold tickets yet`);
  const tickets = waitingFor(card.serialHex.toUpperCase());
  console.log(`card ${card.serialHex}: ${tickets.length} ticket(s) waiting`);
  for (const t of tickets) {
    try {
      const loaded = await kiosk.load(t.sealed);
      console.log(`loaded ${loaded.tid} (slot ${loaded.sequenceNumber})`);
    } catch (e) {
      // Loading twice is harmless: the card refuses the duplicate and the ticket is there.
      if (isDuplicate(e)) {
        console.log(`${t.tid} already on the card`);
        continue;
      }
      if (e instanceof CardStatusError) {
        const why = e.sw === SW.NOT_ENOUGH_MEMORY ? 'the card is full' : e.sw === SW.TICKET_REPLAYED ? 'this ticket was used and deleted before' : e.swName;
        console.log(`${t.tid} not loaded: ${why} (${e.command} ${e.sw.toString(16).toUpperCase()})`);
        process.exitCode = 2;
        continue;
      }
      throw e;
    }
  }
  const space = await kiosk.capacity();
  console.log(`card ${hex(card.serial)} holds ${space.tickets} ticket(s); ${space.freeBytes} of ${space.totalBytes} bytes free`);
} finally {
  await session.close();
}

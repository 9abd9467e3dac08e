// An issuing kiosk (出票終端): a passenger presents a card and the kiosk loads the tickets the back office sealed
// to that card, reports each one loaded, then shows the space left. It holds no ticket secret (a sealed ticket is
// usable only on the card it was sealed to), only its terminal credential for the back office's API.
//
// A locked card (protocol version 2) tells its serial only to an issuer the operator's authority vouches for: the
// kiosk asks the back office to sign the card's challenge (EXTERNAL AUTHENTICATE), which it does for issuing
// terminals only (a gate's credential is refused: 403).
//
//   KIOSK_PASSPHRASE=... node issuing-kiosk.js <backoffice-url> <credential.json> --reader <name>   a PC/SC reader
//   KIOSK_PASSPHRASE=... node issuing-kiosk.js <backoffice-url> <credential.json> --card <image>    an emulated card
//
// The credential file comes from `eticket terminal add kiosk-1 --kind issuing --out kiosk-1.json`.
// Exit status 0 when every ticket for the card is on it, 2 when the card refused one (e.g. full), 3 when the back
// office refused or could not be reached.

import { parseArgs } from 'node:util';
import {
  BackofficeClient,
  BackofficeHttpError,
  BackofficeUnreachableError,
  CardSession,
  CardStatusError,
  hex,
  IssuingTerminal,
  isDuplicate,
  SW,
  type Transport,
} from 'eticket';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { reader: { type: 'string' }, card: { type: 'string' } } });
const [url, credentialFile] = positionals;
const passphrase = process.env.KIOSK_PASSPHRASE;
if (!url || !credentialFile || !passphrase || Boolean(values.reader) === Boolean(values.card)) {
  console.error('usage: KIOSK_PASSPHRASE=... issuing-kiosk <backoffice-url> <credential.json> (--reader <name> | --card <image>)');
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

const office = BackofficeClient.fromCredential(url, credentialFile, passphrase);
const session = new CardSession(await openTransport());
try {
  // The authoriser: the back office signs the card's challenge; the card then tells its serial and certificates.
  const kiosk = new IssuingTerminal(session, { authorize: (challenge) => office.authorizeIssuer(challenge) });
  const card = await kiosk.open();
  if (card.lifecycle !== 'OPERATIONAL') throw new Error(`card ${card.serialHex} is not personalised: it cannot hold tickets yet`);
  const tickets = await office.pending(card.serial);
  console.log(`card ${card.serialHex}: ${tickets.length} ticket(s) waiting`);
  for (const t of tickets) {
    try {
      const loaded = await kiosk.load(t.sealed);
      await office.loaded(t.tid, card.serial, loaded.sequenceNumber);
      console.log(`loaded ${loaded.tid} (slot ${loaded.sequenceNumber})`);
    } catch (e) {
      // Loading twice is harmless: the card refuses the duplicate and the ticket is there; the back office learns it.
      if (isDuplicate(e)) {
        await office.loaded(t.tid, card.serial);
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
} catch (e) {
  // The back office's answer, in one line: a credential of the wrong kind (403), revoked, or no back office at all.
  if (!(e instanceof BackofficeHttpError || e instanceof BackofficeUnreachableError)) throw e;
  console.log(`back office: ${e.message}`);
  process.exitCode = 3;
} finally {
  await session.close();
}

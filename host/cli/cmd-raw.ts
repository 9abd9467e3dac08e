// Low-level commands for integrators and QA: `eticket readers` (PC/SC), `eticket apdu <hex>...` (raw
// commands, names decoded) and `eticket trace <dump>` (an apdu4j-style dump, e.g. from --record, decoded).

import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { swHex } from '../../sdk/apdu.js';
import { hex } from '../../sdk/bytes.js';
import { commandForIns, describeSw, SW } from '../../sdk/spec.js';
import { addCardOptions, emit, EXIT, ExitStatus, globals, UsageError, withCard, type CardOptions } from './context.js';

/** Spec name of a command APDU, or its CLA/INS when the spec does not define it. */
export function commandName(apdu: Uint8Array): string {
  if (apdu.length < 2) return '(short)';
  if (apdu[0] === 0x00 && apdu[1] === 0xc0) return 'GET RESPONSE';
  return commandForIns(apdu[0], apdu[1])?.name ?? `CLA ${hex(apdu.subarray(0, 1))} INS ${hex(apdu.subarray(1, 2))}`;
}

function swOf(response: Uint8Array): number | undefined {
  return response.length >= 2 ? (response[response.length - 2] << 8) | response[response.length - 1] : undefined;
}

const okSw = (sw: number | undefined) => sw !== undefined && (sw === SW.SUCCESS || (sw & 0xff00) === SW.BYTES_REMAINING);

export function registerRaw(program: Command): void {
  program
    .command('readers')
    .description('list PC/SC readers and whether a card is in them')
    .addHelpText('after', '\nExit status 3 when pcscd or the pcsclite binding is not available (the message says how to install it).\n\nExample:\n  $ eticket readers --json')
    .action(async (_opts: unknown, cmd: Command) => {
      const { listReaders } = await import('../transport/pcsc.js');
      const readers = await listReaders();
      emit(
        cmd,
        { readers: readers.map((r) => ({ name: r.name, cardPresent: r.cardPresent, atr: r.atr && hex(r.atr) })) },
        readers.length ? readers.map((r) => `${r.name}${r.cardPresent ? `  card ${r.atr ? hex(r.atr) : ''}` : '  (empty)'}`) : 'no PC/SC readers',
      );
    });

  addCardOptions(
    program
      .command('apdu <hex...>')
      .description('send raw command APDUs (hex) and print each with its command and status word decoded by name')
      .option('--select', 'SELECT the e-ticket application first')
      .addHelpText('after', '\nGET RESPONSE is sent for 61XX. Exit status 2 when any status word is not 9000.\n\nExample:\n  $ eticket apdu --card card.img 00A4040009F0455449434B455401 80CA00DA00'),
  ).action(async (apdus: string[], opts: CardOptions & { select?: boolean }, cmd: Command) => {
    const commands = apdus.map((a) => {
      const clean = a.replace(/[\s:]/g, '');
      if (!/^([0-9a-fA-F]{2}){4,}$/.test(clean)) throw new UsageError(`"${a}" is not an APDU: give at least 4 bytes of hex (CLA INS P1 P2 ...)`);
      return Uint8Array.from(Buffer.from(clean, 'hex'));
    });
    let refused = false;
    await withCard(cmd, opts, async ({ session }) => {
      if (opts.select) await session.select();
      for (const apdu of commands) {
        const r = await session.raw(apdu);
        const d = describeSw(r.sw);
        if (!okSw(r.sw)) refused = true;
        emit(
          cmd,
          { command: commandName(apdu), apdu: hex(apdu), data: hex(r.data), sw: swHex(r.sw), swName: d.name, description: d.description },
          [`> ${hex(apdu)}  ${commandName(apdu)}`, `< ${r.data.length ? hex(r.data) + ' ' : ''}${swHex(r.sw)}  ${d.name} (${d.description})`],
        );
      }
    });
    if (refused) throw new ExitStatus(EXIT.CARD_REFUSED);
  });

  program
    .command('trace <dump>')
    .description('pretty-print a recorded session (apdu4j-style dump, e.g. written by --record)')
    .addHelpText('after', '\nExample:\n  $ eticket --record session.apdu tickets --card card.img\n  $ eticket trace session.apdu')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      if (!existsSync(file)) throw new UsageError(`dump ${file} does not exist`);
      const { parseDump } = await import('../transport/replay.js');
      const dump = parseDump(readFileSync(file, 'utf8'));
      const json = globals(cmd).json;
      if (json) console.log(JSON.stringify({ header: true, reader: dump.reader, atr: dump.atr && hex(dump.atr), protocol: dump.protocol, exchanges: dump.exchanges.length }));
      else console.log(`${dump.reader ?? 'unknown reader'}, ATR ${dump.atr ? hex(dump.atr) : '-'}, ${dump.protocol ?? ''}; ${dump.exchanges.length} exchange(s)`);
      for (const e of dump.entries) {
        if (e.kind === 'reset') {
          emit(cmd, { reset: true, atr: hex(e.atr), line: e.line }, `-- reset, ATR ${hex(e.atr)}`);
          continue;
        }
        const sw = swOf(e.response);
        const d = sw === undefined ? undefined : describeSw(sw);
        const data = e.response.subarray(0, Math.max(0, e.response.length - 2));
        emit(
          cmd,
          { index: e.index, line: e.line, command: commandName(e.command), apdu: hex(e.command), data: hex(data), sw: sw === undefined ? undefined : swHex(sw), swName: d?.name, ms: e.ms },
          [
            `#${e.index} ${commandName(e.command)}${e.ms !== undefined ? ` (${e.ms} ms)` : ''}`,
            `  > ${hex(e.command)}`,
            `  < ${data.length ? hex(data) + ' ' : ''}${sw === undefined ? '(no status word)' : `${swHex(sw)} ${d!.name}`}`,
          ],
        );
      }
    });
}

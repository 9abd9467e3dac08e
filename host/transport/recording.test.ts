// The recording decorator: what it writes is an apdu4j-style dump that parseDump reads back and replays.

import { describe, expect, it } from 'vitest';
import { CardRemovedError } from '../../sdk/errors.ts';
import { dumpFileWriter, RecordingTransport } from './recording.ts';
import { parseDump, ReplayTransport } from './replay.ts';
import type { Transport } from './transport.ts';

const h = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();

/** A table-driven card: command hex → response hex; a counter shows whether reset reached it. */
class TableTransport implements Transport {
  readonly info = { reader: 'Table Reader', extendedLength: false, maxResponse: 258 };
  readonly protocol = 'T=0';
  resets = 0;
  constructor(private readonly table: Record<string, string>) {}
  async connect(): Promise<Uint8Array> {
    return h('3B0102');
  }
  async transmit(c: Uint8Array): Promise<Uint8Array> {
    const r = this.table[hex(c)];
    if (r === undefined) throw new CardRemovedError('card gone', this.info.reader);
    return h(r);
  }
  async reset(): Promise<Uint8Array> {
    this.resets++;
    return h('3B0103');
  }
  async disconnect(): Promise<void> {}
}

describe('RecordingTransport', () => {
  it('writes header, commands, timings and responses that replay identically', async () => {
    const inner = new TableTransport({ '00A4040002AABB': '9000', '80100000': '01029000' });
    let clock = 0;
    const streamed: string[] = [];
    const rec = new RecordingTransport(inner, { now: () => (clock += 1.5), write: (c) => streamed.push(c) });
    expect(hex(await rec.connect())).toBe('3B0102');
    await rec.transmit(h('00A4040002AABB'));
    await rec.transmit(h('80100000'));
    await rec.reset();
    await rec.transmit(h('80100000'));
    await rec.disconnect();

    expect(streamed.join('')).toBe(rec.text);
    const body = rec.text.split('\n').slice(1).join('\n'); // line 1 carries the date
    expect(body).toBe(
      [
        '# Using Table Reader',
        '# ATR: 3B0102',
        '# PROTOCOL: T=0',
        '#',
        '00A4040002AABB',
        '# 1.5ms',
        '9000',
        '80100000',
        '# 1.5ms',
        '01029000',
        '# RESET',
        '# ATR: 3B0103',
        '80100000',
        '# 1.5ms',
        '01029000',
        '',
      ].join('\n'),
    );

    const dump = parseDump(rec.text);
    expect(dump.exchanges.map((e) => e.ms)).toEqual([1.5, 1.5, 1.5]);
    const replay = new ReplayTransport(dump);
    expect(hex(await replay.connect())).toBe('3B0102');
    expect(hex(await replay.transmit(h('00A4040002AABB')))).toBe('9000');
    expect(hex(await replay.transmit(h('80100000')))).toBe('01029000');
    expect(hex(await replay.reset())).toBe('3B0103');
    expect(hex(await replay.transmit(h('80100000')))).toBe('01029000');
    replay.assertComplete();
  });

  it('records a failed exchange as comments only and rethrows the typed error', async () => {
    const rec = new RecordingTransport(new TableTransport({}), { timing: false, protocol: 'T=1' });
    await rec.connect();
    await expect(rec.transmit(h('00B0000000'))).rejects.toBeInstanceOf(CardRemovedError);
    expect(rec.text).toContain('# 00B0000000\n# ERROR: CardRemovedError: card gone\n');
    expect(parseDump(rec.text).exchanges).toHaveLength(0);
  });

  it('passes info through', () => {
    expect(new RecordingTransport(new TableTransport({})).info.reader).toBe('Table Reader');
  });

  it('blanks the data of every PUT KEY (short, extended, chained, malformed), keeping lengths, and replay still matches', async () => {
    const key = 'AB'.repeat(36);
    const shortApdu = `80D8050024${key}`;
    const extended = `80D8030000${'0024'}${key}0000`; // extended Lc 0024 and Le 0000
    const chained = `90D8010010${'CD'.repeat(16)}`;
    const malformed = `80D80500FF${'EF'.repeat(3)}`; // Lc says 255, 3 bytes follow
    const table = Object.fromEntries([shortApdu, extended, chained, malformed, '80CA00D500'].map((c) => [c, '9000']));
    const rec = new RecordingTransport(new TableTransport(table), { timing: false });
    await rec.connect();
    for (const c of [shortApdu, extended, chained, malformed, '80CA00D500']) await rec.transmit(h(c));
    await expect(rec.transmit(h(`80D8040004${'77'.repeat(4)}`))).rejects.toBeInstanceOf(CardRemovedError);
    const text = rec.text;
    for (const secret of ['ABAB', 'CD'.repeat(16), 'EF'.repeat(3), '77'.repeat(4)]) expect(text).not.toContain(secret);
    expect(text).toContain(`# REDACTED 36 bytes at offset 5: PUT KEY data (key material) replaced by 00\n80D8050024${'00'.repeat(36)}\n9000\n`);
    expect(text).toContain(`# REDACTED 36 bytes at offset 7: PUT KEY data (key material) replaced by 00\n80D80300000024${'00'.repeat(36)}0000\n`);
    expect(text).toContain(`# REDACTED 16 bytes at offset 5: PUT KEY data (key material) replaced by 00\n90D8010010${'00'.repeat(16)}\n`);
    expect(text).toContain(`# REDACTED 4 bytes at offset 4: PUT KEY data (key material) replaced by 00\n80D80500${'00'.repeat(4)}\n`);
    expect(text).toContain(`# REDACTED 4 bytes at offset 5: PUT KEY data (key material) replaced by 00\n# 80D8040004${'00'.repeat(4)}\n# ERROR: CardRemovedError`);
    expect(text).toContain('80CA00D500\n9000\n'); // other commands untouched

    // Replay: the recorded PUT KEY matches the real one (whatever the key), not another command.
    const replay = new ReplayTransport(text);
    await replay.connect();
    expect(hex(await replay.transmit(h(shortApdu)))).toBe('9000');
    expect(hex(await replay.transmit(h(`80D80300000024${'11'.repeat(36)}0000`)))).toBe('9000');
    await expect(replay.transmit(h(`90D8020010${'CD'.repeat(16)}`))).rejects.toThrow(/expected command 90D8010010/);
  });

  it('writes dump files 0600, tightening an existing file before writing', async () => {
    const { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'eticket-dump-'));
    try {
      const file = join(dir, 'session.apdu');
      writeFileSync(file, 'an older dump');
      chmodSync(file, 0o644);
      const write = dumpFileWriter(file);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, 'utf8')).toBe('');
      write('# one\n');
      write('# two\n');
      expect(readFileSync(file, 'utf8')).toBe('# one\n# two\n');
      expect(statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

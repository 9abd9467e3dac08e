// The recording decorator: what it writes is an apdu4j-style dump that parseDump reads back and replays.

import { describe, expect, it } from 'vitest';
import { CardRemovedError } from '../../sdk/errors.ts';
import { RecordingTransport } from './recording.ts';
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
});

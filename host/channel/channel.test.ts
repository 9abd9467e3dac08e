// Each session decorator alone, as a table of hex commands and responses replayed by ReplayTransport: a reader
// of the test sees the protocol. A command the decorator should not send makes the replay fail by itself.

import { describe, expect, it } from 'vitest';
import { fromHex, hex } from '../../sdk/bytes.js';
import { CardMisbehavedError } from '../../sdk/errors.js';
import { LIMITS } from '../../sdk/spec.js';
import { ReplayTransport } from '../transport/replay.js';
import { bounded } from './bounds.js';
import { chaining } from './chaining.js';
import { newCommandContext, wire, type Transceive } from './channel.js';
import { collectingResponses } from './get-response.js';
import { tracing, type TraceEntry } from './tracing.js';
import { retryingWrongLe } from './wrong-le.js';

/** A replay of `lines` (command, response, command, response ...) and the transceive under test over it. */
async function over(lines: string[], decorate: (t: Transceive) => Transceive): Promise<{ send(apdu: string, command?: string): Promise<string>; replay: ReplayTransport }> {
  const replay = new ReplayTransport(lines.join('\n'));
  await replay.connect();
  const t = decorate(wire(replay));
  return { replay, send: async (apdu, command = 'TEST') => hex(await t(fromHex(apdu), newCommandContext(command, 60_000))) };
}

describe('chaining (short-length reader)', () => {
  const data = 'AB'.repeat(300);
  it('sends 300 bytes as a chained part of 255 and a last part of 45 with Le', async () => {
    const { send, replay } = await over([`90500000FF${'AB'.repeat(255)}`, '9000', `805000002D${'AB'.repeat(45)}00`, 'C80200019000'], (t) => chaining(t, { extended: false }));
    expect(await send(`8050000000012C${data}0100`)).toBe('C80200019000');
    replay.assertComplete();
  });

  it('stops at a part the card refuses and returns its answer', async () => {
    const { send, replay } = await over([`90500000FF${'AB'.repeat(255)}`, '6884'], (t) => chaining(t, { extended: false }));
    expect(await send(`8050000000012C${data}0100`)).toBe('6884');
    replay.assertComplete();
  });

  it('leaves short commands alone, and everything alone on an extended reader', async () => {
    const short = await over(['80CA00D800', '9000'], (t) => chaining(t, { extended: false }));
    expect(await short.send('80CA00D800')).toBe('9000');
    const ext = await over([`8050000000012C${data}0000`, '9000'], (t) => chaining(t, { extended: true }));
    expect(await ext.send(`8050000000012C${data}0000`)).toBe('9000');
  });
});

describe('6CXX retry', () => {
  it('resends the command once with the exact Le', async () => {
    const { send, replay } = await over(['0084000000', '6C08', '0084000008', '01020304050607089000'], retryingWrongLe);
    expect(await send('0084000000')).toBe('01020304050607089000');
    replay.assertComplete();
  });

  it('gives a second 6CXX back instead of looping', async () => {
    const { send, replay } = await over(['0084000000', '6C08', '0084000008', '6C04'], retryingWrongLe);
    expect(await send('0084000000')).toBe('6C04');
    replay.assertComplete();
  });
});

describe('GET RESPONSE', () => {
  it('fetches what 61XX announces and joins the parts', async () => {
    const { send, replay } = await over(['80CA00D500', 'AABB6102', '00C0000002', 'CCDD9000'], (t) => collectingResponses(t, { extended: false }));
    expect(await send('80CA00D500')).toBe('AABBCCDD9000');
    replay.assertComplete();
  });

  it('asks for 256 on 6100, and for 65536 (extended Le) on an extended reader', async () => {
    const short = await over(['80CA00D500', '6100', '00C0000000', 'EE9000'], (t) => collectingResponses(t, { extended: false }));
    expect(await short.send('80CA00D500')).toBe('EE9000');
    const ext = await over(['80CA00D500', '6100', '00C00000000000', 'EE9000'], (t) => collectingResponses(t, { extended: true }));
    expect(await ext.send('80CA00D500')).toBe('EE9000');
  });

  it('returns a final status word other than 9000 with the data before it', async () => {
    const { send } = await over(['80CA00D500', 'AA6101', '00C0000001', '6985'], (t) => collectingResponses(t, { extended: false }));
    expect(await send('80CA00D500')).toBe('AA6985');
  });
});

describe('bounds', () => {
  it('refuses the GET RESPONSE round past the limit, before sending it', async () => {
    const { send, replay } = await over(['80CA00D500', '6100', '00C0000000', '6100', '00C0000000', '6100'], (t) => collectingResponses(bounded(t, { maxGetResponseRounds: 2 }), { extended: false }));
    const e = await send('80CA00D500', 'GET DATA').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CardMisbehavedError);
    expect(e).toMatchObject({ command: 'GET DATA', misbehaviour: 'getResponseRounds' });
    expect((e as Error).message).toMatch(/GET DATA: the card misbehaved \(getResponseRounds\): more than 2 GET RESPONSE rounds/);
    replay.assertComplete();
  });

  it('refuses more response data than the limit, over all rounds', async () => {
    const { send } = await over(['80CA00D500', 'AABB6102', '00C0000002', 'CCDD9000'], (t) => collectingResponses(bounded(t, { maxResponseData: 3 }), { extended: false }));
    await expect(send('80CA00D500')).rejects.toMatchObject({ name: 'CardMisbehavedError', misbehaviour: 'responseBytes' });
  });

  it('refuses a response without a status word', async () => {
    const { send } = await over(['80CA00D500', '90'], (t) => bounded(t));
    await expect(send('80CA00D500')).rejects.toMatchObject({ name: 'CardMisbehavedError', misbehaviour: 'responseApdu' });
  });

  it('starts no exchange after the deadline', async () => {
    const replay = new ReplayTransport('');
    await replay.connect();
    const t = bounded(wire(replay));
    const e = await t(fromHex('80CA00D500'), newCommandContext('GET DATA', -1)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CardMisbehavedError);
    expect(e).toMatchObject({ misbehaviour: 'deadline' });
  });

  it('takes its defaults from the spec: maxResponseData bytes fit in maxGetResponseRounds short rounds', () => {
    expect(LIMITS.maxGetResponseRounds * LIMITS.shortResponseChunk).toBeGreaterThanOrEqual(LIMITS.maxResponseData);
  });
});

describe('tracing', () => {
  it('names each exchange: the command, GET RESPONSE for the fetches, the status word by its spec name', async () => {
    const entries: TraceEntry[] = [];
    const { send } = await over(['80CA00D500', 'AA6101', '00C0000001', 'BB9000'], (t) => collectingResponses(tracing(t, (e) => entries.push(e)), { extended: false }));
    await send('80CA00D500', 'GET DATA');
    expect(entries.map((e) => [e.command, hex(e.apdu), hex(e.response), e.swName])).toEqual([
      ['GET DATA', '80CA00D500', 'AA6101', 'BYTES_REMAINING'],
      ['GET RESPONSE', '00C0000001', 'BB9000', 'SUCCESS'],
    ]);
  });
});

// The V8 tuning bin/eticket.mjs applies to `eticket issue` before the CLI's modules load: which commands get it, and
// what ETICKET_INTERRUPT_BUDGET does. V8's flags cannot be read back, so node:v8's setter is observed.

import { beforeEach, describe, expect, it, vi } from 'vitest';

const setFlags = vi.fn<(flags: string) => void>();
vi.mock('node:v8', async (importOriginal) => ({ ...(await importOriginal<typeof import('node:v8')>()), setFlagsFromString: (f: string) => setFlags(f) }));

const { SHORT_COMMAND_INTERRUPT_BUDGET, tuneJitForShortCommand } = await import('./office-prestart.js');

describe('tuneJitForShortCommand', () => {
  beforeEach(() => setFlags.mockClear());

  it('holds back the optimising compiler for `issue`, global options before it included', () => {
    tuneJitForShortCommand(['--json', '--dir', 'w', 'issue', '--from', 'b.csv'], {});
    expect(setFlags.mock.calls).toEqual([[`--interrupt-budget=${SHORT_COMMAND_INTERRUPT_BUDGET}`]]);
  });

  it('leaves every other command (and a bare `eticket`) with V8 as it is', () => {
    for (const argv of [['serve'], ['gate', 'run'], ['--json', 'card', 'info'], [], ['--dir', 'issue', 'card']]) tuneJitForShortCommand(argv, {});
    expect(setFlags).not.toHaveBeenCalled();
  });

  it('takes another budget from ETICKET_INTERRUPT_BUDGET, and 0 or a non-number as V8 left alone', () => {
    tuneJitForShortCommand(['issue'], { ETICKET_INTERRUPT_BUDGET: '5000000' });
    expect(setFlags.mock.calls).toEqual([['--interrupt-budget=5000000']]);
    setFlags.mockClear();
    for (const v of ['0', '-3', 'fast', '1e400', '2.5']) tuneJitForShortCommand(['issue'], { ETICKET_INTERRUPT_BUDGET: v });
    expect(setFlags).not.toHaveBeenCalled();
  });
});

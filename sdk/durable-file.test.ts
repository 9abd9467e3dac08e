// The one write-then-rename helper: the file is replaced whole, with the asked mode, and a failed write
// leaves neither a half-written target nor a temporary file behind.

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileDurably } from './durable-file.js';

describe('writeFileDurably', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'eticket-durable-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates, then replaces a file whole, and leaves no temporary file', () => {
    const f = join(dir, 'state.json');
    writeFileDurably(f, '{"v":1}');
    writeFileDurably(f, Uint8Array.of(0x7b, 0x7d));
    expect(readFileSync(f, 'utf8')).toBe('{}');
    expect(readdirSync(dir)).toEqual(['state.json']);
  });

  it('gives the new file the mode asked for (private material: 0600)', () => {
    const f = join(dir, 'key.secret.json');
    writeFileDurably(f, 'secret', { mode: 0o600 });
    expect(statSync(f).mode & 0o777).toBe(0o600);
  });

  it('a rename that fails leaves the target as it was and removes its temporary file', () => {
    const target = join(dir, 'taken');
    mkdirSync(target);
    writeFileSync(join(target, 'inside'), 'x');
    expect(() => writeFileDurably(target, 'new')).toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(readdirSync(dir)).toEqual(['taken']);
    expect(readFileSync(join(target, 'inside'), 'utf8')).toBe('x');
  });

  it('a directory that does not exist is an error, and nothing is created', () => {
    expect(() => writeFileDurably(join(dir, 'no', 'such.json'), '{}')).toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

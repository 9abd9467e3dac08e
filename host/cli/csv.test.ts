// RFC 4180 parsing for batch files: the cases of the RFC (quotes, doubled quotes, CRLF, line breaks in
// quotes) and the malformed records a batch must report by line and skip.

import { describe, expect, it } from 'vitest';
import { parseCsv } from './csv.js';

describe('parseCsv', () => {
  it('reads plain, quoted and empty fields with CRLF or LF', () => {
    expect(parseCsv('a,b,c\r\n1,"x,y",\n"say ""hi""",,z')).toEqual([
      { line: 1, fields: ['a', 'b', 'c'] },
      { line: 2, fields: ['1', 'x,y', ''] },
      { line: 3, fields: ['say "hi"', '', 'z'] },
    ]);
  });

  it('keeps line breaks inside quotes and counts lines from where a record starts', () => {
    expect(parseCsv('h\n"one\r\ntwo"\nnext\n')).toEqual([
      { line: 1, fields: ['h'] },
      { line: 2, fields: ['one\r\ntwo'] },
      { line: 4, fields: ['next'] },
    ]);
  });

  it('skips blank lines and a BOM; a trailing comma is an empty last field', () => {
    expect(parseCsv('\ufeffa,\n\n\r\nb')).toEqual([
      { line: 1, fields: ['a', ''] },
      { line: 4, fields: ['b'] },
    ]);
  });

  it('reports a malformed record by line and resumes at the next line', () => {
    expect(parseCsv('a,b"c\n"x"y,1\nok,2\n"never closed\n')).toEqual([
      { line: 1, error: expect.stringMatching(/quote inside unquoted field 2/) },
      { line: 2, error: expect.stringMatching(/text after a closing quote in field 1/) },
      { line: 3, fields: ['ok', '2'] },
      { line: 4, error: expect.stringMatching(/never closed/) },
    ]);
  });
});

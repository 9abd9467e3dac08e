// RFC 4180 CSV: quoted fields, doubled quotes, CRLF or LF, line breaks inside quotes. A malformed record
// is returned as an error with its line number and parsing resumes at the next line, so a batch goes on.

export type CsvRecord = { line: number; fields: string[] } | { line: number; error: string };

/** Parse CSV text into records; blank lines are skipped. `line` is the 1-based line where a record starts. */
export function parseCsv(text: string): CsvRecord[] {
  const out: CsvRecord[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // spreadsheet exports often start with a BOM
  let line = 1;
  const n = text.length;

  while (i < n) {
    const start = line;
    const fields: string[] = [];
    let field = '';
    let error: string | undefined;
    let blank = true;
    // One record: fields until an unquoted line break or the end of the text.
    for (;;) {
      if (i < n && text[i] === '"') {
        blank = false;
        i++;
        let closed = false;
        while (i < n) {
          const c = text[i];
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            closed = true;
            break;
          }
          if (c === '\n') line++;
          field += c;
          i++;
        }
        if (!closed) {
          error = `quoted field opened on line ${start} is never closed`;
          break;
        }
        if (i < n && text[i] !== ',' && text[i] !== '\r' && text[i] !== '\n') {
          error = `text after a closing quote in field ${fields.length + 1}`;
          break;
        }
      } else {
        while (i < n && text[i] !== ',' && text[i] !== '\n' && !(text[i] === '\r' && text[i + 1] === '\n')) {
          if (text[i] === '"') {
            error = `a quote inside unquoted field ${fields.length + 1} (quote the whole field and double the quote)`;
            break;
          }
          field += text[i];
          blank = false;
          i++;
        }
        if (error) break;
      }
      fields.push(field);
      field = '';
      if (i < n && text[i] === ',') {
        blank = false;
        i++;
        continue;
      }
      break;
    }
    if (error) {
      // Resume after the physical line where the error was found.
      while (i < n && text[i] !== '\n') i++;
      i++;
      line++;
      out.push({ line: start, error });
      continue;
    }
    if (text[i] === '\r') i++;
    if (text[i] === '\n') i++;
    line++;
    if (!blank) out.push({ line: start, fields });
  }
  return out;
}

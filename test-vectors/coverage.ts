// Which (command, status word) pairs of apdu-spec, common status words and negative classes the vector
// files exercise, read from the spec at run time: a command or status word added to the spec needs vectors.

import { protocol } from '../sdk/spec.js';
import type { Step, VectorFile } from './format.js';

/**
 * Status words no conforming card can be driven to answer through APDUs. Keep this short: everything
 * else needs a vector.
 */
export const UNREACHABLE_SW: Record<string, string> = {
  '6F00': 'UNKNOWN_ERROR is an internal error, "never expected: report it"; card/fuzz.test.ts fails if any input produces it.',
  '6581': 'MEMORY_FAILURE needs the NVM write itself to fail (I/O error, worn EEPROM); no command can cause that. card/powercut.test.ts covers the store.',
};

/** Negative classes the issue names; each must be the flag of at least one vector. */
export const REQUIRED_CLASSES = [
  'MalformedLength',
  'WrongCla',
  'WrongIns',
  'WrongP1P2',
  'TruncatedTlv',
  'MalformedTlv',
  'TamperedMac',
  'PaddingOracle',
  'Replay',
  'StaleCounter',
  'WrongChallenge',
  'TamperedSignature',
  'CrossCommand',
  'OtherCard',
  'UnknownAuthority',
  'UnknownTerminal',
  'UnauthorisedTerminal',
  'CardFull',
  'Chaining',
  'ChainingAbuse',
  'ExtendedLength',
  'ExtendedLengthAbuse',
  'NotSelected',
  'Lifecycle',
  'ResponseChaining',
  'WrongLe',
] as const;

export interface Coverage {
  /** Every (command, own status word) pair of the spec. */
  pairs: { command: string; sw: string; covered: boolean; unreachable?: string }[];
  /** The common status words (any command). */
  common: { sw: string; covered: boolean; unreachable?: string }[];
  classes: { flag: string; covered: boolean }[];
  missing: string[];
}

/** The spec's form of a status word: 61XX / 6CXX patterns for their families. */
function normalise(sw: string): string {
  const u = sw.toUpperCase();
  return /^6[1C]/.test(u) ? `${u.slice(0, 2)}XX` : u;
}

function stepCommand(step: Step): string | null {
  switch (step.kind) {
    case 'apdu':
      return step.name;
    case 'load':
      return 'LOAD';
    case 'signed-command':
      return step.name;
    case 'certify':
      return 'PUT DATA';
    default:
      return null;
  }
}

export function coverage(files: VectorFile[]): Coverage {
  const seenPairs = new Set<string>();
  const seenSw = new Set<string>();
  const seenFlags = new Set<string>();
  for (const f of files) {
    for (const g of f.testGroups) {
      for (const t of g.tests) {
        t.flags.forEach((x) => seenFlags.add(x));
        for (const s of t.steps) {
          if (!('expect' in s)) continue;
          const name = stepCommand(s);
          for (const sw of s.expect.sw) {
            seenSw.add(normalise(sw));
            if (name) seenPairs.add(`${name}:${normalise(sw)}`);
          }
        }
      }
    }
  }
  const pairs = protocol.commands.flatMap((c) =>
    c.statusWords.map((sw) => ({ command: c.name, sw, covered: seenPairs.has(`${c.name}:${sw}`), ...(UNREACHABLE_SW[sw] ? { unreachable: UNREACHABLE_SW[sw] } : {}) })),
  );
  const common = protocol.commonStatusWords.map((sw) => ({ sw, covered: seenSw.has(sw), ...(UNREACHABLE_SW[sw] ? { unreachable: UNREACHABLE_SW[sw] } : {}) }));
  const classes = REQUIRED_CLASSES.map((flag) => ({ flag, covered: seenFlags.has(flag) }));
  const missing = [
    ...pairs.filter((p) => !p.covered && !p.unreachable).map((p) => `${p.command} ${p.sw}`),
    ...common.filter((c) => !c.covered && !c.unreachable).map((c) => `any command ${c.sw}`),
    ...classes.filter((c) => !c.covered).map((c) => `negative class ${c.flag}`),
  ];
  return { pairs, common, classes, missing };
}

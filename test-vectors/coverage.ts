// Which (command, status word) pairs of apdu-spec, per suite, common status words, negative classes and
// gate-mode cases the vector files exercise, read from the spec at run time: new spec entries need vectors.

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

/** Pairs one suite's cards cannot answer, with the reason; every other pair needs a vector in each suite. */
export const UNREACHABLE_IN_SUITE: Record<string, Record<string, string>> = {
  sm9: {
    'GENERATE KEY 9000': 'SM9 card keys come from the KGC (PUT KEY P1=03/04): an SM9 card refuses GENERATE KEY with 6985.',
    'GENERATE KEY 6A84': 'the SM9 card refuses GENERATE KEY (6985) before it would look at its memory.',
  },
};

/** Per gate mode, WRITE USAGE and DELETE must each have a success and a replay (6984) vector. */
export const GATE_MODES = ['pki', 'sym'] as const;

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
  'SessionMac',
  'SessionLifetime',
  'CrossMode',
  'IssuerAuth',
  'RELAY',
  'CLONE',
  'SHORT_LE',
  'KEYLESS',
  'ROTATION',
  'LIMITS',
] as const;

/** Which (command, status word) pairs, common status words and negative classes the vectors cover, and what is missing. */
export interface Coverage {
  /** Every (command, own status word) pair of the spec. */
  pairs: { command: string; sw: string; covered: boolean; unreachable?: string }[];
  /** The common status words (any command). */
  common: { sw: string; covered: boolean; unreachable?: string }[];
  classes: { flag: string; covered: boolean }[];
  /** The same pairs for each suite with vector files (LOAD success and refusals among them). */
  suites: { suite: string; pairs: { command: string; sw: string; covered: boolean; unreachable?: string }[] }[];
  /** WRITE USAGE / DELETE success and replay in each gate mode. */
  modes: { mode: string; command: string; case: 'success' | 'replay'; covered: boolean }[];
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
    case 'install':
      return step.what === 'identity' ? 'PUT DATA' : 'PUT KEY';
    case 'verify':
      return 'VERIFY';
    case 'maced-command':
      return step.name;
    case 'authenticate':
      return 'EXTERNAL AUTHENTICATE';
    case 'get-response':
      return 'GET RESPONSE';
    default:
      return null;
  }
}

/** Gate mode of a WRITE USAGE / DELETE step: templates say it, a static APDU by its P1 (01 = sym). */
function stepMode(step: Step): string | null {
  if (step.kind === 'signed-command') return 'pki';
  if (step.kind === 'maced-command') return (step.mutation?.p1 ?? 1) === 1 ? 'sym' : null;
  if (step.kind === 'apdu' && (step.name === 'WRITE USAGE' || step.name === 'DELETE')) return step.command.slice(4, 6) === '01' ? 'sym' : 'pki';
  return null;
}

/** The coverage of apdu-spec by these vector files. */
export function coverage(files: VectorFile[]): Coverage {
  const seenPairs = new Set<string>();
  const seenSw = new Set<string>();
  const seenFlags = new Set<string>();
  const seenBySuite = new Map<string, Set<string>>();
  const seenModes = new Set<string>();
  for (const f of files) {
    const suitePairs = seenBySuite.get(f.suite) ?? new Set<string>();
    seenBySuite.set(f.suite, suitePairs);
    for (const g of f.testGroups) {
      for (const t of g.tests) {
        t.flags.forEach((x) => seenFlags.add(x));
        for (const s of t.steps) {
          if (!('expect' in s)) continue;
          const name = stepCommand(s);
          const mode = stepMode(s);
          for (const sw of s.expect.sw) {
            seenSw.add(normalise(sw));
            if (name) seenPairs.add(`${name}:${normalise(sw)}`);
            if (name) suitePairs.add(`${name}:${normalise(sw)}`);
            if (mode && sw === '9000') seenModes.add(`${mode}:${name}:success`);
            if (mode && sw === '6984' && t.flags.includes('Replay')) seenModes.add(`${mode}:${name}:replay`);
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
  const suites = [...seenBySuite.entries()].map(([suite, seen]) => ({
    suite,
    pairs: protocol.commands.flatMap((c) =>
      c.statusWords.map((sw) => {
        const why = UNREACHABLE_SW[sw] ?? UNREACHABLE_IN_SUITE[suite]?.[`${c.name} ${sw}`];
        return { command: c.name, sw, covered: seen.has(`${c.name}:${sw}`), ...(why ? { unreachable: why } : {}) };
      }),
    ),
  }));
  const modes = GATE_MODES.flatMap((mode) =>
    (['WRITE USAGE', 'DELETE'] as const).flatMap((command) => (['success', 'replay'] as const).map((c) => ({ mode, command, case: c, covered: seenModes.has(`${mode}:${command}:${c}`) }))),
  );
  const missing = [
    ...pairs.filter((p) => !p.covered && !p.unreachable).map((p) => `${p.command} ${p.sw}`),
    ...suites.flatMap((s) => s.pairs.filter((p) => !p.covered && !p.unreachable).map((p) => `${s.suite}: ${p.command} ${p.sw}`)),
    ...modes.filter((m) => !m.covered).map((m) => `gate mode ${m.mode}: ${m.command} ${m.case}`),
    ...common.filter((c) => !c.covered && !c.unreachable).map((c) => `any command ${c.sw}`),
    ...classes.filter((c) => !c.covered).map((c) => `negative class ${c.flag}`),
  ];
  return { pairs, common, classes, suites, modes, missing };
}

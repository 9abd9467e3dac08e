// The operator's time zone for service dates: which day a gate's clock falls on, and where a service day starts
// (default validity). `--tz`, else $ETICKET_TZ, else the working directory's `timeZone` (eticket.json), else UTC.

import type { Command } from 'commander';
import { formatServiceDate } from '../../sdk/fields.js';
import { UsageError } from './context.js';

/** The IANA name, checked ("Asia/Shanghai", "UTC", "+08:00"); UsageError naming the value otherwise. */
export function checkTimeZone(tz: string): string {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    throw new UsageError(`unknown time zone "${tz}": give an IANA name such as Asia/Shanghai, Europe/Berlin or UTC`);
  }
}

/** The zone a command works in: --tz, else $ETICKET_TZ, else the working directory's setting, else UTC. */
export function timeZoneOf(cmd: Command, configured?: string): string {
  const given = (cmd.optsWithGlobals() as { tz?: string }).tz ?? (process.env.ETICKET_TZ || undefined) ?? configured;
  return given ? checkTimeZone(given) : 'UTC';
}

// Building an Intl.DateTimeFormat costs about a millisecond: one per zone, kept (a batch asks for thousands of rows).
const formats = new Map<string, Intl.DateTimeFormat>();
function formatFor(tz: string): Intl.DateTimeFormat {
  let f = formats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
    formats.set(tz, f);
  }
  return f;
}

const parts = (epochSeconds: number, tz: string) => {
  const p = formatFor(tz).formatToParts(new Date(epochSeconds * 1000));
  const get = (t: string) => Number(p.find((x) => x.type === t)!.value);
  return { y: get('year'), m: get('month'), d: get('day'), h: get('hour'), min: get('minute'), s: get('second') };
};

/** The service date (YYYYMMDD) an instant falls on in `tz`. */
export function serviceDateAt(epochSeconds: number, tz: string): number {
  if (tz === 'UTC') {
    const t = new Date(epochSeconds * 1000);
    return t.getUTCFullYear() * 10000 + (t.getUTCMonth() + 1) * 100 + t.getUTCDate();
  }
  const { y, m, d } = parts(epochSeconds, tz);
  return y * 10000 + m * 100 + d;
}

/** The zone's offset from UTC at an instant, in seconds (east positive). */
function offsetAt(epochSeconds: number, tz: string): number {
  // UTC has no offset: no Intl formatter (its first one loads the zone data, about 40 ms of a command's start).
  if (tz === 'UTC') return 0;
  const { y, m, d, h, min, s } = parts(epochSeconds, tz);
  return (Date.UTC(y, m - 1, d, h, min, s) - epochSeconds * 1000) / 1000;
}

/** Local midnight of a service date in `tz`, epoch seconds (a day starting at a DST change starts when it starts). */
export function dayStartIn(serviceDate: number, tz: string): number {
  const utcMidnight = Date.parse(`${formatServiceDate(serviceDate)}T00:00:00Z`) / 1000;
  // Two rounds: the offset at the guess can differ from the offset at the answer across a DST change.
  let t = utcMidnight - offsetAt(utcMidnight, tz);
  t = utcMidnight - offsetAt(t, tz);
  return t;
}

/** Hours a service day's tickets stay valid from its local midnight: the day and 4 hours past midnight. */
export const SERVICE_DAY_VALIDITY_HOURS = 28;

/** Default validity for a request in the operator's zone: the fields it gives win. */
export function withLocalValidity<R extends { serviceDate: number | string; validFrom?: number; validUntil?: number }>(request: R, tz: string, parse: (d: string) => number): R {
  if (request.validFrom !== undefined && request.validUntil !== undefined) return request;
  const date = typeof request.serviceDate === 'number' ? request.serviceDate : parse(request.serviceDate);
  const start = dayStartIn(date, tz);
  return { ...request, validFrom: request.validFrom ?? start, validUntil: request.validUntil ?? start + SERVICE_DAY_VALIDITY_HOURS * 3600 };
}

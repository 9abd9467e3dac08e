// A process that starts a PC/SC agent stuck in SCardEstablishContext (pcscd socket given in argv[2] never
// answers), prints the agent's pid, then dies by SIGKILL: no exit handler of its own can run.

import { pcscAgentPids, PcscTransport } from '../../host/transport/pcsc.js';

const transport = new PcscTransport({ reader: 'any', readerListTimeoutMs: 120_000, agent: { env: { PCSCLITE_CSOCK_NAME: process.argv[2]! } } });
void transport.connect().catch(() => undefined);
for (;;) {
  const pids = pcscAgentPids();
  if (pids.length) {
    // Give the agent time to be inside SCardEstablishContext before its parent vanishes.
    await new Promise((r) => setTimeout(r, 1000));
    process.stdout.write(`${pids.join(',')}\n`, () => process.kill(process.pid, 'SIGKILL'));
    break;
  }
  await new Promise((r) => setTimeout(r, 20));
}

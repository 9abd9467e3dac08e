// Entry of a simulation worker thread: worker threads do not inherit the tsx loader the main thread was
// started with, so each registers it before loading the TypeScript worker (bench/sim-worker.ts).
import { register } from 'tsx/esm/api';

register();
await import('./sim-worker.ts');

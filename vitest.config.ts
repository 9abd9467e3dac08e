import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**', 'build/**', 'tmp-*/**'],
    // Run in this order, one after the other: the build first (the CLI, bench and package tests run dist/;
    // incremental, a few seconds when up to date; a broken build fails the run before anything else is spent),
    // then the PGlite template (one initdb, ~10 s, copied by every test and spawned CLI that needs a store).
    globalSetup: ['test/build-setup.ts', 'test/global-setup.ts'],
    // Guards against hangs, not speed limits: on a loaded 2-core machine a test may wait minutes for the vpcd
    // readers (test/helpers/pcsc-stack.ts lockVpcd) or for CPU. No test asserts on how long anything takes.
    testTimeout: 600_000,
    hookTimeout: 900_000,
  },
});

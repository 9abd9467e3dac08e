import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**', 'build/**', 'tmp-*/**'],
    // The CLI, bench and package tests run dist/: build it first (incremental, a few seconds when up to date).
    globalSetup: ['test/build-setup.ts'],
    // Guards against hangs, not speed limits: on a loaded 2-core machine a test may wait minutes for the vpcd
    // readers (test/helpers/pcsc-stack.ts lockVpcd) or for CPU. No test asserts on how long anything takes.
    testTimeout: 600_000,
    hookTimeout: 900_000,
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**', 'build/**', 'tmp-*/**'],
    // The CLI, bench and package tests run dist/: build it first (incremental, a few seconds when up to date).
    globalSetup: ['test/build-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});

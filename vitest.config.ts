import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "node",
    include: ["test/**/*.test.ts"],
    restoreMocks: true,
    testTimeout: 10_000,
    setupFiles: ["test/helpers/setup.ts"],
    coverage: {
      // On with `--coverage` (CI's main run, `npm run test:coverage`); the Redis files count only with a Redis to test against.
      provider: "v8",
      include: ["src/**/*.ts"],
      exclude: ["src/index.ts"],
      reporter: ["text-summary", "text"],
      thresholds: { lines: 95, statements: 94, functions: 95, branches: 90 },
    },
  },
});

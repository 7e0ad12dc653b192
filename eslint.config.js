// ESLint flat config. Type-aware rules run on every TypeScript file; workflows/, core/ and bench/workflows/
// get the determinism fences: no Node built-ins, and no value imports of activities/, workers/ or cli/.
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export const deterministicImportRule = [
  'error',
  {
    paths: nodeBuiltins.map((name) => ({
      name,
      message:
        'workflows/ and core/ must be deterministic and run in the workflow sandbox: no Node built-ins.',
    })),
    patterns: [
      {
        group: ['**/activities/**', '**/activities', '**/workers/**', '**/workers', '**/cli/**', '**/cli'],
        message: 'workflows/ and core/ may import only core/ and activity *types* (import type).',
        allowTypeImports: true,
      },
      {
        group: ['node:*'],
        message: 'workflows/ and core/ must be deterministic: no Node built-ins.',
      },
    ],
  },
];

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      '.tools/**',
      '.data/**',
      '.models/**',
      '.venv/**',
      '.nano/**',
      'trainer/**',
      'test/fixtures/**',
    ],
  },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // node:test's test()/describe() return promises the runner itself awaits.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['test', 'it', 'describe', 'suite', 'before', 'after'],
            },
          ],
        },
      ],
    },
  },
  {
    files: ['workflows/**/*.ts', 'core/**/*.ts', 'bench/workflows/**/*.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': deterministicImportRule },
  },
);

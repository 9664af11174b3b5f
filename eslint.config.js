import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    // The engine is pure: no node: modules, no I/O (architecture.md, style.md).
    files: ['packages/engine/src/**/*.ts'],
    ignores: ['packages/engine/src/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'path', 'os', 'crypto', 'http'],
              message: '@gatehouse/engine is pure: no node: modules',
            },
          ],
        },
      ],
      'no-restricted-globals': ['error', { name: 'process', message: 'the engine takes no environment' }],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'time is a parameter of the engine' },
      ],
    },
  },
);

// @ts-check
import eslint from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'coverage/**', 'node_modules/**', '.data/**', 'eslint.config.mjs'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  prettier,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/unbound-method': 'off',
      eqeqeq: ['error', 'always'],
      curly: ['error', 'all'],
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Read configuration through src/config only.' },
      ],
      'no-restricted-syntax': [
        'error',
        {
          // SQLite's howtocorrupt §2.2: closing any descriptor of the live database drops every lock this process
          // holds on it. The live path may only be handed to SQLite (better-sqlite3, TypeORM, the snapshot worker).
          selector:
            'CallExpression[callee.property.name=/^(open|openSync|readFile|readFileSync|writeFile|writeFileSync|appendFile|appendFileSync|copyFile|copyFileSync|cp|cpSync|createReadStream|createWriteStream|truncate|truncateSync)$/] :matches(Identifier[name=/^(dbPath|liveDbPath|livePath)$/], MemberExpression[property.name=/^(dbPath|liveDbPath|livePath)$/])',
          message: 'Never open the live database (or its -wal/-shm/-journal) outside SQLite: it drops its locks.',
        },
        {
          // TypeORM shares one connection: an await inside a transaction lets other modules' writes join it and be
          // rolled back with it. Use a synchronous better-sqlite3 transaction instead.
          selector: "CallExpression[callee.property.name='transaction'] > :function[async=true]",
          message: 'No async transactions on the shared connection: use db.transaction(() => ...).immediate().',
        },
        {
          // A deferred transaction that reads before it writes cannot wait for another process's write lock: SQLite
          // answers SQLITE_BUSY at once (it failed a restore beside a busy writer). Take the write lock first.
          selector: "CallExpression[callee.type='CallExpression'][callee.callee.property.name='transaction']",
          message: 'Begin write transactions IMMEDIATE: db.transaction(() => ...).immediate(), not (...)().',
        },
        {
          selector: "CallExpression[callee.property.name='save']:not([arguments.1])",
          message: 'Repository.save() opens an async transaction: pass { transaction: false }.',
        },
      ],
    },
  },
  {
    files: ['src/config/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', '**/*.spec.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    files: ['test/**/*.ts', '**/*.spec.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/require-await': 'off' },
  },
);

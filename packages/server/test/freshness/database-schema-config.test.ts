import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load-config.js';

// docs/configuration.md GATEHOUSE_DATABASE_SCHEMA: the PostgreSQL schema of an installation, so
// that several can share one database (and every node of one names the same schema).

const PG = 'postgres://gh@db.internal:5432/gatehouse';

describe('GATEHOUSE_DATABASE_SCHEMA', () => {
  it.each(['gatehouse', 'gh_prod_2', '_x', 'a'.repeat(63)])('takes schema %j with a PostgreSQL URL', (schema) => {
    expect(loadConfig({ GATEHOUSE_DATABASE_URL: PG, GATEHOUSE_DATABASE_SCHEMA: schema }).database).toEqual({
      kind: 'postgres',
      url: PG,
      schema,
    });
  });

  it('leaves the schema out when unset or empty', () => {
    for (const env of [{ GATEHOUSE_DATABASE_URL: PG }, { GATEHOUSE_DATABASE_URL: PG, GATEHOUSE_DATABASE_SCHEMA: '' }]) {
      expect(loadConfig(env).database).toStrictEqual({ kind: 'postgres', url: PG });
    }
  });

  it.each(['Gatehouse', '1st', 'gate-house', 'gate house', 'public;drop', '"quoted"', 'a'.repeat(64), 'schéma'])(
    'refuses %j',
    (schema) => {
      const err = (() => {
        try {
          loadConfig({ GATEHOUSE_DATABASE_URL: PG, GATEHOUSE_DATABASE_SCHEMA: schema });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe('GATEHOUSE_DATABASE_SCHEMA');
      expect((err as ConfigError).message).toContain('is not valid: expected a PostgreSQL schema name');
    },
  );

  it('refuses a schema for SQLite, and says nothing more of it when the URL is the problem', () => {
    expect(() => loadConfig({ GATEHOUSE_DATABASE_URL: 'sqlite:./gh.db', GATEHOUSE_DATABASE_SCHEMA: 'gh' })).toThrow(
      'GATEHOUSE_DATABASE_SCHEMA="gh" is set, but only a PostgreSQL database has schemas: GATEHOUSE_DATABASE_URL names SQLite',
    );
    expect(() => loadConfig({ GATEHOUSE_DATABASE_SCHEMA: 'gh' })).toThrow(ConfigError);
    try {
      loadConfig({ GATEHOUSE_DATABASE_URL: 'mysql://db/gh', GATEHOUSE_DATABASE_SCHEMA: 'gh' });
    } catch (e) {
      expect((e as ConfigError).issues.map((i) => i.variable)).toEqual(['GATEHOUSE_DATABASE_URL']);
    }
    expect.assertions(3);
  });

  it('suggests it for a near miss', () => {
    expect(() => loadConfig({ GATEHOUSE_DATABASE_SHEMA: 'gh' })).toThrow('did you mean GATEHOUSE_DATABASE_SCHEMA?');
  });
});

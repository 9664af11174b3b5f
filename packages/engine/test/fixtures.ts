import { compileCatalog, parseConfigFile, type Catalog } from '@gatehouse/engine';

/** Parses a config file text and compiles it into a catalog; throws with the issues if invalid. */
export function catalogFromYaml(yaml: string): Catalog {
  const parsed = parseConfigFile('test.yaml', yaml);
  if (parsed.issues.length > 0) {
    throw new Error(parsed.issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`).join('\n'));
  }
  return compileCatalog(parsed.domains, parsed.principals);
}

/** 2026-06-01T00:00:00Z in epoch ms: the instant most tests decide at. */
export const NOW = Date.parse('2026-06-01T00:00:00Z');

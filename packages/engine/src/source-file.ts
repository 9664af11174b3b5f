/**
 * Reading YAML or JSON text into plain values while remembering where each value stood, so
 * that every error in a file can name its line and column (config files, policy test files).
 */

import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';

/** A place in a file: 1-based line and column. */
export interface SourcePosition {
  line: number;
  column: number;
}

/** A problem in a file. */
export interface FileIssue {
  file: string;
  line: number;
  column: number;
  /** The JSON-ish path of the offending value (`domains[0].roles[1].name`). */
  path: string;
  code: string;
  message: string;
}

/** Limits on files read. */
export const FILE_LIMITS = { bytes: 16 * 1024 * 1024, depth: 64, aliases: 1000, nodes: 5_000_000 } as const;

/** A parsed file: its plain value and where each path stood. */
export interface SourceFile {
  file: string;
  value: unknown;
  issues: FileIssue[];
  /** Where the value at `path` starts; falls back to the nearest enclosing path. */
  positionOf(path: string): SourcePosition;
  /** Where the key of the value at `path` starts (for unknown or duplicate fields). */
  keyPositionOf(path: string): SourcePosition;
  /** Where the text of the string at `path` starts: after its opening quote, if any. */
  textPositionOf(path: string): SourcePosition;
}

/** Joins a path and a child key or index. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

function parentPath(path: string): string {
  const m = /^(.*?)(\[\d+\]|\.[^.[\]]+)$/.exec(path);
  if (m) return m[1] as string;
  return '';
}

/** Parses YAML (JSON is YAML) into a SourceFile. Syntax errors are issues, never thrown. */
export function readSourceFile(file: string, text: string): SourceFile {
  const issues: FileIssue[] = [];
  const positions = new Map<string, SourcePosition>();
  const keyPositions = new Map<string, SourcePosition>();
  const lineCounter = new LineCounter();
  const at = (offset: number): SourcePosition => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  const positionOf = (path: string): SourcePosition => {
    let p = path;
    for (;;) {
      const found = positions.get(p);
      if (found) return found;
      if (p === '') return { line: 1, column: 1 };
      p = parentPath(p);
    }
  };
  const keyPositionOf = (path: string): SourcePosition => keyPositions.get(path) ?? positionOf(path);
  const quoted = new Set<string>();
  const textPositionOf = (path: string): SourcePosition => {
    const p = positionOf(path);
    return quoted.has(path) ? { line: p.line, column: p.column + 1 } : p;
  };
  if (text.length > FILE_LIMITS.bytes) {
    issues.push({
      file,
      line: 1,
      column: 1,
      path: '',
      code: 'file.too_large',
      message: `file is larger than ${FILE_LIMITS.bytes} bytes`,
    });
    return { file, value: undefined, issues, positionOf, keyPositionOf, textPositionOf };
  }
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  for (const e of doc.errors) {
    const p = at(e.pos[0]);
    issues.push({ file, ...p, path: '', code: 'file.syntax', message: e.message.split('\n')[0] ?? e.message });
  }
  if (issues.length > 0) return { file, value: undefined, issues, positionOf, keyPositionOf, textPositionOf };
  let aliases = 0;
  let nodes = 0;
  const convert = (node: unknown, path: string, depth: number): unknown => {
    // Bounds what aliases can blow up to ("billion laughs").
    if (++nodes > FILE_LIMITS.nodes) {
      if (nodes === FILE_LIMITS.nodes + 1) {
        issues.push({
          file,
          line: 1,
          column: 1,
          path,
          code: 'file.too_large',
          message: `more than ${FILE_LIMITS.nodes} values`,
        });
      }
      return undefined;
    }
    if (depth > FILE_LIMITS.depth) {
      issues.push({
        file,
        ...positionOf(path),
        path,
        code: 'file.too_deep',
        message: `nested more than ${FILE_LIMITS.depth} levels`,
      });
      return undefined;
    }
    if (node === null || node === undefined) return null;
    const n = node as Node;
    if (n.range) positions.set(path, at(n.range[0]));
    if (isAlias(n)) {
      if (++aliases > FILE_LIMITS.aliases) {
        issues.push({
          file,
          ...positionOf(path),
          path,
          code: 'file.too_many_aliases',
          message: `more than ${FILE_LIMITS.aliases} aliases`,
        });
        return undefined;
      }
      return convert(n.resolve(doc), path, depth + 1);
    }
    if (isScalar(n)) {
      if (n.type === 'QUOTE_DOUBLE' || n.type === 'QUOTE_SINGLE') quoted.add(path);
      return n.value;
    }
    if (isSeq(n)) return n.items.map((item, i) => convert(item, childPath(path, i), depth + 1));
    if (isMap(n)) {
      const out: Record<string, unknown> = {};
      for (const pair of n.items) {
        if (!isPair(pair)) continue;
        const keyNode = pair.key as Node | null;
        const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
        const p = childPath(path, key);
        if (keyNode?.range) keyPositions.set(p, at(keyNode.range[0]));
        if (!pair.value && keyNode?.range) positions.set(p, at(keyNode.range[0]));
        Object.defineProperty(out, key, {
          value: convert(pair.value, p, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    return null;
  };
  const value = convert(doc.contents, '', 0);
  return { file, value, issues, positionOf, keyPositionOf, textPositionOf };
}

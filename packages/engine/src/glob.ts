/**
 * Globs (semantics.md "Globs"): `*` is any run of characters (possibly empty), `?` exactly one
 * character, every other character is literal. A glob matches the whole string. Matching is
 * case-insensitive: both sides are lower-cased by the callers (names are stored lower-case).
 */

/** How a compiled glob matches: the cheap shapes avoid a regular expression. */
export type GlobShape = 'any' | 'exact' | 'prefix' | 'general';

/** A glob compiled once for repeated matching. */
export interface Glob {
  readonly source: string;
  readonly shape: GlobShape;
  /** The literal characters before the first `*` or `?`. */
  readonly prefix: string;
  matches(text: string): boolean;
}

/** True when the text holds a glob character (`*` or `?`). */
export function hasGlobChars(text: string): boolean {
  return text.includes('*') || text.includes('?');
}

/** The literal characters of a glob before its first `*` or `?`. */
export function literalPrefix(glob: string): string {
  let i = 0;
  while (i < glob.length) {
    const c = glob.charCodeAt(i);
    if (c === 42 /* * */ || c === 63 /* ? */) break;
    i++;
  }
  return glob.slice(0, i);
}

/**
 * Whole-string wildcard matching over code points, without regular expressions (a glob from a
 * policy must never be able to make a regular expression compiler run out of memory): the
 * classic greedy scan that backtracks to the last `*`, O(|glob| · |text|) at worst.
 */
function matchCodePoints(glob: readonly string[], text: readonly string[]): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    const g = glob[p];
    if (p < glob.length && (g === '?' || (g !== '*' && g === text[t]))) {
      p++;
      t++;
    } else if (p < glob.length && g === '*') {
      star = p++;
      mark = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++mark;
    } else return false;
  }
  while (p < glob.length && glob[p] === '*') p++;
  return p === glob.length;
}

/** Compiles a glob (already lower-cased) into a matcher. Never throws. */
export function compileGlob(glob: string): Glob {
  const prefix = literalPrefix(glob);
  if (glob === '*') return { source: glob, shape: 'any', prefix: '', matches: () => true };
  if (prefix.length === glob.length) {
    return { source: glob, shape: 'exact', prefix, matches: (t) => t === glob };
  }
  if (prefix.length === glob.length - 1 && glob.endsWith('*')) {
    return { source: glob, shape: 'prefix', prefix, matches: (t) => t.startsWith(prefix) };
  }
  const points = Array.from(glob);
  return { source: glob, shape: 'general', prefix, matches: (t) => matchCodePoints(points, Array.from(t)) };
}

/** One-off match of a glob against a text (both compared lower-cased). */
export function globMatches(glob: string, text: string): boolean {
  return compileGlob(glob.toLowerCase()).matches(text.toLowerCase());
}

/**
 * True when some string matches both globs (the intersection of their languages is not empty).
 * Used to tell whether a deny pattern can override an allow pattern. Runs in O(|a|·|b|).
 */
export function globsIntersect(a: string, b: string): boolean {
  const x = [...a];
  const y = [...b];
  const memo = new Map<number, boolean>();
  const width = y.length + 1;
  const go = (i: number, j: number): boolean => {
    const key = i * width + j;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let result: boolean;
    if (i === x.length && j === y.length) result = true;
    else if (i < x.length && x[i] === '*') {
      // `*` in a matches nothing, or one more character of whatever b produces next.
      result = go(i + 1, j) || (j < y.length && (y[j] === '*' ? go(i, j + 1) || go(i + 1, j) : go(i, j + 1)));
    } else if (j < y.length && y[j] === '*') {
      result = go(i, j + 1) || (i < x.length && go(i + 1, j));
    } else if (i < x.length && j < y.length) {
      const p = x[i];
      const q = y[j];
      result = (p === '?' || q === '?' || p === q) && go(i + 1, j + 1);
    } else result = false;
    memo.set(key, result);
    return result;
  };
  return go(0, 0);
}

/**
 * True when every string that `inner` matches is also matched by `outer` (language inclusion),
 * decided conservatively: exact for literals, `*`, and prefix globs; otherwise false unless equal.
 */
export function globCovers(outer: string, inner: string): boolean {
  if (outer === inner || outer === '*') return true;
  const o = compileGlob(outer);
  if (!hasGlobChars(inner)) return o.matches(inner);
  if (o.shape === 'prefix') return literalPrefix(inner).startsWith(o.prefix);
  return false;
}

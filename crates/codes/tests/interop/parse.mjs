// Reads one EMV MPM payload per line on stdin and prints, for each, one JSON
// object per line on stdout, as decoded by promptparse (an independent EMV QR
// implementation):
//
//   {"ok":true,"fields":{"00":"01","29":{"00":"A000000677010111","01":"..."},...}}
//   {"ok":false,"error":"..."}
//
// Template IDs (26-51, 62, 64, 80-99) become an object of their sub-IDs when
// promptparse could split them into sub-tags; every other ID, and a template
// promptparse could not split, is its raw string value. Keys come out in the
// order the payload has them; when an ID repeats, the first one wins, as with
// promptparse's own getTag().
//
// Usage: node parse.mjs [--strict] < payloads.txt
//   --strict  also ask promptparse to check the CRC before parsing.
import { createInterface } from 'node:readline'
import { parse } from 'promptparse'

const strict = process.argv.includes('--strict')

// A reader that stops early (`| head`) is not an error.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0)
  throw e
})

function isTemplate(id) {
  if (!/^\d\d$/.test(id)) return false
  const n = Number(id)
  return (n >= 26 && n <= 51) || n === 62 || n === 64 || (n >= 80 && n <= 99)
}

// JSON object text with keys in the given order (a plain JS object would put
// "10".."99" ahead of "00".."09").
function orderedObject(entries) {
  const seen = new Set()
  const parts = []
  for (const [key, json] of entries) {
    if (seen.has(key)) continue
    seen.add(key)
    parts.push(`${JSON.stringify(key)}:${json}`)
  }
  return `{${parts.join(',')}}`
}

function fieldsOf(tags) {
  return orderedObject(
    tags.map((t) => {
      if (isTemplate(t.id) && Array.isArray(t.subTags)) {
        return [t.id, orderedObject(t.subTags.map((s) => [s.id, JSON.stringify(s.value)]))]
      }
      return [t.id, JSON.stringify(t.value)]
    }),
  )
}

function line(payload) {
  let qr
  try {
    qr = parse(payload, strict, true)
  } catch (e) {
    return JSON.stringify({ ok: false, error: `promptparse threw: ${e && e.message ? e.message : e}` })
  }
  if (!qr) {
    return JSON.stringify({
      ok: false,
      error: strict ? 'promptparse rejected the payload (format or CRC)' : 'promptparse rejected the payload',
    })
  }
  return `{"ok":true,"fields":${fieldsOf(qr.getTags())}}`
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const raw of rl) {
  process.stdout.write(line(raw.replace(/\r$/, '')) + '\n')
}

/**
 * A file of named typed arrays and a JSON header, for indexes that are built once and loaded many
 * times: loading is one read into memory and a view per array, no parsing. Written to a temporary
 * name and renamed, so a reader sees a whole file or none.
 *
 * Layout: 16 bytes of magic, the format version (u32 LE), the header's byte length (u32 LE), the
 * header (JSON: the caller's fields, each array's name, type, offset and length, the file's total
 * size), then each array at an 8-byte-aligned offset, little-endian (this module refuses to run on
 * a big-endian machine).
 *
 * Hand-written: Arrow IPC or FlatBuffers could hold the arrays, but neither is a dependency here,
 * and this is the ~100 lines of it that loading typed arrays back needs.
 */
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../errors.js';

export type StoredArray = Uint8Array | Uint16Array | Uint32Array | Float64Array;

const MAGIC = Buffer.from('SEGFLOW-ARRAYS\0\0', 'latin1');
const FORMAT = 1;

const TYPES = {
  u8: Uint8Array,
  u16: Uint16Array,
  u32: Uint32Array,
  f64: Float64Array,
} as const;
type TypeName = keyof typeof TYPES;

function typeOf(a: StoredArray): TypeName {
  if (a instanceof Uint8Array) return 'u8';
  if (a instanceof Uint16Array) return 'u16';
  if (a instanceof Uint32Array) return 'u32';
  return 'f64';
}

interface SectionInfo {
  name: string;
  type: TypeName;
  offset: number;
  length: number;
}

interface Header {
  fields: Record<string, unknown>;
  sections: SectionInfo[];
  totalBytes: number;
}

const align8 = (n: number) => Math.ceil(n / 8) * 8;

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('array-file: stored indexes are little-endian; this machine is big-endian');
}

/** Writes `arrays` and `fields` to `file` (atomically: a temporary file renamed into place). */
export function writeArrayFile(
  file: string,
  fields: Record<string, unknown>,
  arrays: Record<string, StoredArray>,
): void {
  const sections: SectionInfo[] = [];
  // The header's size depends on the offsets and the offsets on it: settle it in two rounds.
  let headerBytes = 0;
  let header: Buffer = Buffer.alloc(0);
  for (let round = 0; round < 3; round++) {
    let offset = align8(MAGIC.length + 8 + headerBytes);
    sections.length = 0;
    for (const [name, a] of Object.entries(arrays)) {
      sections.push({ name, type: typeOf(a), offset, length: a.length });
      offset = align8(offset + a.byteLength);
    }
    header = Buffer.from(JSON.stringify({ fields, sections, totalBytes: offset } satisfies Header));
    if (header.length === headerBytes) break;
    headerBytes = header.length;
  }
  // Pad the header with spaces (still JSON) to the size the offsets were computed for.
  if (header.length < headerBytes)
    header = Buffer.concat([header, Buffer.alloc(headerBytes - header.length, 32)]);
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    const lead = Buffer.alloc(8);
    lead.writeUInt32LE(FORMAT, 0);
    lead.writeUInt32LE(header.length, 4);
    let at = 0;
    const put = (bytes: Uint8Array) => {
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, at + done);
      at += bytes.length;
    };
    put(MAGIC);
    put(lead);
    put(header);
    for (const s of sections) {
      if (at < s.offset) put(new Uint8Array(s.offset - at));
      const a = arrays[s.name]!;
      put(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    }
    const total = (JSON.parse(header.toString()) as Header).totalBytes;
    if (at < total) put(new Uint8Array(total - at));
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

/** Why a stored file cannot be used: it is damaged, or from another format version. */
function damaged(file: string, why: string): ConfigError {
  return new ConfigError(
    `search index ${file} is damaged (${why}): delete it and it is built again from the corpus at the next start`,
    { file },
  );
}

/** Reads a file written by writeArrayFile: its fields, and views of its arrays. */
export function readArrayFile(file: string): {
  fields: Record<string, unknown>;
  arrays: Record<string, StoredArray>;
} {
  const fd = openSync(file, 'r');
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    const size = fstatSync(fd).size;
    // One aligned buffer, read in pieces (a single read stops at 2 GiB).
    bytes = new Uint8Array(new ArrayBuffer(size));
    for (let at = 0; at < size;) {
      const n = readSync(fd, bytes, at, Math.min(size - at, 1 << 26), at);
      if (n === 0) throw damaged(file, `ends at byte ${at} of ${size}`);
      at += n;
    }
  } finally {
    closeSync(fd);
  }
  if (bytes.length < MAGIC.length + 8 || !Buffer.from(bytes.buffer, 0, MAGIC.length).equals(MAGIC)) {
    throw damaged(file, 'not a segflow index file');
  }
  const view = new DataView(bytes.buffer);
  const format = view.getUint32(MAGIC.length, true);
  if (format !== FORMAT) throw damaged(file, `format ${format}, this version reads ${FORMAT}`);
  const headerBytes = view.getUint32(MAGIC.length + 4, true);
  let header: Header;
  try {
    header = JSON.parse(
      Buffer.from(
        bytes.buffer,
        MAGIC.length + 8,
        Math.min(headerBytes, bytes.length - MAGIC.length - 8),
      ).toString(),
    ) as Header;
  } catch {
    throw damaged(file, 'unreadable header');
  }
  if (header.totalBytes !== bytes.length) {
    throw damaged(file, `${bytes.length} bytes, the header says ${header.totalBytes}`);
  }
  const arrays: Record<string, StoredArray> = {};
  for (const s of header.sections) {
    const Type = TYPES[s.type];
    if (!Type || s.offset % 8 !== 0 || s.offset + s.length * Type.BYTES_PER_ELEMENT > bytes.length) {
      throw damaged(file, `section ${s.name} out of bounds`);
    }
    arrays[s.name] = new Type(bytes.buffer, s.offset, s.length);
  }
  return { fields: header.fields, arrays };
}

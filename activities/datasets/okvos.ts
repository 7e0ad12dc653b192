/**
 * OK-VOS (spec §2, §10): `{root}/{split}.parquet` with question, images, ability, video, oid
 * (id and steps optional), frames in `{root}/{split}/JPEGImages/<video>/<name>.jpg`, masks in
 * `{root}/{split}/Annotations/<video>/<oid>/<name>.png` (0/255; not every frame has one).
 * The parquet is read with hyparquet.
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parquetMetadata, parquetReadObjects, parquetSchema } from 'hyparquet';
import { BadMediaError } from '../media/errors.js';
import type { DatasetSample } from './types.js';

export const OKVOS_REQUIRED_COLUMNS = ['question', 'images', 'ability', 'video', 'oid'] as const;

function str(v: unknown): string {
  return typeof v === 'bigint' ? v.toString() : String(v);
}

/** Reads every sample of an OK-VOS split from its parquet file. */
export async function readOkVos(
  parquetPath: string,
  opts: { split?: string } = {},
): Promise<DatasetSample[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(parquetPath);
  } catch (err) {
    throw new BadMediaError(parquetPath, 'does not exist or cannot be read', err);
  }
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  let rows: Record<string, unknown>[];
  let columns: string[];
  try {
    const metadata = parquetMetadata(file);
    columns = parquetSchema(metadata).children.map((c) => c.element.name);
    const missing = OKVOS_REQUIRED_COLUMNS.filter((c) => !columns.includes(c));
    if (missing.length > 0) {
      throw new BadMediaError(
        parquetPath,
        `is missing required OK-VOS columns ${JSON.stringify(missing)} (it has ${JSON.stringify(columns)}; needed: ${OKVOS_REQUIRED_COLUMNS.join(', ')})`,
      );
    }
    rows = (await parquetReadObjects({ file, metadata })) as Record<string, unknown>[];
  } catch (err) {
    if (err instanceof BadMediaError) throw err;
    throw new BadMediaError(parquetPath, `is not a readable parquet file: ${(err as Error).message}`, err);
  }
  const split = opts.split ?? basename(parquetPath).replace(/\.parquet$/, '');
  const dataDir = join(dirname(parquetPath), split);
  return rows.map((row, idx) => {
    const origin = `${parquetPath} row ${idx}`;
    const images = row.images;
    if (!Array.isArray(images) || images.length === 0) {
      throw new BadMediaError(parquetPath, `row ${idx} has no frame names in column "images"`);
    }
    for (const c of OKVOS_REQUIRED_COLUMNS) {
      if (row[c] === null || row[c] === undefined)
        throw new BadMediaError(parquetPath, `row ${idx} has no value in column "${c}"`);
    }
    const video = str(row.video);
    const oid = str(row.oid);
    const steps = Array.isArray(row.steps) ? row.steps.map(str) : undefined;
    return {
      format: 'okvos' as const,
      // The reference: example.get('id', str(idx)).
      id: row.id === null || row.id === undefined ? String(idx) : str(row.id),
      split,
      ability: str(row.ability),
      question: str(row.question),
      ...(steps && steps.length > 0 ? { steps } : {}),
      media: {
        kind: 'frames' as const,
        dir: join(dataDir, 'JPEGImages', video),
        images: images.map(str).sort(),
      },
      annotation: {
        kind: 'mask-folder' as const,
        dir: join(dataDir, 'Annotations', video, oid),
        rule: 'eq255' as const,
      },
      origin,
    };
  });
}

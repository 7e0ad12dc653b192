/** What every dataset reader yields: one sample, with where its media and masks are on disk. */
import type { LabeledPolygon } from './polygon.js';
import type { MaskRule } from '../media/masks.js';

export const datasetFormats = ['okvos', 'reasonseg', 'manifest'] as const;
export type DatasetFormat = (typeof datasetFormats)[number];

export type SampleMedia =
  /** A folder of frames (OK-VOS JPEGImages/<video>): `images` lists the frame names to use, no extension. */
  | { kind: 'frames'; dir: string; images?: string[] }
  | { kind: 'video'; path: string }
  | { kind: 'image'; path: string };

export type SampleAnnotation =
  /** One PNG per frame, named by the frame (`00012.png` for frame id 12); frames without one have no mask. */
  | { kind: 'mask-folder'; dir: string; rule: MaskRule }
  /** One mask image for an image sample. */
  | { kind: 'mask-file'; path: string; rule: MaskRule }
  /** LISA polygons of an image sample, from `file`. */
  | { kind: 'polygons'; file: string; shapes: LabeledPolygon[] }
  /** No ground truth (inference-only manifests). */
  | { kind: 'none' };

export interface DatasetSample {
  format: DatasetFormat;
  id: string;
  split: string;
  /** `in-video`, `one-hop`, `multi-hop`, `relational`, or null when the dataset does not say. */
  ability: string | null;
  /** The text after the frames in the user message (OK-VOS: the `question` column verbatim). */
  question: string;
  /** OK-VOS reference search steps (feed the IGR), when present. */
  steps?: string[];
  media: SampleMedia;
  annotation: SampleAnnotation;
  /** Where the sample was read from (parquet row, JSON file, manifest line), for error messages. */
  origin: string;
}

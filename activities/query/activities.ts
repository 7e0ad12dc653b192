/**
 * Glue activities of the segmentQuery workflow: they read stored JSON the workflow must not hold
 * (frame lists: `queryLocateKeyframe` answers where the keyframe is in one, so a video of any
 * length costs the workflow a few numbers) and turn the segmenter's per-frame PNG masks into the
 * RLE mask sequence the overlay video reads. Small, idempotent, content-addressed outputs.
 */
import type { ArtifactRef } from '../../core/artifacts.js';
import { BadInputError } from '../errors.js';
import type { FrameSet } from '../media/ingest.js';
import { readBinaryMask, toMaskSequence } from '../media/masks.js';
import type { ArtifactStore } from '../storage/artifact-store.js';

export interface FrameList {
  /** Frame URIs in order. */
  uris: string[];
  /** The frame id of each (the file-name integer of a frame folder, else the index). */
  fids: number[];
  width: number;
  height: number;
}

interface SegmentManifest {
  width: number;
  height: number;
  frames: { frame: number; name: string; mask: string }[];
}

/** Where a keyframe is in a stored frame list. */
export interface KeyframeLocation {
  /** Its position in the list; null when the list has no frame of that id. */
  index: number | null;
  /** Frames in the list. */
  frames: number;
  width: number;
  height: number;
}

async function readFrameSet(store: ArtifactStore, frameSet: ArtifactRef): Promise<FrameSet> {
  const set = await store.getJson<FrameSet>(frameSet.uri);
  if (!Array.isArray(set.frames) || set.frames.length === 0) {
    throw new BadInputError(`frame set ${frameSet.uri} lists no frames`);
  }
  return set;
}

export function createQueryActivities(deps: { store: ArtifactStore }) {
  const { store } = deps;
  return {
    /**
     * The frames of a stored FrameSet, for the video segmenter (histories recorded before
     * `queryLocateKeyframe`: the list grows with the video, ~100 bytes a frame).
     */
    async queryFrameList(input: { frameSet: ArtifactRef }): Promise<FrameList> {
      const set = await readFrameSet(store, input.frameSet);
      return {
        uris: set.frames.map((f) => f.ref.uri),
        fids: set.frames.map((f) => f.fid),
        width: set.width,
        height: set.height,
      };
    },

    /** The position of frame id `keyframe` in a stored FrameSet, and the set's size. */
    async queryLocateKeyframe(input: { frameSet: ArtifactRef; keyframe: number }): Promise<KeyframeLocation> {
      const set = await readFrameSet(store, input.frameSet);
      const index = set.frames.findIndex((f) => f.fid === input.keyframe);
      return {
        index: index < 0 ? null : index,
        frames: set.frames.length,
        width: set.width,
        height: set.height,
      };
    },

    /** The segmenter's per-frame PNG masks as one RLE MaskSequence JSON (for the overlay video). */
    async queryMaskSequence(input: { manifest: ArtifactRef }): Promise<ArtifactRef> {
      const manifest = await store.getJson<SegmentManifest>(input.manifest.uri);
      const masks: [number, Awaited<ReturnType<typeof readBinaryMask>>][] = [];
      for (const f of manifest.frames) {
        const head = await store.head(f.mask);
        if (!head) continue; // not segmented: an empty mask
        masks.push([f.frame, await readBinaryMask(await store.getBytes(f.mask))]);
      }
      const seq = toMaskSequence(manifest.width, manifest.height, masks);
      return await store.putContentAddressed(
        'mask-sequences',
        Buffer.from(JSON.stringify(seq)),
        'application/json',
        'json',
      );
    },

    /** Stores the query's result summary beside its masks. */
    async querySaveResult(input: { key: string; result: unknown }): Promise<ArtifactRef> {
      return await store.putJson(input.key, input.result);
    },
  };
}

export type QueryActivities = ReturnType<typeof createQueryActivities>;

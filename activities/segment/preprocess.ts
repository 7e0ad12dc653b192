/**
 * Image → SAM2 input tensor: decoded by sharp, RGB, stretched to exactly 1024×1024 (no aspect kept,
 * no padding), /255, ImageNet mean/std, NCHW float32 (contract §3 "Preprocessing"). The resize is
 * the official predictor's own (resample.ts): `linear` = the image predictor's torchvision bilinear
 * with antialias, `cubic` = the video predictor's PIL bicubic.
 */
import sharp from 'sharp';
import { IMAGE_SIZE } from './contract.js';
import { resampleRgb } from './resample.js';
import { BadInputError } from '../errors.js';

export type ResizeKernel = 'linear' | 'cubic';

export interface ImageInput {
  /** Encoded image bytes, or a file path. */
  data: Buffer | string;
  /** Names the image in errors (path, URI, frame name). */
  label: string;
}

export interface PreparedImage {
  /** [1,3,1024,1024] */
  tensor: Float32Array;
  width: number;
  height: number;
}

/** Size of an image without decoding its pixels. */
export async function imageSize(input: ImageInput): Promise<{ width: number; height: number }> {
  try {
    const meta = await sharp(input.data).metadata();
    if (!meta.width || !meta.height) throw new Error('no width/height in the header');
    return { width: meta.width, height: meta.height };
  } catch (err) {
    throw new BadInputError(
      `${input.label}: not a readable image (${(err as Error).message})`,
      { image: input.label },
      err,
    );
  }
}

export async function prepareImage(
  input: ImageInput,
  mean: readonly number[],
  std: readonly number[],
  kernel: ResizeKernel,
): Promise<PreparedImage> {
  let pixels: Buffer;
  let width: number;
  let height: number;
  try {
    const { data, info } = await sharp(input.data, { failOn: 'error' })
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    pixels = data;
    width = info.width;
    height = info.height;
  } catch (err) {
    throw new BadInputError(
      `${input.label}: not a readable image (${(err as Error).message})`,
      { image: input.label },
      err,
    );
  }
  if (pixels.length !== width * height * 3) {
    throw new BadInputError(
      `${input.label}: decoded to ${pixels.length} bytes, expected ${width * height * 3} RGB bytes`,
    );
  }
  const resampler = kernel === 'cubic' ? 'pil-bicubic' : 'torch-bilinear-aa';
  // /255 then (x − mean) / std, fused into the resize's last pass
  const tensor = resampleRgb(pixels, width, height, IMAGE_SIZE, IMAGE_SIZE, resampler, {
    scale: [1 / (255 * std[0]!), 1 / (255 * std[1]!), 1 / (255 * std[2]!)],
    shift: [mean[0]! / std[0]!, mean[1]! / std[1]!, mean[2]! / std[2]!],
  });
  return { tensor, width, height };
}

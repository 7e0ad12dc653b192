import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resampleRgb, type Resampler } from '../../../activities/segment/resample.js';
import { referenceResampleRgb } from '../../support/resample-reference.js';

/** Pseudo-random bytes (an LCG mod 2^31), as the Python that made the goldens below. */
function lcgBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
    out[i] = (x >> 16) & 255;
  }
  return out;
}

/**
 * Pillow 13.0.0 `Image.frombytes('RGB', (w, h), lcg_bytes(w*h*3, seed)).resize((outW, outH),
 * Image.BICUBIC).tobytes().hex()`: up, down, vertical only, horizontal only, same size. Noise, so
 * the bicubic's negative lobes clip at 0 and 255.
 */
const PIL_GOLDENS = [
  {
    w: 7,
    h: 5,
    outW: 13,
    outH: 11,
    seed: 1,
    pil: 'd68d7cb273ab7045ff9289c7e8fc54fffe83ffc6debf69ef7c15ea8100d97410b339ae701aff4dc37270a4629b6e49e7878abbcaee5ee2e88fddafe0a55ae37614d38a0bcb8a26ae5b9b6e41d94d963156863b746751ad6b8e9f80d17680b6a97875e76933c46c0f9da135aac058a3ab706c9f7c4f6e053f6e21536c59786783845d9d864987bc3a5cea3c2baf581b77a16792d68b98db4e66dc2c4d5b06366c26468c60669a5b73993b7b8164b86092ed3963ba2e46846a9e909fb88bb64559c0073e4e2a346a3f3fa16455c73c64da0074c65cb098cce34ba2ba19788c3dbf9868c98f855056930f37408937587b34896031c24956f4458fe993afbbe7b578d48245b1634da8a85e9bc16c817873734f33ef4444bb2f6a5a0faf6545f8aba3f9d2aad7e989aaee4782d634727cb8665ff65db49a58e36524ff6740d1467a5d09ab7127d2c86ae3ca90dfb299c0b2539da4338b5fb67651ed5baf7d4de24317ff9144cf659a6313ac77089cc417bda371dd66c3c5557ca650469d49ac8b5aca61924a4caf0d11ffa345d073a76616ac790085c400ac9463dc45d4c82e8cab2d4ea63ea9945cbd6487344b9c00',
  },
  {
    w: 31,
    h: 17,
    outW: 8,
    outH: 6,
    seed: 2,
    pil: '7891786e95716781a2718e85696d6e787274918b9f999596856e6570827971967c9187928a76858f889fa38496687d9b7a8b7e8a4c95977f8e97656571836e7774728b8368887d93958d6f8d777589847d987398546b7f9b927c898c798590828d5d7f9b77857b7f938c7b9d6e906e649c747f9377878a84926f9c7c62819a7c6aa2767775916a689d7bab7e7b6c7c95',
  },
  {
    w: 9,
    h: 4,
    outW: 9,
    outH: 10,
    seed: 3,
    pil: '4ac880738ac153c1362563493f15e4741040beafed47ff847bff9159c07b7b90ac48b0533673443c1be66d3154b996dc63fa7170f08887b069929f73247fa1649c353429ee578a8cb252aeaeed3f50ae6db09a5cabb2380d54f490ca252c3ff049e2c4a01180f9de08325f5594866eb5c2394b76ff83de252c5fd374ccbc782f8fedd7003c2d634e7093b5d05cbfc8ee53e12f3087a1c2728d4187c2acd50e5e0c892a5f9dadbc6decdebc30c3314a9595d83e6223a7d76ed7167b1daf3d53799a6f62a9945e226d238878c495463b296bb834e10e8e7fd6574b538929535d470d1b2116be58f44e591f362a970aea059bdaf35f4846820e4e442b00170411d34dff355d123a138b00ed02a1fdff',
  },
  {
    w: 10,
    h: 6,
    outW: 4,
    outH: 6,
    seed: 4,
    pil: '585ba3824e6bb69e4580864bd3d57f4b852c77624d7694655ac34f718889bbb9905dc8538b85467b94588ba0457c98768f3b824f3349716560649f4643931ca3a371c53267206e9b',
  },
  {
    w: 6,
    h: 6,
    outW: 6,
    outH: 6,
    seed: 5,
    pil: 'df097885d16cb8733c681dacfd15e95946d944626f3deaa9808d92097f3122117ace9480531ca6804e8644a35c83b69e25b789c8d7c83f50b101b6414ea95837b22108df16c0c730736f2a6bd0037cd34c5db22ceb4413f620fda4661eaf5529df7aecd8f151b539039be63b',
  },
];

test('the bicubic resize gives Pillow’s bytes (up, down, one axis, same size)', () => {
  for (const c of PIL_GOLDENS) {
    const out = resampleRgb(lcgBytes(c.w * c.h * 3, c.seed), c.w, c.h, c.outW, c.outH, 'pil-bicubic');
    const plane = c.outW * c.outH;
    const interleaved = new Uint8Array(3 * plane);
    for (let i = 0; i < plane; i++)
      for (let ch = 0; ch < 3; ch++) interleaved[i * 3 + ch] = out[ch * plane + i]!;
    assert.equal(Buffer.from(interleaved).toString('hex'), c.pil, `${c.w}×${c.h} → ${c.outW}×${c.outH}`);
  }
});

const SIZES: [number, number, number, number][] = [
  [960, 540, 1024, 1024],
  [1280, 1500, 1024, 1024],
  [33, 1024, 1024, 1024],
  [1024, 7, 1024, 1024],
  [1024, 1024, 1024, 1024],
  [5, 3, 17, 2],
];

test('the fast resize equals the plain reference bit for bit, with and without the fused normalisation', () => {
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const affine = {
    scale: std.map((s) => 1 / (255 * s)),
    shift: mean.map((m, i) => m / std[i]!),
  };
  for (const resampler of ['pil-bicubic', 'torch-bilinear-aa'] as Resampler[]) {
    for (const [w, h, ow, oh] of SIZES) {
      const pixels = lcgBytes(w * h * 3, w * 31 + h);
      const what = `${resampler} ${w}×${h} → ${ow}×${oh}`;
      const ref = referenceResampleRgb(pixels, w, h, ow, oh, resampler);
      const fast = resampleRgb(pixels, w, h, ow, oh, resampler);
      assert.ok(Buffer.from(fast.buffer).equals(Buffer.from(ref.buffer)), `${what}: values differ`);
      // what preprocess.ts did as a separate pass before the fusion
      const plane = ow * oh;
      for (let c = 0; c < 3; c++)
        for (let i = 0; i < plane; i++)
          ref[c * plane + i] = ref[c * plane + i]! * affine.scale[c]! - affine.shift[c]!;
      const fused = resampleRgb(pixels, w, h, ow, oh, resampler, affine);
      assert.ok(
        Buffer.from(fused.buffer).equals(Buffer.from(ref.buffer)),
        `${what}: normalised values differ`,
      );
    }
  }
});

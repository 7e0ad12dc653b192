// The loader checks every file against the pinned contract and says what is wrong and where.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import onnxProto from 'onnx-proto';
import { ConfigError } from '../../../activities/errors.js';
import { ModelContractError, ModelFilesMissingError } from '../../../activities/segment/errors.js';
import {
  loadSam2Models,
  releaseSharedSam2Models,
  sharedSam2Models,
} from '../../../activities/segment/models.js';
import { buildDecoder, buildMemoryAttention, writeSam2TestModels } from '../../support/onnx-models.js';

const { onnx } = onnxProto;
const tmp = () => mkdtempSync(join(tmpdir(), 'segflow-sam2-models-'));
after(releaseSharedSam2Models);

test('the generated test models satisfy the contract in both modes', async () => {
  const dir = await writeSam2TestModels(tmp());
  const image = await loadSam2Models(dir, 'image');
  // image mode also loads video_decoder.onnx when the folder has it: its single-mask token 0 is the
  // reference's box-only ReasonSeg prompt (samexporter folders have only decoder.onnx)
  assert.deepEqual(Object.keys(image.graphs).sort(), ['decoder', 'encoder', 'videoDecoder']);
  const video = await loadSam2Models(dir, 'video');
  assert.deepEqual(Object.keys(video.graphs).sort(), [
    'encoder',
    'memoryAttention',
    'memoryEncoder',
    'videoDecoder',
  ]);
  assert.equal(video.config.model_id, 'segflow-test-tiny');
  assert.equal(video.config.num_maskmem, 7);
  await image.release();
  await video.release();
});

test('no models folder, or missing files: a non-retryable error that says how to export them', async () => {
  await assert.rejects(loadSam2Models(undefined, 'image'), (e: unknown) => {
    assert.ok(e instanceof ModelFilesMissingError);
    assert.equal(e.retryable, false);
    assert.match(e.message, /encoder\.onnx, decoder\.onnx/);
    assert.match(e.message, /scripts\/sam2-export\/export_sam2_onnx\.py/);
    return true;
  });
  const dir = await writeSam2TestModels(tmp(), { only: ['encoder', 'decoder'] });
  await assert.rejects(loadSam2Models(dir, 'video'), (e: unknown) => {
    assert.ok(e instanceof ModelFilesMissingError);
    assert.deepEqual(e.missing, [
      'video_decoder.onnx',
      'memory_attention.onnx',
      'memory_encoder.onnx',
      'sam2_config.json',
    ]);
    assert.match(e.message, /SEGFLOW_SEGMENT_MODELS_DIR/);
    return true;
  });
  // image mode works without sam2_config.json (samexporter exports ship none)
  const image = await loadSam2Models(dir, 'image');
  assert.equal(image.config.model_id, 'samexporter');
  await image.release();
});

test('a wrong dtype is rejected naming the file, the tensor and the expected dtype and shape', async () => {
  const dir = await writeSam2TestModels(tmp(), {
    replace: {
      'memory_attention.onnx': buildMemoryAttention({ tposElemType: onnx.TensorProto.DataType.FLOAT }),
    },
  });
  await assert.rejects(loadSam2Models(dir, 'video'), (e: unknown) => {
    assert.ok(e instanceof ModelContractError, String(e));
    assert.equal(e.tensor, 'memory_1_tpos');
    assert.match(
      e.message,
      /memory_attention\.onnx: tensor "memory_1_tpos" has dtype float32, expected int64 \[F\]/,
    );
    return true;
  });
});

test('a wrong rank or a wrong fixed dim is rejected with the expected shape', async () => {
  const rank = await writeSam2TestModels(tmp(), {
    replace: { 'memory_attention.onnx': buildMemoryAttention({ memoryRank: 3 }) },
  });
  await assert.rejects(
    loadSam2Models(rank, 'video'),
    /memory_attention\.onnx: tensor "memory_1" has rank 3 \[F,64,4096\], expected rank 4 float32 \[F,64,64,64\]/,
  );
  const dims = await writeSam2TestModels(tmp(), {
    replace: { 'decoder.onnx': buildDecoder({ tokens: 3, highRes1Dims: ['N', 64, 64, 64] }) },
  });
  await assert.rejects(
    loadSam2Models(dims, 'image'),
    /decoder\.onnx: tensor "high_res_feats_1" has shape \[N,64,64,64\], expected float32 \[N,64,128,128\]/,
  );
});

test('an image decoder in the video decoder slot (3 tokens, no pointers) is rejected', async () => {
  const dir = await writeSam2TestModels(tmp(), {
    replace: { 'video_decoder.onnx': buildDecoder({ tokens: 3 }) },
  });
  await assert.rejects(loadSam2Models(dir, 'video'), (e: unknown) => {
    assert.ok(e instanceof ModelContractError);
    assert.match(
      e.message,
      /video_decoder\.onnx: tensor "masks" has shape \[N,3,256,256\], expected float32 \[N,4,256,256\]/,
    );
    return true;
  });
});

test('a file that is not ONNX, and a bad sam2_config.json, are named in the error', async () => {
  const dir = await writeSam2TestModels(tmp());
  writeFileSync(join(dir, 'encoder.onnx'), 'not a model');
  await assert.rejects(
    loadSam2Models(dir, 'image'),
    /encoder\.onnx: tensor "\*" cannot be loaded by onnxruntime/,
  );
  const cfgDir = await writeSam2TestModels(tmp(), { config: { num_maskmem: 9 } });
  await assert.rejects(loadSam2Models(cfgDir, 'video'), (e: unknown) => {
    assert.ok(e instanceof ModelContractError);
    assert.match(e.message, /sam2_config\.json: tensor "num_maskmem"/);
    return true;
  });
});

test('an execution provider that is not installed is an error, never a silent CPU fallback', async () => {
  const dir = await writeSam2TestModels(tmp(), { only: ['encoder', 'decoder'] });
  await assert.rejects(
    loadSam2Models(dir, 'image', {
      executionProviders: ['cuda'],
      deviceId: 0,
      intraOpThreads: 0,
      runsPerDevice: 1,
    }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, /execution provider\(s\) cuda/);
      assert.match(e.message, /SEGFLOW_SEGMENT_EXECUTION_PROVIDERS=cpu/);
      return true;
    },
  );
});

test('sessions are shared per process: the same folder loads once', async () => {
  const dir = await writeSam2TestModels(tmp(), { only: ['encoder', 'decoder'] });
  const a = sharedSam2Models(dir, 'image');
  const b = sharedSam2Models(dir, 'image');
  assert.equal(a, b);
  assert.equal(await a, await b);
});

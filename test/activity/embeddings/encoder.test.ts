// The ONNX export of all-MiniLM-L6-v2 run by onnxruntime-node matches sentence-transformers'
// own embeddings (golden file written by scripts/export-minilm-onnx.py --golden), and IGR's
// threshold separates a paraphrase of a reference step from an unrelated query.
// Needs `bash scripts/setup-models.sh` (writes .models/all-MiniLM-L6-v2).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cosine, OnnxTextEncoder } from '../../../activities/embeddings/encoder.js';
import {
  createEmbeddingActivities,
  type SearchQuerySimilarity,
} from '../../../activities/embeddings/activities.js';
import { ConfigError } from '../../../activities/errors.js';
import { activityEnvironment } from '../../support/activity-env.js';
import { repoRoot } from '../../support/paths.js';

const modelDir = process.env.SEGFLOW_EMBEDDINGS_MODEL_DIR ?? join(repoRoot, '.models', 'all-MiniLM-L6-v2');
const golden = JSON.parse(
  readFileSync(join(repoRoot, 'test', 'fixtures', 'embeddings', 'minilm-golden.json'), 'utf8'),
) as { sentences: { text: string; embedding: number[] }[] };

void describe('ONNX all-MiniLM-L6-v2 encoder', () => {
  let encoder: OnnxTextEncoder;
  before(async () => {
    encoder = await OnnxTextEncoder.load(modelDir);
  });
  after(async () => {
    await encoder.release();
  });

  // Unit vectors a, b with a - b = d have 1 - cos = |d|²/2. Float32 kernels (torch vs onnxruntime,
  // AVX2 vs AVX-512, any thread count) leave |d| ~ 1e-5 after 6 layers, the golden's 7 decimals
  // add |d| <= 5e-8·√384 = 1e-6: 1 - cos <= ~1e-10 (measured 8.5e-13). A bar of 1e-6 allows |d| up
  // to 1.4e-3; a pooling or truncation bug (CLS token, padding in the mean, a dropped [SEP]) gives
  // 1 - cos >= 0.5.
  const COSINE_BAR = 1 - 1e-6;

  void it('matches sentence-transformers embeddings (1 - cosine <= 1e-6), batched with padding', async () => {
    assert.equal(encoder.dimension, 384);
    const texts = golden.sentences.map((s) => s.text);
    const got = await encoder.embed(texts);
    let min = 1;
    for (const [i, s] of golden.sentences.entries()) {
      const c = cosine(got[i]!, Float32Array.from(s.embedding));
      min = Math.min(min, c);
      assert.ok(c >= COSINE_BAR, `sentence ${i} (${JSON.stringify(s.text.slice(0, 40))}): cosine ${c}`);
    }
    console.log(
      `# max 1 - cosine vs sentence-transformers over ${texts.length} sentences: ${(1 - min).toExponential(2)}`,
    );
    // The long sentence really was cut at 256 tokens (else it would not match the golden one).
    assert.ok(encoder.tokenize(texts[texts.length - 1]!).length === 256);
  });

  void it('gives one-by-one and batched embeddings that agree', async () => {
    const [alone] = await encoder.embed([golden.sentences[0]!.text]);
    const [batched] = await encoder.embed([golden.sentences[0]!.text, golden.sentences[7]!.text]);
    // the same kernels on another batch shape: rounding only (measured 1 - cos = 0), same bar as above
    const c = cosine(alone!, batched!);
    assert.ok(c >= COSINE_BAR, `alone vs batched: cosine ${c}`);
  });

  void it('names the folder and the fix when the model is missing', async () => {
    await assert.rejects(OnnxTextEncoder.load('/nonexistent/encoder'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /\/nonexistent\/encoder/);
      assert.match(err.message, /setup-models\.sh/);
      return true;
    });
  });

  void it('IGR similarity: a paraphrase of a reference step scores > 0.5, an unrelated query < 0.5', async () => {
    const env = activityEnvironment();
    const acts = createEmbeddingActivities({ encoder });
    const steps = [
      'Search for the winner of the Best Pop Solo Performance at the 61st Grammy Awards',
      'Find what Lady Gaga looks like',
    ];
    const para: SearchQuerySimilarity = await env.run(acts.searchQuerySimilarity, {
      query: 'which singer got the Grammy for best solo pop performance in 2019',
      references: steps,
    });
    assert.ok(para.maxCosine !== null && para.maxCosine > 0.5, `paraphrase scored ${para.maxCosine}`);
    console.log(`# IGR paraphrase ${para.maxCosine.toFixed(3)}`);
    assert.equal(para.bestIndex, 0);
    assert.equal(para.scores.length, 2);
    const unrelated: SearchQuerySimilarity = await env.run(acts.searchQuerySimilarity, {
      query: 'recipe for chocolate chip cookies',
      references: steps,
    });
    assert.ok(
      unrelated.maxCosine !== null && unrelated.maxCosine < 0.5,
      `unrelated query scored ${unrelated.maxCosine}`,
    );
    console.log(`# IGR unrelated ${unrelated.maxCosine.toFixed(3)}`);
  });

  void it('rejects a malformed request with a non-retryable error naming the field', async () => {
    const env = activityEnvironment();
    const acts = createEmbeddingActivities({ encoder });
    await assert.rejects(
      env.run(acts.searchQuerySimilarity, { query: 'x', references: 'not a list' } as never),
      (err: unknown) => {
        const e = err as { type?: string; nonRetryable?: boolean; message: string };
        assert.equal(e.type, 'BadInputError');
        assert.equal(e.nonRetryable, true);
        assert.match(e.message, /references/);
        return true;
      },
    );
  });
});

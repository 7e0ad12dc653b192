/**
 * Loading the sam2-onnx v1 files into onnxruntime-node sessions: the files are checked against the
 * contract (names, dtypes, ranks, fixed dims, dynamic F/P), the execution provider comes from
 * configuration and is never silently dropped, sessions are shared per worker process, and
 * `session.run` calls go through a fixed-size gate per device.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import PQueue from 'p-queue';
import { ConfigError } from '../errors.js';
import {
  CONFIG_FILE,
  DEFAULT_IMAGE_CONFIG,
  Graphs,
  IMAGE_GRAPHS,
  sam2ConfigSchema,
  VIDEO_GRAPHS,
  type GraphKey,
  type GraphSpec,
  type Sam2Config,
} from './contract.js';
import { ModelContractError, ModelFilesMissingError } from './errors.js';

export type ExecutionProvider = 'cpu' | 'cuda' | 'tensorrt';
export type SegmentMode = 'image' | 'video';

export interface RuntimeOptions {
  /** @default ["cpu"] */
  executionProviders: readonly ExecutionProvider[];
  /** GPU ordinal. @default 0 */
  deviceId: number;
  /** 0 = onnxruntime's choice. @default 0 */
  intraOpThreads: number;
  /** Concurrent `session.run` calls per device. @default 1 */
  runsPerDevice: number;
}

export const defaultRuntimeOptions: RuntimeOptions = {
  executionProviders: ['cpu'],
  deviceId: 0,
  intraOpThreads: 0,
  runsPerDevice: 1,
};

export type Feeds = Record<string, ort.Tensor>;
export type Fetches = Record<string, ort.Tensor>;

/** One loaded graph: its session plus the gate shared by every graph on the same device. */
export class Sam2Graph {
  constructor(
    readonly key: GraphKey,
    readonly file: string,
    private readonly session: ort.InferenceSession,
    private readonly gate: PQueue,
  ) {}

  async run(feeds: Feeds): Promise<Fetches> {
    return (await this.gate.add(() => this.session.run(feeds))) as Fetches;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export interface Sam2Models {
  dir: string;
  mode: SegmentMode;
  config: Sam2Config;
  graphs: Partial<Record<GraphKey, Sam2Graph>>;
  release(): Promise<void>;
}

/** The graph, or a clear error when this models set was loaded for another mode. */
export function graph(models: Sam2Models, key: GraphKey): Sam2Graph {
  const g = models.graphs[key];
  if (!g) throw new ConfigError(`${Graphs[key].file} was not loaded (models loaded for ${models.mode} mode)`);
  return g;
}

function isDynamic(d: number | string): boolean {
  return typeof d === 'string' || d < 0;
}

function describe(dims: readonly (number | string)[]): string {
  return `[${dims.join(',')}]`;
}

/** Checks one side (inputs or outputs) of a session against the contract. */
function checkTensors(
  file: string,
  side: 'input' | 'output',
  expected: GraphSpec['inputs'],
  actual: readonly ort.InferenceSession.ValueMetadata[],
): void {
  const byName = new Map(actual.map((m) => [m.name, m]));
  for (const spec of expected) {
    const want = `${spec.dtype} ${describe(spec.dims)}`;
    const got = byName.get(spec.name);
    if (!got) {
      throw new ModelContractError(
        file,
        spec.name,
        `is missing: expected ${side} ${want}; the file has ${side}s ${actual.map((m) => m.name).join(', ') || 'none'}`,
      );
    }
    if (!got.isTensor) throw new ModelContractError(file, spec.name, `is not a tensor: expected ${want}`);
    if (got.type !== spec.dtype) {
      throw new ModelContractError(file, spec.name, `has dtype ${got.type}, expected ${want}`);
    }
    if (got.shape.length !== spec.dims.length) {
      throw new ModelContractError(
        file,
        spec.name,
        `has rank ${got.shape.length} ${describe(got.shape)}, expected rank ${spec.dims.length} ${want}`,
      );
    }
    spec.dims.forEach((d, i) => {
      const g = got.shape[i]!;
      if (typeof d === 'number' && !isDynamic(g) && g !== d) {
        throw new ModelContractError(file, spec.name, `has shape ${describe(got.shape)}, expected ${want}`);
      }
      if ((d === 'F' || d === 'P') && side === 'input' && !isDynamic(g)) {
        throw new ModelContractError(
          file,
          spec.name,
          `has a fixed size ${g} on axis ${i}, expected a dynamic ${d} axis: ${want}`,
        );
      }
    });
  }
  if (side === 'input') {
    const extra = actual.filter((m) => !expected.some((s) => s.name === m.name));
    if (extra.length > 0) {
      throw new ModelContractError(
        file,
        extra[0]!.name,
        `is an input the contract does not have (expected inputs: ${expected.map((s) => s.name).join(', ')})`,
      );
    }
  }
}

/** Validates a loaded session against its graph's contract. Exported for tests. */
export function validateSession(key: GraphKey, file: string, session: ort.InferenceSession): void {
  const spec = Graphs[key];
  checkTensors(file, 'input', spec.inputs, session.inputMetadata);
  checkTensors(file, 'output', spec.outputs, session.outputMetadata);
}

function sessionOptions(opts: RuntimeOptions): ort.InferenceSession.SessionOptions {
  const supported = new Map(ort.listSupportedBackends().map((b) => [b.name, b]));
  const providers: ort.InferenceSession.ExecutionProviderConfig[] = opts.executionProviders.map((ep) => {
    if (!supported.has(ep)) {
      throw new ConfigError(
        `execution provider "${ep}" is not supported by this onnxruntime-node build ` +
          `(supported: ${[...supported.keys()].join(', ')})`,
      );
    }
    return ep === 'cpu' ? 'cpu' : { name: ep, deviceId: opts.deviceId };
  });
  // Python onnxruntime's InferenceSession defaults (CPU arena and memory pattern on, sequential
  // execution, ORT_ENABLE_ALL): bench/segment.bench.ts measures these sessions against Python's on
  // the same files and finds the same kernels at the same speed (onnxruntime-node runs the same
  // libonnxruntime and MLAS build); per-call binding overhead is a copy of the outputs, < 0.5% here.
  return {
    executionProviders: providers,
    graphOptimizationLevel: 'all',
    ...(opts.intraOpThreads > 0 ? { intraOpNumThreads: opts.intraOpThreads } : {}),
  };
}

async function createSession(file: string, opts: RuntimeOptions): Promise<ort.InferenceSession> {
  const options = sessionOptions(opts);
  try {
    return await ort.InferenceSession.create(file, options);
  } catch (err) {
    const message = (err as Error).message ?? String(err);
    if (
      /ExecutionProvider|shared library/i.test(message) &&
      opts.executionProviders.some((e) => e !== 'cpu')
    ) {
      throw new ConfigError(
        `cannot start onnxruntime execution provider(s) ${opts.executionProviders.join(', ')} for ${file}: ` +
          `${message.split('\n')[0]}. Install the GPU build (npm install onnxruntime-node without ` +
          `ONNXRUNTIME_NODE_INSTALL=skip, with CUDA 12 + cuDNN 9 on the host) or set ` +
          `segment.executionProviders=cpu (SEGFLOW_SEGMENT_EXECUTION_PROVIDERS=cpu)`,
        { file, executionProviders: opts.executionProviders },
      );
    }
    throw new ModelContractError(file, '*', `cannot be loaded by onnxruntime: ${message.split('\n')[0]}`);
  }
}

async function readSam2Config(dir: string, mode: SegmentMode): Promise<Sam2Config> {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) {
    if (mode === 'image') return DEFAULT_IMAGE_CONFIG;
    throw new ModelFilesMissingError(dir, [CONFIG_FILE], mode);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new ModelContractError(path, CONFIG_FILE, `is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = sam2ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ModelContractError(path, issue.path.join('.') || CONFIG_FILE, issue.message);
  }
  return parsed.data;
}

const gates = new Map<string, PQueue>();

function gateFor(opts: RuntimeOptions): PQueue {
  const device = opts.executionProviders[0] === 'cpu' ? 'cpu' : `gpu${opts.deviceId}`;
  let gate = gates.get(device);
  if (!gate) {
    gate = new PQueue({ concurrency: opts.runsPerDevice });
    gates.set(device, gate);
  }
  return gate;
}

/**
 * Loads and validates the graphs a mode needs from `dir`. Fails (non-retryable) naming the missing
 * files and how to export them, or the file/tensor that breaks the contract.
 */
export async function loadSam2Models(
  dir: string | undefined,
  mode: SegmentMode,
  opts: RuntimeOptions = defaultRuntimeOptions,
): Promise<Sam2Models> {
  const keys = mode === 'image' ? IMAGE_GRAPHS : VIDEO_GRAPHS;
  if (!dir)
    throw new ModelFilesMissingError(
      '',
      keys.map((k) => Graphs[k].file),
      mode,
    );
  const root = resolve(dir);
  const missing: string[] = keys.map((k) => Graphs[k].file).filter((f) => !existsSync(join(root, f)));
  if (mode === 'video' && !existsSync(join(root, CONFIG_FILE))) missing.push(CONFIG_FILE);
  if (missing.length > 0) throw new ModelFilesMissingError(root, missing, mode);
  const config = await readSam2Config(root, mode);
  const gate = gateFor(opts);
  const graphs: Partial<Record<GraphKey, Sam2Graph>> = {};
  // Image mode also takes `video_decoder.onnx` when the folder has it: its token 0 is the
  // single-mask output that a box-only image prompt uses (samexporter's decoder has no token 0).
  const optional: GraphKey[] =
    mode === 'image' && existsSync(join(root, Graphs.videoDecoder.file)) ? ['videoDecoder'] : [];
  try {
    for (const key of [...keys, ...optional]) {
      const file = join(root, Graphs[key].file);
      const session = await createSession(file, opts);
      graphs[key] = new Sam2Graph(key, file, session, gate);
      validateSession(key, file, session);
    }
  } catch (err) {
    await Promise.all(Object.values(graphs).map((g) => g.release()));
    throw err;
  }
  return {
    dir: root,
    mode,
    config,
    graphs,
    async release() {
      await Promise.all(Object.values(graphs).map((g) => g.release()));
    },
  };
}

const shared = new Map<string, Promise<Sam2Models>>();

/**
 * The process-wide models for (dir, mode, providers): loaded once, reused by every activity on this
 * worker. A failed load is forgotten so a fixed folder is picked up by the next call.
 */
export function sharedSam2Models(
  dir: string | undefined,
  mode: SegmentMode,
  opts: RuntimeOptions = defaultRuntimeOptions,
): Promise<Sam2Models> {
  const key = JSON.stringify([
    dir ? resolve(dir) : '',
    mode,
    opts.executionProviders,
    opts.deviceId,
    opts.intraOpThreads,
  ]);
  let entry = shared.get(key);
  if (!entry) {
    entry = loadSam2Models(dir, mode, opts);
    shared.set(key, entry);
    entry.catch(() => shared.delete(key));
  }
  return entry;
}

/** Releases every shared session (worker shutdown, tests). */
export async function releaseSharedSam2Models(): Promise<void> {
  const all = [...shared.values()];
  shared.clear();
  for (const p of all) {
    try {
      await (await p).release();
    } catch {
      // a load that failed has nothing to release
    }
  }
}

/** A float32 tensor. */
export function f32(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

/** An int64 tensor from plain numbers (onnxruntime-node wants a BigInt64Array). */
export function i64(values: readonly number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values.map((v) => BigInt(v))), [values.length]);
}

/** The Float32Array of an output, or a contract error naming the tensor. */
export function f32Data(fetches: Fetches, name: string, file: string): Float32Array {
  const t = fetches[name];
  if (!t || !(t.data instanceof Float32Array)) {
    throw new ModelContractError(file, name, 'did not come back as a float32 output');
  }
  return t.data;
}

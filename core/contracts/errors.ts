/**
 * The failure types segflow raises (Temporal `ApplicationFailure.type`), defined once: the error
 * classes in activities/ and trainer/ raise them, the workflows' retry policies name them. The
 * Python trainer's types are checked against the exported list (trainer/tests/test_contracts.py).
 */
export const ErrorTypes = {
  /** The input is wrong; a retry cannot help. */
  badInput: 'BadInputError',
  /** The process's configuration is wrong (a missing model, a bad URL). */
  config: 'ConfigError',
  /** A dependency failed in a way a retry may fix (5xx, connection reset, 429). */
  transient: 'TransientError',
  /** An input S3 object does not exist. */
  artifactNotFound: 'ArtifactNotFound',
  /** A media file ffmpeg/sharp cannot read. */
  badMedia: 'BadMediaError',
  /** ffmpeg or another child process failed or timed out. */
  toolProcess: 'ToolProcessError',
  /** A URL the network guard refuses (private address, scheme). */
  blockedUrl: 'BlockedUrl',
  /** The SAM2 ONNX graphs a mode needs are not in the models folder. */
  modelFilesMissing: 'ModelFilesMissing',
  /** A SAM2 ONNX graph that does not meet the contract. */
  modelContractMismatch: 'ModelContractMismatch',
  /** The trainer found version v+1 already made from other inputs (Python trainer). */
  policyVersionConflict: 'PolicyVersionConflict',
  /**
   * The work does not fit the host: out of GPU/CPU memory, disk full (Python trainer). The same work
   * fails the same way again; it needs smaller settings or a bigger host.
   */
  resourceExhausted: 'ResourceExhausted',
  /** More of a training step's trajectories failed after their retries than the step accepts. */
  trajectoriesFailed: 'TrajectoriesFailed',
} as const;

export type ErrorType = (typeof ErrorTypes)[keyof typeof ErrorTypes];

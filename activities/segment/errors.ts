/**
 * Errors of the SAM2 segmentation activities. All are non-retryable: a missing or mismatched model
 * file, or a prompt outside the image, does not fix itself on a retry.
 */
import { ErrorTypes } from '../../core/contracts/errors.js';
import { SegflowError } from '../errors.js';
import { EXPORT_HINT } from './contract.js';

/** The models folder lacks a file the requested mode needs. */
export class ModelFilesMissingError extends SegflowError {
  readonly modelsDir: string;
  readonly missing: readonly string[];

  constructor(modelsDir: string, missing: readonly string[], mode: 'image' | 'video') {
    super(
      ErrorTypes.modelFilesMissing,
      `SAM2 ${mode} mode needs ${missing.join(', ')} in ${modelsDir || '(no models folder configured)'}, ` +
        `which ${missing.length === 1 ? 'is' : 'are'} missing: ${EXPORT_HINT}`,
      { retryable: false, details: { modelsDir, missing, mode } },
    );
    this.modelsDir = modelsDir;
    this.missing = missing;
  }
}

/** A model file exists but does not match the pinned contract. */
export class ModelContractError extends SegflowError {
  readonly file: string;
  readonly tensor: string;

  constructor(file: string, tensor: string, problem: string) {
    super(
      ErrorTypes.modelContractMismatch,
      `${file}: tensor "${tensor}" ${problem} (contract sam2-onnx v1)`,
      {
        retryable: false,
        details: { file, tensor, problem },
      },
    );
    this.file = file;
    this.tensor = tensor;
  }
}

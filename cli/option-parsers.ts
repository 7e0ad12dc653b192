// Commander argument parsers shared by the `segr` commands: each names the flag in its error.
import { InvalidArgumentError } from 'commander';

function wholeNumber(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be a whole number >= ${min}, got "${value}"`);
    return n;
  };
}

export const positiveInt = (name: string) => wholeNumber(name, 1);
export const nonNegativeInt = (name: string) => wholeNumber(name, 0);

export function nonNegativeNumber(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0)
      throw new InvalidArgumentError(`${name} must be a number >= 0, got "${value}"`);
    return n;
  };
}

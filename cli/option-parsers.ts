// Commander argument parsers shared by the `segr` commands: every option that takes a number goes
// through one of these, and each error names the flag and the value given.
import { InvalidArgumentError } from 'commander';

/** A whole number from `min` to `max` (inclusive); "" and " " are not 0. */
export function intInRange(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
      throw new InvalidArgumentError(`${name} must be a whole number ${range}, got "${value}"`);
    }
    return n;
  };
}

export const positiveInt = (name: string) => intInRange(name, 1);
export const nonNegativeInt = (name: string) => intInRange(name, 0);

function number(name: string, ok: (n: number) => boolean, what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || !ok(n))
      throw new InvalidArgumentError(`${name} must be a number ${what}, got "${value}"`);
    return n;
  };
}

export const nonNegativeNumber = (name: string) => number(name, (n) => n >= 0, '>= 0');
export const positiveNumber = (name: string) => number(name, (n) => n > 0, '> 0');

// Every `segr` subcommand registers itself here. Keep one import + one entry per command.
import type { Command } from 'commander';
import { register as check } from './check.js';
import { register as codecServer } from './codec-server.js';
import { register as config } from './config.js';
import { register as dataset } from './dataset.js';
import { register as dev } from './dev.js';
import { register as evalMasks } from './eval-masks.js';
import { register as evaluate } from './eval.js';
import { register as media } from './media.js';
import { register as nano } from './nano.js';
import { register as run } from './run.js';
import { register as schedule } from './schedule.js';
import { register as score } from './score.js';
import { register as segment } from './segment.js';
import { register as search } from './search.js';
import { register as train } from './train.js';
import { register as worker } from './worker.js';

export type CommandRegistrar = (program: Command) => void;

export const commandRegistrars: CommandRegistrar[] = [
  check,
  codecServer,
  config,
  dev,
  worker,
  score,
  evalMasks,
  media,
  dataset,
  segment,
  search,
  run,
  evaluate,
  schedule,
  train,
  nano,
];

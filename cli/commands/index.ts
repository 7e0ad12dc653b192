// Every `segr` subcommand registers itself here. Keep one import + one entry per command.
import type { Command } from 'commander';

export type CommandRegistrar = (program: Command) => void;

export const commandRegistrars: CommandRegistrar[] = [];

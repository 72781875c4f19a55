// Build step: render `soma-verify --help` with yargs once, so that the command answers without
// importing yargs (see verify-options.ts). Run by `npm run build`.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import yargs from 'yargs';
import { describeWithYargs } from './verify-options.js';

const version = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const help = await describeWithYargs(yargs([]), version).getHelp();
const dir = new URL('../../help/', import.meta.url);
mkdirSync(dir, { recursive: true });
writeFileSync(new URL('soma-verify.txt', dir), `${help}\n`);

import { buildCli } from './build-cli.js';

await buildCli().parseAsync(process.argv);

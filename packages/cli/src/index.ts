export { main } from './main.js';
export { optionsFromArgv, COMMAND_LINE } from './argv.js';

export { main } from './main.js';
export { booleanFlags, isBooleanFlag, optionsFromArgv, COMMAND_LINE } from './argv.js';
export { renderTop, defaultSort, nextSort, sortColumns, bytes, duration, type TopOptions, type TopSample, type TopSort } from './top/render.js';
export { toView, StatsShapeError, type VassalView, type EmperorView } from './top/model.js';
export { runCheck, renderResolved } from './check.js';
export { HANDOFF_ENV, planEmperorDrop, takeHandoff, type CurrentProcess, type DropDecision, type DropPlan, type Handoff, type HandedFds } from './privilege-drop.js';

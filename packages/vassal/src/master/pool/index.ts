export * from './types.js';
export { createPool, step } from './step.js';
export {
  anyBusy,
  currentOf,
  generationsInUse,
  healthView,
  inCheapMode,
  isBusy,
  isRetiring,
  masterState,
  memoryWatched,
  needsEverySecond,
  nextDeadline,
  phaseOf,
  queuesNeededEveryTick,
  slotsInOrder,
  statusOf,
  summarize,
  tickInterval,
  type MasterState,
  type ProcPhase,
} from './views.js';

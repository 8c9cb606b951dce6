#!/usr/bin/env node
/**
 * `emperor`: the one front door.
 *   emperor --emperor DIR [...]      run the emperor on a directory of vassal files
 *   emperor --ini FILE               run the emperor (FILE has `emperor = ...`) or one vassal
 *   emperor stats ADDR [--json]      print one stats snapshot
 *
 * The only place the command exits the process: `main` resolves to the exit code. The
 * exit is explicit, so no handle left open (stdin after `top`, a watcher still closing
 * after the emperor's shutdown) keeps the process up. On Linux, stdout and stderr are
 * written synchronously to files, pipes and terminals alike, so nothing printed is lost.
 */
import { main } from '../main.js';

process.exit(await main(process.argv.slice(2)));

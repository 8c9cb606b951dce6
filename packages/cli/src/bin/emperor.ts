#!/usr/bin/env node
/**
 * `emperor`: the one front door.
 *   emperor --emperor DIR [...]      run the emperor on a directory of vassal files
 *   emperor --ini FILE               run the emperor (FILE has `emperor = ...`) or one vassal
 *   emperor stats ADDR [--json]      print one stats snapshot
 */
import { main } from '../main.js';

process.exitCode = await main(process.argv.slice(2));

#!/usr/bin/env node
// The `emperor` command as installed (`npm link`, `npm install -g`): the CLI package's
// bin, found by package name, so it runs from a checkout (a workspace link) and from an
// installed tarball (a bundled dependency) alike.
await import('@emperor/cli/bin');

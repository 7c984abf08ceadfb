#!/usr/bin/env node
// The installed command. It lives outside dist/ so that a workspace install, which links bins
// before anything is built, finds it; the program itself is dist/bin.js (built by `tsc -b`).
await import('../dist/bin.js');

#!/usr/bin/env node
import '../dist/src/cli/soma-verify.js';

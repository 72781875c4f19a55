#!/usr/bin/env node
import '../dist/src/cli/soma-ports.js';

#!/usr/bin/env node
import '../dist/bundle/cli/soma-ports.js';

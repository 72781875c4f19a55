import type { Renderer } from './report.js';

export const renderJson: Renderer = (report) => `${JSON.stringify(report, null, 2)}\n`;

// The public entry of the package: what a plugin imports (`import { defineCheck } from
// 'soma-verify'`). The CLIs are the bins; everything else is internal.
export { defineCheck } from './check.js';
export type {
  CheckContext,
  CheckKind,
  CheckOutcome,
  CheckResult,
  StandardIssue,
  StandardResult,
  StandardSchemaV1,
  Status,
  Unanswered,
} from './check.js';

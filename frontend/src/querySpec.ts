import { SelectableValue } from '@grafana/data';
import {
  AnnotationKind,
  ClaudeCodeQuery,
  ContextDirection,
  Format,
  Latency,
  LatencySource,
  QueryType,
  QueryTypeInfo,
  ReportPeriod,
} from './types';

/** The options a query type shows in the editor. */
export type QueryOption =
  | 'measure'
  | 'source'
  | 'compare'
  | 'groupBy'
  | 'optionalGroupBy'
  | 'format'
  | 'limit'
  | 'percentiles'
  | 'latencies'
  | 'latencySource'
  | 'byStatusCode'
  | 'sessionId'
  | 'eventNames'
  | 'search'
  | 'trace'
  | 'contextPoint'
  | 'direction'
  | 'traceSearch'
  | 'key'
  | 'kinds'
  | 'rawSql'
  | 'period'
  | 'timezone'
  | 'breakdown';

export interface QueryTypeSpec {
  label: string;
  /** Shown when the backend's catalog is not loaded (yet). */
  description: string;
  options: QueryOption[];
  formats?: Format[];
  /** Fields a new query of this type starts with. */
  defaults: Partial<ClaudeCodeQuery>;
}

/** Editor metadata for each query type; descriptions and examples come from the backend. */
export const QUERY_TYPES: Record<QueryType, QueryTypeSpec> = {
  stat: {
    label: 'Stat',
    description: 'One number for the range, optionally compared with the previous period.',
    options: ['measure', 'source', 'compare'],
    defaults: { measure: 'cost' },
  },
  breakdown: {
    label: 'Breakdown',
    description: 'A measure by any attribute (model, user, team, terminal, …), top N plus "other".',
    options: ['measure', 'source', 'groupBy', 'format', 'limit'],
    formats: ['time_series', 'table'],
    defaults: { measure: 'cost', groupBy: 'model', format: 'time_series', limit: 10 },
  },
  cost_by_model: {
    label: 'Cost by model',
    description: 'Cost per model over time, or totals with tokens by type.',
    options: ['source', 'format'],
    formats: ['time_series', 'table'],
    defaults: { format: 'time_series' },
  },
  sessions: {
    label: 'Sessions',
    description: 'One row per session with its user, cost, tokens, tools, errors and output.',
    options: ['limit'],
    defaults: { limit: 100 },
  },
  session_timeline: {
    label: 'Session timeline',
    description: 'Every event of one session in order, with its parameters.',
    options: ['sessionId'],
    defaults: { sessionId: '$session' },
  },
  prompts: {
    label: 'Prompts',
    description: 'One row per prompt: API calls, tool calls, tokens, cost and duration.',
    options: ['limit'],
    defaults: { limit: 100 },
  },
  api_latency: {
    label: 'API latency',
    description: 'Model-call duration and time-to-first-token percentiles over time or by group.',
    options: ['latencies', 'latencySource', 'percentiles', 'optionalGroupBy', 'format'],
    formats: ['time_series', 'table'],
    defaults: { latencies: ['duration', 'ttft'], percentiles: [50, 95, 99], format: 'time_series' },
  },
  api_errors: {
    label: 'API errors',
    description: 'API error rate over time by status code or overall; table per status code.',
    options: ['byStatusCode', 'format'],
    formats: ['time_series', 'table'],
    defaults: { byStatusCode: true, format: 'time_series' },
  },
  tool_success_rate: {
    label: 'Tool success rate',
    description: 'Per tool and tool source: calls, failures, success rate, durations, accepts and rejects.',
    options: [],
    defaults: {},
  },
  tool_errors: {
    label: 'Tool errors',
    description: 'Failed tool calls by tool and error type, with an example message.',
    options: [],
    defaults: {},
  },
  tool_decisions: {
    label: 'Tool decisions',
    description: 'Accept/reject decisions by tool, source, permission mode and tool source.',
    options: [],
    defaults: {},
  },
  tool_costs: {
    label: 'Tool costs',
    description: 'Cost per tool call: each call is charged the model call that requested it.',
    options: [],
    defaults: {},
  },
  productivity: {
    label: 'Productivity',
    description: 'Lines added/removed, commits, pull requests and active time.',
    options: ['optionalGroupBy'],
    defaults: {},
  },
  logs: {
    label: 'Logs',
    description: 'Events as log lines, filtered by event name and text.',
    options: ['eventNames', 'search', 'limit'],
    defaults: { limit: 1000 },
  },
  logs_volume: {
    label: 'Logs volume',
    description: 'Events of a logs query counted per level and interval (Explore adds it to logs queries).',
    options: ['eventNames', 'search'],
    defaults: {},
  },
  log_context: {
    label: 'Log context',
    description: 'The events of one session before and after a point in it (a time, or a span).',
    options: ['contextPoint', 'direction', 'limit'],
    defaults: { sessionId: '$session', direction: 'around', limit: 50 },
  },
  live: {
    label: 'Live',
    description: 'Events as they arrive (Grafana Live), of one session or of all when the session is empty.',
    options: ['sessionId'],
    defaults: {},
  },
  traces: {
    label: 'Trace search',
    description: 'Interactions with duration, prompt, model calls, tools, errors and cost; each opens its trace.',
    options: ['traceSearch', 'limit'],
    defaults: { limit: 100 },
  },
  trace: {
    label: 'Trace',
    description: "A prompt's spans in the trace view, by prompt id or trace id.",
    options: ['trace'],
    defaults: {},
  },
  event_counts: {
    label: 'Event counts',
    description: 'Counts, failures and durations of every event and span name.',
    options: [],
    defaults: {},
  },
  repositories: {
    label: 'Repositories',
    description: 'Per repository and branch: cost, tokens, sessions, commits, pull requests and lines.',
    options: ['limit'],
    defaults: { limit: 100 },
  },
  agents: {
    label: 'Agents',
    description: 'Model calls by main loop, subagent and auxiliary: calls, cost and share, tokens, runs.',
    options: [],
    defaults: {},
  },
  hooks: {
    label: 'Hooks',
    description: 'Hook executions by event and name: outcomes, durations, output sizes, registrations.',
    options: [],
    defaults: {},
  },
  mcp: {
    label: 'MCP tools',
    description: 'MCP servers and tools: calls, failures, durations, decisions, connections.',
    options: [],
    defaults: {},
  },
  skills: {
    label: 'Skills',
    description: 'Skills activated, by skill, source and plugin.',
    options: [],
    defaults: {},
  },
  plugins: {
    label: 'Plugins',
    description: 'Plugins loaded: marketplace, scope, what they bring, sessions, hooks registered.',
    options: [],
    defaults: {},
  },
  managed_settings: {
    label: 'Managed settings',
    description: 'Managed settings each user and host runs with; one row per distinct state.',
    options: [],
    defaults: {},
  },
  fleet: {
    label: 'Fleet',
    description: 'Claude Code versions, providers and platforms in use: users, sessions, cost.',
    options: [],
    defaults: {},
  },
  budget: {
    label: 'Budget',
    description: 'Spent, share used and forecast at period end for each budget of the datasource settings.',
    options: [],
    defaults: {},
  },
  usage_windows: {
    label: 'Plan usage windows',
    description:
      '5-hour usage windows per user (tokens, cost, burn rate and projection of the open one); weekly totals.',
    options: [],
    defaults: {},
  },
  usage_report: {
    label: 'Usage report',
    description:
      'Model calls per local day, week or month and/or per group: sessions, calls, tokens, cost and list cost; a row per model.',
    options: ['period', 'timezone', 'optionalGroupBy', 'breakdown'],
    defaults: { period: 'day', timezone: 'UTC' },
  },
  variable: {
    label: 'Variable values',
    description: 'Distinct values of a key (session, model, user, tool, any attribute).',
    options: ['key', 'limit'],
    defaults: { key: 'model', limit: 1000 },
  },
  annotations: {
    label: 'Annotations',
    description: 'Session starts, API errors and rejected tools.',
    options: ['kinds'],
    defaults: { kinds: ['session_start', 'api_error', 'tool_reject'] },
  },
  sql: {
    label: 'Raw SQL',
    description: 'Read-only SQL with macros ($__timeFilter, $__timeGroup, …).',
    options: ['rawSql', 'format'],
    formats: ['table', 'time_series', 'logs'],
    defaults: {
      format: 'table',
      rawSql:
        "SELECT model, sum(cost_usd) AS cost_usd\nFROM events\nWHERE $__timeFilter(time) AND event_name = 'api_request'\nGROUP BY model\nORDER BY cost_usd DESC",
    },
  },
};

export const QUERY_TYPE_ORDER = Object.keys(QUERY_TYPES) as QueryType[];

/** Picker options; the backend's catalog (if loaded) supplies the descriptions. */
export function queryTypeOptions(catalog?: QueryTypeInfo[]): Array<SelectableValue<QueryType>> {
  const described = new Map(catalog?.map((c) => [c.queryType, c.description]));
  return QUERY_TYPE_ORDER.map((value) => ({
    value,
    label: QUERY_TYPES[value].label,
    description: described.get(value) ?? QUERY_TYPES[value].description,
  }));
}

const option = <T extends string>(value: T, label: string, description?: string): SelectableValue<T> => ({
  value,
  label,
  description,
});

export const MEASURES: Array<SelectableValue<string>> = [
  option('cost', 'Cost (USD)'),
  option('list_cost', 'List cost (USD)', 'Cost at list prices, for telemetry and imported history alike'),
  option('subagent_cost', 'Subagent cost (USD)', 'Cost of the model calls subagents made'),
  option('tokens', 'Tokens'),
  option('input_tokens', 'Input tokens'),
  option('output_tokens', 'Output tokens'),
  option('cache_read_tokens', 'Cache read tokens'),
  option('cache_creation_tokens', 'Cache creation tokens'),
  option('cache_creation_5m_tokens', 'Cache writes, 5 minutes', 'Claude Code 2.1.332+, from api_request events'),
  option('cache_creation_1h_tokens', 'Cache writes, 1 hour', 'Claude Code 2.1.332+; priced above 5-minute writes'),
  option('cache_hit_ratio', 'Cache hit ratio', 'cacheRead ÷ (input + cacheRead + cacheCreation)'),
  option('sessions', 'Sessions started'),
  option('active_sessions', 'Active sessions', 'Distinct sessions with any telemetry in the range'),
  option('active_time', 'Active time (s)'),
  option('lines_added', 'Lines added'),
  option('lines_removed', 'Lines removed'),
  option('commits', 'Commits'),
  option('pull_requests', 'Pull requests'),
  option('api_requests', 'API requests'),
  option('api_errors', 'API errors'),
  option('api_error_rate', 'API error rate', 'api_error ÷ (api_request + api_error)'),
  option('retries_exhausted', 'Retries exhausted'),
  option('refusals', 'Refusals'),
  option('tool_calls', 'Tool calls'),
  option('tool_failures', 'Tool failures'),
  option('prompts', 'Prompts'),
  option('queued_sends', 'Queued prompts', 'Prompts sent while the previous one was still running'),
  option('events', 'Events'),
];

/** Common grouping keys; any attribute or resource key may be typed in. */
export const GROUP_KEYS: Array<SelectableValue<string>> = [
  'model',
  'user.id',
  'user.email',
  'user.account_uuid',
  'team',
  'project',
  'cost_center',
  'terminal.type',
  'app.version',
  'tool_name',
  'event.name',
  'query_source',
  'query_class',
  'agent.name',
  'repository',
  'branch',
  'repository_owner',
  'provider',
  'permission_mode',
  'tool_source',
  'effort',
  'speed',
  'session.id',
].map((k) => ({ value: k, label: k }));

export const VARIABLE_KEYS: Array<SelectableValue<string>> = [
  option('session', 'Session'),
  option('model', 'Model'),
  option('user', 'User'),
  option('team', 'Team'),
  option('tool', 'Tool'),
  option('event_name', 'Event name'),
  option('terminal.type', 'Terminal type'),
  option('app.version', 'Claude Code version'),
  option('repository', 'Repository'),
  option('branch', 'Branch'),
  option('provider', 'Provider'),
];

export const EVENT_NAMES = [
  'user_prompt',
  'api_request',
  'api_error',
  'api_refusal',
  'api_retries_exhausted',
  'tool_result',
  'tool_decision',
].map((e) => ({ value: e, label: e }));

export const SOURCES: Array<SelectableValue<'metrics' | 'events'>> = [
  option('metrics', 'Metrics', 'claude_code.* counters; model = configured model'),
  option('events', 'Events', 'api_request and other log events; model = API model id'),
];

export const LATENCY_SOURCES: Array<SelectableValue<LatencySource>> = [
  option('events', 'Events', 'api_request events: every model call'),
  option('spans', 'Spans', 'llm_request spans (traces on): also time to first content'),
];

export const LATENCIES: Array<SelectableValue<Latency>> = [
  option('duration', 'Duration', 'The whole model call'),
  option('ttft', 'Time to first token'),
  option('first_content', 'Time to first content', 'llm_request spans only'),
];

export const FORMAT_LABELS: Record<Format, string> = { time_series: 'Time series', table: 'Table', logs: 'Logs' };

export const PERCENTILES = [50, 75, 90, 95, 99];

export const ANNOTATION_KINDS: Array<SelectableValue<AnnotationKind>> = [
  option('session_start', 'Session starts'),
  option('api_error', 'API errors'),
  option('tool_reject', 'Rejected tools'),
];

export const STAT_OUTPUTS: Array<SelectableValue<string>> = [
  option('all', 'All', 'value, previous, change and change ratio'),
  option('value', 'Value'),
  option('previous', 'Previous'),
  option('change', 'Change'),
  option('change_ratio', 'Change ratio', 'One number: alertable'),
];

/** A new query of `queryType`, keeping the filters and refId of `query`. */
export function switchQueryType(query: ClaudeCodeQuery, queryType: QueryType): ClaudeCodeQuery {
  const { refId, hide, datasource, sessions, users, models, teams, adhocFilters } = query;
  const kept = { refId, hide, datasource, sessions, users, models, teams, adhocFilters };
  const clean = Object.fromEntries(
    Object.entries(kept).filter(([, v]) => v !== undefined)
  ) as unknown as ClaudeCodeQuery;
  return { ...clean, queryType, ...QUERY_TYPES[queryType].defaults };
}

/** log_context: which side of the point. */
export const CONTEXT_DIRECTIONS: Array<SelectableValue<ContextDirection>> = [
  { value: 'before', label: 'Before' },
  { value: 'around', label: 'Around' },
  { value: 'after', label: 'After' },
];

/** usage_report periods. */
export const REPORT_PERIODS: Array<SelectableValue<ReportPeriod>> = [
  { value: 'day', label: 'Day' },
  { value: 'week', label: 'Week' },
  { value: 'month', label: 'Month' },
  { value: 'none', label: 'Whole range' },
];

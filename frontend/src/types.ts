import { DataSourceJsonData } from '@grafana/data';
import { DataQuery } from '@grafana/schema';

/** Every `queryType` the backend answers (see the `query-types` resource). */
export type QueryType =
  | 'stat'
  | 'breakdown'
  | 'cost_by_model'
  | 'sessions'
  | 'session_timeline'
  | 'prompts'
  | 'api_latency'
  | 'api_errors'
  | 'tool_success_rate'
  | 'tool_errors'
  | 'tool_decisions'
  | 'tool_costs'
  | 'productivity'
  | 'logs'
  | 'logs_volume'
  | 'log_context'
  | 'live'
  | 'trace'
  | 'traces'
  | 'event_counts'
  | 'repositories'
  | 'agents'
  | 'hooks'
  | 'mcp'
  | 'skills'
  | 'plugins'
  | 'managed_settings'
  | 'fleet'
  | 'budget'
  | 'usage_windows'
  | 'usage_report'
  | 'variable'
  | 'annotations'
  | 'sql';

export type Format = 'time_series' | 'table' | 'logs';
export type Source = 'metrics' | 'events';
export type StatOutput = 'all' | 'value' | 'previous' | 'change' | 'change_ratio';
export type Latency = 'duration' | 'ttft' | 'first_content';
export type LatencySource = 'events' | 'spans';
export type ReportPeriod = 'day' | 'week' | 'month' | 'none';
export type AnnotationKind = 'session_start' | 'api_error' | 'tool_reject';
export type ContextDirection = 'before' | 'after' | 'around';

export interface AdhocFilter {
  key: string;
  operator: string;
  value: string;
  values?: string[];
}

/**
 * The JSON a panel or alert rule stores. One flat shape: the backend reads the fields its
 * `queryType` needs and ignores the rest, so switching types in the editor keeps shared options.
 */
export interface ClaudeCodeQuery extends DataQuery {
  queryType?: QueryType;
  // filters every type accepts: a list, one value, or a variable such as `$session`
  sessions?: string[] | string;
  users?: string[] | string;
  models?: string[] | string;
  teams?: string[] | string;
  adhocFilters?: AdhocFilter[];
  valueField?: string;
  // per-type options
  measure?: string;
  /** metrics or events for cost and tokens; api_latency: events or spans. */
  source?: Source | LatencySource;
  compare?: 'previous_period';
  output?: StatOutput;
  groupBy?: string;
  format?: Format;
  limit?: number;
  percentiles?: number[];
  latencies?: Latency[];
  byStatusCode?: boolean;
  sessionId?: string;
  eventNames?: string[];
  search?: string;
  traceId?: string;
  promptId?: string;
  /** log_context: a point in a session (epoch ms and the event's sequence) or a span. */
  time?: number | string;
  sequence?: number;
  spanId?: string;
  direction?: ContextDirection;
  /** traces: search filters. */
  minDurationMs?: number;
  errorsOnly?: boolean;
  tool?: string;
  key?: string;
  kinds?: AnnotationKind[];
  rawSql?: string;
  /** usage_report: local day, week or month (none: the whole range), in an IANA time zone. */
  period?: ReportPeriod;
  timezone?: string;
  breakdown?: boolean;
  totals?: boolean;
}

/** A template variable's query (the variable editor stores only these). */
export interface VariableQuery extends DataQuery {
  key: string;
  limit?: number;
}

export const DEFAULT_QUERY: Partial<ClaudeCodeQuery> = {
  queryType: 'stat',
  measure: 'cost',
};

/** How Claude Code should reach the OTLP receiver, for the generated configuration. */
export type OtlpProtocol = 'grpc' | 'http/protobuf' | 'http/json';

/** Per-datasource settings (jsonData). */
export interface ClaudeCodeOptions extends DataSourceJsonData {
  /** The URL Claude Code sends to, as reachable from developer machines. */
  otlpEndpoint?: string;
  otlpProtocol?: OtlpProtocol;
  /** Days of history to keep; 0 or unset keeps everything. */
  retentionDays?: number;
  /** Most data to keep, in GB; the oldest goes first. 0 or unset: no size limit. */
  retentionMaxSizeGB?: number;
  /** Extra resource attributes suggested in the generated configuration, e.g. `team=platform`. */
  resourceAttributes?: string;
  logUserPrompts?: boolean;
  logToolDetails?: boolean;
  enableTraces?: boolean;
  /** Claude Code 2.1.332+: put the git repository on every record (OTEL_METRICS_INCLUDE_REPOSITORY). */
  includeRepository?: boolean;
  /**
   * The lowest Grafana role that reads prompts, responses, tool details, commands, file paths,
   * raw API bodies and error messages; lower roles get them hidden. Unset: Admin.
   */
  contentRole?: ContentRole;
}

export type ContentRole = 'Viewer' | 'Editor' | 'Admin';

/** Secure settings: sent to the backend only, never back to the browser. */
export interface ClaudeCodeSecureOptions {
  ingestToken?: string;
}

/** A listener as the `endpoints` resource reports it. */
export interface ListenerState {
  state: 'starting' | 'listening' | 'failed';
  address?: string;
  error?: string;
}

/** The listeners' TLS as the `endpoints` resource reports it (absent: plaintext). */
export interface ListenerTls {
  client_certificates: 'required' | 'not asked';
  client_subjects?: string[];
  certificate_subject: string;
  certificate_expires: string;
  certificate_days_left: number;
  reload_error?: string;
}

export interface Endpoints {
  grpc: ListenerState;
  http: ListenerState;
  tls?: ListenerTls;
}

export interface QueryTypeInfo {
  queryType: QueryType;
  description: string;
  example: Record<string, unknown>;
}

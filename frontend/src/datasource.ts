import {
  AdHocVariableFilter,
  CoreApp,
  CustomVariableSupport,
  DataQueryRequest,
  DataQueryResponse,
  DataSourceInstanceSettings,
  DataSourceWithLogsContextSupport,
  DataSourceWithQueryModificationSupport,
  DataSourceWithSupplementaryQueriesSupport,
  DataSourceWithToggleableQueryFiltersSupport,
  dateTime,
  LogRowContextOptions,
  LogRowModel,
  MetricFindValue,
  QueryFilterOptions,
  QueryFixAction,
  ScopedVars,
  SupplementaryQueryOptions,
  SupplementaryQueryType,
  ToggleFilterAction,
} from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv, TemplateSrv } from '@grafana/runtime';
import { lastValueFrom, Observable } from 'rxjs';

import { VariableQueryEditor } from './components/VariableQueryEditor';
import * as explore from './explore';
import { GROUP_KEYS } from './querySpec';
import {
  AdhocFilter,
  ClaudeCodeOptions,
  ClaudeCodeQuery,
  DEFAULT_QUERY,
  Endpoints,
  QueryTypeInfo,
  VariableQuery,
} from './types';

// Separates the values of a multi-value variable while interpolating; never inside a value.
const SEPARATOR = '\u001f';

/**
 * Fields holding one text value that may contain `$variables`. In raw SQL `${var:sqlstring}`
 * quotes values safely; a bare `$var` is replaced as written.
 */
const TEXT_FIELDS = [
  'sessionId',
  'promptId',
  'traceId',
  'spanId',
  'tool',
  'search',
  'groupBy',
  'key',
  'valueField',
  'rawSql',
] as const;
/** Filter fields: lists whose items may be multi-value variables. */
const LIST_FIELDS = ['sessions', 'users', 'models', 'teams'] as const;

export class DataSource
  extends DataSourceWithBackend<ClaudeCodeQuery, ClaudeCodeOptions>
  implements
    DataSourceWithSupplementaryQueriesSupport<ClaudeCodeQuery>,
    DataSourceWithLogsContextSupport<ClaudeCodeQuery>,
    DataSourceWithQueryModificationSupport<ClaudeCodeQuery>,
    DataSourceWithToggleableQueryFiltersSupport<ClaudeCodeQuery>
{
  constructor(
    instanceSettings: DataSourceInstanceSettings<ClaudeCodeOptions>,
    private readonly templateSrv: TemplateSrv = getTemplateSrv()
  ) {
    super(instanceSettings);
    this.variables = new ClaudeCodeVariableSupport(this);
    // annotations use the normal query editor; the backend answers `annotations` (and any query
    // with time/title/text columns)
    this.annotations = {
      prepareAnnotation: (annotation) => {
        const target = annotation.target as ClaudeCodeQuery | undefined;
        if (!target?.queryType) {
          annotation.target = {
            refId: 'Anno',
            queryType: 'annotations',
            kinds: ['session_start', 'api_error', 'tool_reject'],
          } as ClaudeCodeQuery;
        }
        return annotation;
      },
    };
  }

  /** Explore's live mode turns logs queries into live tails; the backend answers with a Grafana Live channel. */
  query(request: DataQueryRequest<ClaudeCodeQuery>): Observable<DataQueryResponse> {
    if (request.liveStreaming) {
      return super.query({ ...request, targets: request.targets.map(explore.liveQuery) });
    }
    return super.query(request);
  }

  getDefaultQuery(_: CoreApp): Partial<ClaudeCodeQuery> {
    return DEFAULT_QUERY;
  }

  /** Skips queries that cannot run yet instead of showing an error while they are being typed. */
  filterQuery(query: ClaudeCodeQuery): boolean {
    if (query.hide) {
      return false;
    }
    switch (query.queryType) {
      case 'session_timeline':
        return !!query.sessionId;
      case 'sql':
        return !!query.rawSql?.trim();
      case 'trace':
        return !!(query.traceId || query.promptId);
      case 'log_context':
        return !!(query.spanId || (query.sessionId && query.time !== undefined));
      case 'variable':
        return !!query.key;
      case 'stat':
      case 'breakdown':
        return !!query.measure;
      default:
        return true;
    }
  }

  /**
   * Resolves dashboard variables and ad hoc filters in the frontend. Alert rules never get here,
   * so the backend also accepts the raw `'a','b'` and `$__all` forms.
   */
  applyTemplateVariables(
    query: ClaudeCodeQuery,
    scopedVars: ScopedVars,
    filters?: AdHocVariableFilter[]
  ): ClaudeCodeQuery {
    const out: ClaudeCodeQuery = { ...query };
    for (const field of TEXT_FIELDS) {
      const value = query[field];
      if (typeof value === 'string') {
        out[field] = this.templateSrv.replace(value, scopedVars);
      }
    }
    for (const field of LIST_FIELDS) {
      if (query[field] !== undefined) {
        out[field] = this.interpolateList(query[field], scopedVars);
      }
    }
    if (query.eventNames) {
      out.eventNames = this.interpolateList(query.eventNames, scopedVars);
    }
    const adhoc: AdhocFilter[] = (query.adhocFilters ?? []).map((f) => ({
      ...f,
      key: this.templateSrv.replace(f.key, scopedVars),
      value: this.templateSrv.replace(f.value ?? '', scopedVars),
    }));
    for (const f of filters ?? []) {
      adhoc.push({ key: f.key, operator: f.operator, value: f.value, ...(f.values ? { values: f.values } : {}) });
    }
    if (adhoc.length > 0) {
      out.adhocFilters = adhoc;
    }
    return out;
  }

  /**
   * Turns `['$model', 'x']` or `'$model,x'` into a flat list of values: multi-value variables
   * expand to one item per value, "All" keeps its all-value (`$__all`/`*`) for the backend.
   */
  interpolateList(value: string[] | string | undefined, scopedVars: ScopedVars): string[] {
    const items = Array.isArray(value) ? value : (value ?? '').split(',');
    return items
      .flatMap((item) =>
        this.templateSrv
          .replace(item.trim(), scopedVars, (v: string | string[]) => (Array.isArray(v) ? v.join(SEPARATOR) : v))
          .split(SEPARATOR)
      )
      .map((v) => v.trim())
      .filter((v) => v !== '');
  }

  // Explore: the logs volume of a logs query
  getSupportedSupplementaryQueryTypes(): SupplementaryQueryType[] {
    return [SupplementaryQueryType.LogsVolume];
  }

  getSupplementaryQuery(options: SupplementaryQueryOptions, query: ClaudeCodeQuery): ClaudeCodeQuery | undefined {
    return explore.supplementaryQuery(options, query);
  }

  getSupplementaryRequest(
    type: SupplementaryQueryType,
    request: DataQueryRequest<ClaudeCodeQuery>
  ): DataQueryRequest<ClaudeCodeQuery> | undefined {
    const targets = request.targets
      .map((q) => explore.supplementaryQuery({ type } as SupplementaryQueryOptions, q))
      .filter((q): q is ClaudeCodeQuery => q !== undefined);
    return targets.length > 0 ? { ...request, targets, requestId: `${request.requestId}_log_volume` } : undefined;
  }

  // Explore: a log line's context, the events before and after it in its session
  async getLogRowContextQuery(row: LogRowModel, options?: LogRowContextOptions): Promise<ClaudeCodeQuery | null> {
    return explore.contextQuery(row, options) ?? null;
  }

  async getLogRowContext(row: LogRowModel, options?: LogRowContextOptions): Promise<DataQueryResponse> {
    const target = explore.contextQuery(row, options);
    if (!target) {
      return { data: [] };
    }
    // the backend reads the whole session; the range only has to be valid
    const at = dateTime(row.timeEpochMs);
    const request = {
      app: CoreApp.Explore,
      requestId: `log-context-${row.uid}`,
      targets: [target],
      range: { from: at, to: at, raw: { from: at, to: at } },
      interval: '1s',
      intervalMs: 1000,
      scopedVars: {},
      timezone: 'utc',
      startTime: Date.now(),
    } as DataQueryRequest<ClaudeCodeQuery>;
    return lastValueFrom(this.query(request));
  }

  // Explore: filter for / out a value from log details
  modifyQuery(query: ClaudeCodeQuery, action: QueryFixAction): ClaudeCodeQuery {
    return explore.modifyQuery(query, action);
  }

  getSupportedQueryModifications(): string[] {
    return explore.QUERY_MODIFICATIONS;
  }

  toggleQueryFilter(query: ClaudeCodeQuery, filter: ToggleFilterAction): ClaudeCodeQuery {
    return explore.toggleQueryFilter(query, filter);
  }

  queryHasFilter(query: ClaudeCodeQuery, filter: QueryFilterOptions): boolean {
    return explore.queryHasFilter(query, { key: filter.key, value: filter.value });
  }

  /** The backend's catalog of query types, for the editor's picker. */
  getQueryTypes(): Promise<QueryTypeInfo[]> {
    return this.getResource<QueryTypeInfo[]>('query-types');
  }

  /** Where the OTLP listeners are (for the generated Claude Code configuration). */
  getEndpoints(): Promise<Endpoints> {
    return this.getResource<Endpoints>('endpoints');
  }

  /** Distinct values of a key in the dashboard's range (ad hoc filters, editors). */
  async getValues(key: string, range?: { from: number; to: number }, limit = 1000): Promise<MetricFindValue[]> {
    const params: Record<string, string | number> = { key, limit };
    if (range) {
      params.from = range.from;
      params.to = range.to;
    }
    return this.getResource<MetricFindValue[]>('variables', params);
  }

  // ad hoc filters: the common keys; any attribute key also works when typed in
  async getTagKeys(): Promise<MetricFindValue[]> {
    return GROUP_KEYS.map((k) => ({ text: k.value! }));
  }

  async getTagValues(options: { key: string; timeRange?: { from: { valueOf(): number }; to: { valueOf(): number } } }) {
    const range = options.timeRange
      ? { from: options.timeRange.from.valueOf(), to: options.timeRange.to.valueOf() }
      : undefined;
    return this.getValues(options.key, range);
  }
}

/** Template variables: a `variable` query run through the backend like any other query. */
export class ClaudeCodeVariableSupport extends CustomVariableSupport<DataSource, VariableQuery, ClaudeCodeQuery> {
  editor = VariableQueryEditor;

  constructor(private readonly datasource: DataSource) {
    super();
  }

  query(request: DataQueryRequest<VariableQuery>): Observable<DataQueryResponse> {
    const targets: ClaudeCodeQuery[] = request.targets.map((t) => ({
      refId: t.refId || 'variable',
      queryType: 'variable',
      key: t.key,
      limit: t.limit,
    }));
    return this.datasource.query({ ...request, targets });
  }
}

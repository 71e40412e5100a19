import {
  DataFrame,
  LogRowContextOptions,
  LogRowContextQueryDirection,
  LogRowModel,
  QueryFixAction,
  SupplementaryQueryOptions,
  SupplementaryQueryType,
  ToggleFilterAction,
} from '@grafana/data';

import { AdhocFilter, ClaudeCodeQuery } from './types';

/** Explore's refId prefix for a logs query's volume (as Loki's), so Grafana pairs the two. */
export const VOLUME_REF_PREFIX = 'log-volume-';

/** Query modifications from log details: filter for / out a value, search for a text. */
export const QUERY_MODIFICATIONS = ['ADD_FILTER', 'ADD_FILTER_OUT', 'ADD_STRING_FILTER'];

/**
 * The logs volume of a `logs` query: the same events and filters, counted per level and
 * interval (`logs_volume`). Other query types have no volume.
 */
export function supplementaryQuery(
  options: SupplementaryQueryOptions,
  query: ClaudeCodeQuery
): ClaudeCodeQuery | undefined {
  if (options.type !== SupplementaryQueryType.LogsVolume || query.queryType !== 'logs' || query.hide) {
    return undefined;
  }
  const { limit: _limit, ...rest } = query;
  return { ...rest, refId: `${VOLUME_REF_PREFIX}${query.refId}`, queryType: 'logs_volume' };
}

/**
 * Explore's live mode: a `logs` query follows new events instead (`live`), of its session when
 * it filters on exactly one.
 */
export function liveQuery(query: ClaudeCodeQuery): ClaudeCodeQuery {
  if (query.queryType !== 'logs') {
    return query;
  }
  const sessions = Array.isArray(query.sessions) ? query.sessions : query.sessions ? [query.sessions] : [];
  return {
    refId: query.refId,
    queryType: 'live',
    ...(sessions.length === 1 ? { sessionId: sessions[0] } : {}),
  };
}

/** A field's value at a row of a log line's frame, as text. */
function valueAt(frame: DataFrame, name: string, row: number): string | undefined {
  const value = frame.fields.find((f) => f.name === name)?.values[row];
  return value === null || value === undefined || value === '' ? undefined : String(value);
}

/**
 * The context of a log line: the events before (BACKWARD) or after (FORWARD) it in its
 * session, ordered by time and `event.sequence`. `undefined` for a line without a session.
 */
export function contextQuery(row: LogRowModel, options?: LogRowContextOptions): ClaudeCodeQuery | undefined {
  const sessionId = valueAt(row.dataFrame, 'session_id', row.rowIndex);
  if (!sessionId) {
    return undefined;
  }
  const sequence = valueAt(row.dataFrame, 'event_sequence', row.rowIndex);
  // epoch ms with the µs the store keeps; Grafana gives ns as text
  const ns = String(row.timeEpochNs ?? '');
  const time = /^\d{4,}$/.test(ns) ? Number(ns.slice(0, -3)) / 1000 : row.timeEpochMs;
  return {
    refId: `log-context-${row.rowIndex}`,
    queryType: 'log_context',
    sessionId,
    time,
    ...(sequence !== undefined ? { sequence: Number(sequence) } : {}),
    direction: options?.direction === LogRowContextQueryDirection.Forward ? 'after' : 'before',
    limit: options?.limit ?? 50,
  };
}

function sameFilter(f: AdhocFilter, key: string, value: string, operator?: string) {
  return f.key === key && f.value === value && (operator === undefined || f.operator === operator);
}

/** Adds `key = value` (or `!=`), replacing the opposite filter on the same value. */
function withFilter(query: ClaudeCodeQuery, key: string, value: string, operator: '=' | '!='): ClaudeCodeQuery {
  const others = (query.adhocFilters ?? []).filter((f) => !sameFilter(f, key, value));
  return { ...query, adhocFilters: [...others, { key, operator, value }] };
}

/** Log details' "filter for value" / "filter out value" and "search for this text". */
export function modifyQuery(query: ClaudeCodeQuery, action: QueryFixAction): ClaudeCodeQuery {
  const key = action.options?.key;
  const value = action.options?.value;
  switch (action.type) {
    case 'ADD_FILTER':
    case 'ADD_FILTER_OUT':
      if (!key || value === undefined) {
        return query;
      }
      return withFilter(query, key, value, action.type === 'ADD_FILTER' ? '=' : '!=');
    case 'ADD_STRING_FILTER':
      return value ? { ...query, search: value } : query;
    default:
      return query;
  }
}

/** Whether a query keeps only `key = value` (log details show the filter as on). */
export function queryHasFilter(query: ClaudeCodeQuery, filter: { key: string; value: string }): boolean {
  return (query.adhocFilters ?? []).some((f) => sameFilter(f, filter.key, filter.value, '='));
}

/** Toggles a filter: on when absent (or the opposite is set), off when present. */
export function toggleQueryFilter(query: ClaudeCodeQuery, filter: ToggleFilterAction): ClaudeCodeQuery {
  const { key, value } = filter.options;
  if (!key || value === undefined) {
    return query;
  }
  const operator = filter.type === 'FILTER_FOR' ? '=' : '!=';
  if ((query.adhocFilters ?? []).some((f) => sameFilter(f, key, value, operator))) {
    const adhocFilters = (query.adhocFilters ?? []).filter((f) => !sameFilter(f, key, value, operator));
    return { ...query, adhocFilters };
  }
  return withFilter(query, key, value, operator);
}

import {
  CoreApp,
  createDataFrame,
  DataQueryRequest,
  dateTime,
  FieldType,
  LogRowContextQueryDirection,
  LogRowModel,
  SupplementaryQueryType,
} from '@grafana/data';
import { DataSourceWithBackend } from '@grafana/runtime';
import { of } from 'rxjs';

import { makeDataSource } from './testUtils';
import { ClaudeCodeQuery } from './types';

const logsQuery: ClaudeCodeQuery = {
  refId: 'A',
  queryType: 'logs',
  eventNames: ['api_error'],
  search: 'timeout',
  sessions: ['s-1'],
  limit: 500,
};

function request(targets: ClaudeCodeQuery[]): DataQueryRequest<ClaudeCodeQuery> {
  const at = dateTime(1_767_225_600_000);
  return {
    app: CoreApp.Explore,
    requestId: 'explore_left',
    targets,
    range: { from: at, to: at, raw: { from: 'now-1h', to: 'now' } },
    interval: '1m',
    intervalMs: 60_000,
    scopedVars: {},
    timezone: 'utc',
    startTime: 0,
  };
}

/** A log line as Explore builds it from a `logs` frame. */
function logRow(fields: Record<string, unknown>, timeEpochNs = '1767225600123456789'): LogRowModel {
  const frame = createDataFrame({
    refId: 'A',
    fields: Object.entries(fields).map(([name, value]) => ({
      name,
      type: typeof value === 'number' ? FieldType.number : FieldType.string,
      values: [value],
    })),
  });
  return {
    dataFrame: frame,
    rowIndex: 0,
    timeEpochNs,
    timeEpochMs: 1_767_225_600_123,
    uid: 'A_1',
  } as unknown as LogRowModel;
}

describe('logs volume (Explore supplementary query)', () => {
  const ds = makeDataSource();

  it('is offered for logs volume only', () => {
    expect(ds.getSupportedSupplementaryQueryTypes()).toEqual([SupplementaryQueryType.LogsVolume]);
  });

  it('counts the events of a logs query, with its filters, per level', () => {
    expect(ds.getSupplementaryQuery({ type: SupplementaryQueryType.LogsVolume }, logsQuery)).toEqual({
      refId: 'log-volume-A',
      queryType: 'logs_volume',
      eventNames: ['api_error'],
      search: 'timeout',
      sessions: ['s-1'],
    });
  });

  it('has none for other query types, hidden queries or log samples', () => {
    const volume = { type: SupplementaryQueryType.LogsVolume } as const;
    expect(ds.getSupplementaryQuery(volume, { refId: 'B', queryType: 'sessions' })).toBeUndefined();
    expect(ds.getSupplementaryQuery(volume, { ...logsQuery, hide: true })).toBeUndefined();
    expect(ds.getSupplementaryQuery({ type: SupplementaryQueryType.LogsSample }, logsQuery)).toBeUndefined();
  });

  it('turns a request into the volume request of its logs queries', () => {
    const r = ds.getSupplementaryRequest(
      SupplementaryQueryType.LogsVolume,
      request([logsQuery, { refId: 'B', queryType: 'stat', measure: 'cost' }])
    );
    expect(r?.targets.map((t) => [t.refId, t.queryType])).toEqual([['log-volume-A', 'logs_volume']]);
    expect(r?.range.from.valueOf()).toBe(1_767_225_600_000);
    expect(ds.getSupplementaryRequest(SupplementaryQueryType.LogsVolume, request([]))).toBeUndefined();
  });
});

describe('log context', () => {
  const ds = makeDataSource();

  it('asks for the events before a line in its session, by time and sequence', async () => {
    const row = logRow({ session_id: 's-1', event_sequence: 7 });
    const q = await ds.getLogRowContextQuery(row, { direction: LogRowContextQueryDirection.Backward, limit: 10 });
    expect(q).toEqual({
      refId: 'log-context-0',
      queryType: 'log_context',
      sessionId: 's-1',
      time: 1_767_225_600_123.456,
      sequence: 7,
      direction: 'before',
      limit: 10,
    });
  });

  it('asks for the events after it going forward, without a sequence when the event has none', async () => {
    const row = logRow({ session_id: 's-1' });
    const q = await ds.getLogRowContextQuery(row, { direction: LogRowContextQueryDirection.Forward });
    expect(q).toMatchObject({ direction: 'after', limit: 50 });
    expect(q).not.toHaveProperty('sequence');
  });

  it('has no context for a line without a session', async () => {
    expect(await ds.getLogRowContextQuery(logRow({ model: 'x' }))).toBeNull();
    expect(await ds.getLogRowContext(logRow({ model: 'x' }))).toEqual({ data: [] });
  });

  it('runs the context query through the backend', async () => {
    const query = jest.spyOn(ds, 'query').mockReturnValue(of({ data: ['frame'] }));
    const response = await ds.getLogRowContext(logRow({ session_id: 's-1', event_sequence: 7 }), {
      direction: LogRowContextQueryDirection.Backward,
    });
    expect(response.data).toEqual(['frame']);
    const sent = query.mock.calls[0][0] as DataQueryRequest<ClaudeCodeQuery>;
    expect(sent.targets[0]).toMatchObject({ queryType: 'log_context', sessionId: 's-1', direction: 'before' });
  });
});

describe('filter for / out from log details', () => {
  const ds = makeDataSource();

  it('adds key = value and key != value, replacing the opposite filter', () => {
    const q1 = ds.modifyQuery(logsQuery, { type: 'ADD_FILTER', options: { key: 'tool_name', value: 'Bash' } });
    expect(q1.adhocFilters).toEqual([{ key: 'tool_name', operator: '=', value: 'Bash' }]);
    const q2 = ds.modifyQuery(q1, { type: 'ADD_FILTER_OUT', options: { key: 'tool_name', value: 'Bash' } });
    expect(q2.adhocFilters).toEqual([{ key: 'tool_name', operator: '!=', value: 'Bash' }]);
    const q3 = ds.modifyQuery(q2, { type: 'ADD_FILTER', options: { key: 'severity', value: 'error' } });
    expect(q3.adhocFilters).toHaveLength(2);
  });

  it('searches for a selected text and ignores what it does not know', () => {
    expect(ds.modifyQuery(logsQuery, { type: 'ADD_STRING_FILTER', options: { value: 'rate limit' } }).search).toBe(
      'rate limit'
    );
    expect(ds.modifyQuery(logsQuery, { type: 'ADD_STRING_FILTER_OUT', options: { value: 'x' } })).toBe(logsQuery);
    expect(ds.modifyQuery(logsQuery, { type: 'ADD_FILTER', options: { value: 'x' } })).toBe(logsQuery);
    expect(ds.getSupportedQueryModifications()).toEqual(['ADD_FILTER', 'ADD_FILTER_OUT', 'ADD_STRING_FILTER']);
  });

  it('toggles filters and reports which are on', () => {
    const on = ds.toggleQueryFilter(logsQuery, { type: 'FILTER_FOR', options: { key: 'model', value: 'opus' } });
    expect(ds.queryHasFilter(on, { key: 'model', value: 'opus' })).toBe(true);
    const off = ds.toggleQueryFilter(on, { type: 'FILTER_FOR', options: { key: 'model', value: 'opus' } });
    expect(off.adhocFilters).toEqual([]);
    expect(ds.queryHasFilter(off, { key: 'model', value: 'opus' })).toBe(false);
    const out = ds.toggleQueryFilter(on, { type: 'FILTER_OUT', options: { key: 'model', value: 'opus' } });
    expect(out.adhocFilters).toEqual([{ key: 'model', operator: '!=', value: 'opus' }]);
    expect(ds.queryHasFilter(out, { key: 'model', value: 'opus' })).toBe(false);
  });
});

describe("Explore's live mode", () => {
  const ds = makeDataSource();

  it('follows new events of the logs query, of its session when it has one', async () => {
    const backend = jest.spyOn(DataSourceWithBackend.prototype, 'query').mockReturnValue(of({ data: [] }));
    ds.query({ ...request([logsQuery, { refId: 'B', queryType: 'stat', measure: 'cost' }]), liveStreaming: true });
    const sent = backend.mock.calls[0][0] as DataQueryRequest<ClaudeCodeQuery>;
    expect(sent.targets).toEqual([
      { refId: 'A', queryType: 'live', sessionId: 's-1' },
      { refId: 'B', queryType: 'stat', measure: 'cost' },
    ]);
    ds.query({ ...request([{ refId: 'A', queryType: 'logs', sessions: ['a', 'b'] }]), liveStreaming: true });
    expect((backend.mock.calls[1][0] as DataQueryRequest<ClaudeCodeQuery>).targets).toEqual([
      { refId: 'A', queryType: 'live' },
    ]);
    // without live mode the queries go as they are
    ds.query(request([logsQuery]));
    expect((backend.mock.calls[2][0] as DataQueryRequest<ClaudeCodeQuery>).targets).toEqual([logsQuery]);
    backend.mockRestore();
  });
});

import { DataQueryRequest, dateTime } from '@grafana/data';
import { of } from 'rxjs';

import { ClaudeCodeVariableSupport } from './datasource';
import { makeDataSource } from './testUtils';
import { ClaudeCodeQuery, VariableQuery } from './types';

describe('applyTemplateVariables', () => {
  const ds = makeDataSource({
    session: 'abc-123',
    model: ['claude-opus-4-8', 'claude-sonnet-4-6'],
    team: 'platform',
    prompt: 'p-1',
    key: 'terminal.type',
  });

  it('resolves single values in text fields', () => {
    const q = ds.applyTemplateVariables(
      { refId: 'A', queryType: 'session_timeline', sessionId: '$session', promptId: '${prompt}', groupBy: '$key' },
      {}
    );
    expect(q.sessionId).toBe('abc-123');
    expect(q.promptId).toBe('p-1');
    expect(q.groupBy).toBe('terminal.type');
  });

  it('expands multi-value variables in filter lists to one item per value', () => {
    const q = ds.applyTemplateVariables(
      { refId: 'A', queryType: 'stat', measure: 'cost', models: ['$model'], teams: '$team, data', users: [] },
      {}
    );
    expect(q.models).toEqual(['claude-opus-4-8', 'claude-sonnet-4-6']);
    expect(q.teams).toEqual(['platform', 'data']);
    expect(q.users).toEqual([]);
    // fields the query did not set stay unset
    expect(q).not.toHaveProperty('sessions');
  });

  it("keeps the dashboards' ${var:sqlstring} form whole for the backend to split", () => {
    const q = ds.applyTemplateVariables({ refId: 'A', queryType: 'stat', models: '${model:sqlstring}' }, {});
    expect(q.models).toEqual(["'claude-opus-4-8','claude-sonnet-4-6'"]);
  });

  it('passes "All" through for the backend and leaves unknown variables as written', () => {
    const all = makeDataSource({ model: '$__all' });
    const q = all.applyTemplateVariables({ refId: 'A', queryType: 'stat', models: ['$model'], teams: ['$nope'] }, {});
    expect(q.models).toEqual(['$__all']);
    expect(q.teams).toEqual(['$nope']);
  });

  it('uses scoped variables (repeated panels) before dashboard ones', () => {
    const q = ds.applyTemplateVariables(
      { refId: 'A', queryType: 'session_timeline', sessionId: '$session' },
      {
        session: { text: 'x', value: 'scoped-session' },
      }
    );
    expect(q.sessionId).toBe('scoped-session');
  });

  it('keeps raw SQL quoting to the sqlstring format', () => {
    const q = ds.applyTemplateVariables(
      { refId: 'A', queryType: 'sql', rawSql: 'SELECT 1 FROM events WHERE model IN (${model:sqlstring})' },
      {}
    );
    expect(q.rawSql).toBe("SELECT 1 FROM events WHERE model IN ('claude-opus-4-8','claude-sonnet-4-6')");
  });

  it('merges dashboard ad hoc filters with the query ones', () => {
    const q = ds.applyTemplateVariables(
      {
        refId: 'A',
        queryType: 'breakdown',
        measure: 'tokens',
        adhocFilters: [{ key: '$key', operator: '=', value: 'xterm' }],
      },
      {},
      [
        { key: 'team', operator: '=~', value: 'plat.*' },
        { key: 'model', operator: '=|', value: '', values: ['a', 'b'] },
      ]
    );
    expect(q.adhocFilters).toEqual([
      { key: 'terminal.type', operator: '=', value: 'xterm' },
      { key: 'team', operator: '=~', value: 'plat.*' },
      { key: 'model', operator: '=|', value: '', values: ['a', 'b'] },
    ]);
  });

  it('does not add ad hoc filters when there are none', () => {
    const q = ds.applyTemplateVariables({ refId: 'A', queryType: 'sessions' }, {}, []);
    expect(q).toEqual({ refId: 'A', queryType: 'sessions' });
  });
});

describe('filterQuery', () => {
  const ds = makeDataSource();
  it.each<[Partial<ClaudeCodeQuery>, boolean]>([
    [{ queryType: 'sessions' }, true],
    [{ queryType: 'sessions', hide: true }, false],
    [{ queryType: 'session_timeline' }, false],
    [{ queryType: 'session_timeline', sessionId: 's' }, true],
    [{ queryType: 'sql', rawSql: '  ' }, false],
    [{ queryType: 'sql', rawSql: 'SELECT 1' }, true],
    [{ queryType: 'trace' }, false],
    [{ queryType: 'trace', promptId: 'p' }, true],
    [{ queryType: 'stat' }, false],
    [{ queryType: 'stat', measure: 'cost' }, true],
  ])('%j runs: %s', (query, expected) => {
    expect(ds.filterQuery({ refId: 'A', ...query })).toBe(expected);
  });
});

describe('template variable support', () => {
  it('sends a variable query through the backend', () => {
    const ds = makeDataSource();
    expect(ds.variables).toBeInstanceOf(ClaudeCodeVariableSupport);
    const spy = jest.spyOn(ds, 'query').mockReturnValue(of({ data: [] }));
    const request = {
      targets: [{ refId: '', key: 'model', limit: 20 }],
      range: { from: dateTime(0), to: dateTime(1000), raw: { from: '0', to: '1000' } },
    } as unknown as DataQueryRequest<VariableQuery>;
    new ClaudeCodeVariableSupport(ds).query(request);
    expect(spy).toHaveBeenCalledWith(
      expect.objectContaining({ targets: [{ refId: 'variable', queryType: 'variable', key: 'model', limit: 20 }] })
    );
  });
});

describe('annotations', () => {
  it('defaults a new annotation to the annotations query type', () => {
    const ds = makeDataSource();
    const prepared = ds.annotations!.prepareAnnotation!({ name: 'a', enable: true, iconColor: 'red' } as never);
    expect(prepared.target).toMatchObject({
      queryType: 'annotations',
      kinds: ['session_start', 'api_error', 'tool_reject'],
    });
  });
});

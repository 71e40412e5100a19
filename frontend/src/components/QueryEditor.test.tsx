import React from 'react';
import { act, render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import { makeDataSource } from '../testUtils';
import { ClaudeCodeQuery, QueryTypeInfo } from '../types';
import { QueryEditor } from './QueryEditor';

// Monaco does not run in jsdom; a textarea stands in for the SQL editor
jest.mock('@grafana/ui', () => ({
  ...jest.requireActual('@grafana/ui'),
  CodeEditor: ({ value, onBlur }: { value: string; onBlur: (v: string) => void }) => (
    <textarea aria-label="SQL" defaultValue={value} onBlur={(e) => onBlur(e.currentTarget.value)} />
  ),
}));

const catalog: QueryTypeInfo[] = [
  { queryType: 'breakdown', description: 'From the backend: a measure by any attribute.', example: {} },
];

async function setup(query: ClaudeCodeQuery) {
  const datasource = makeDataSource();
  jest.spyOn(datasource, 'getQueryTypes').mockResolvedValue(catalog);
  const onChange = jest.fn();
  const onRunQuery = jest.fn();
  const view = render(
    <QueryEditor query={query} datasource={datasource} onChange={onChange} onRunQuery={onRunQuery} />
  );
  // let the catalog request settle, as it does before anyone clicks
  await act(() => Promise.resolve());
  return { onChange, onRunQuery, view, datasource };
}

async function choose(label: string | RegExp, option: string) {
  await userEvent.click(screen.getByLabelText(label));
  await userEvent.click(await screen.findByText(option, { selector: 'span' }));
}

describe('QueryEditor', () => {
  it('switches query type, starting from that type defaults and keeping the filters', async () => {
    const { onChange, onRunQuery } = await setup({
      refId: 'A',
      queryType: 'stat',
      measure: 'cost',
      teams: ['platform'],
    });
    await choose('Query type', 'Breakdown');
    expect(onChange).toHaveBeenCalledWith({
      refId: 'A',
      teams: ['platform'],
      queryType: 'breakdown',
      measure: 'cost',
      groupBy: 'model',
      format: 'time_series',
      limit: 10,
    });
    expect(onRunQuery).toHaveBeenCalled();
  });

  it('shows the description from the backend catalog', async () => {
    await setup({ refId: 'A', queryType: 'breakdown', measure: 'cost' });
    expect(await screen.findByText('From the backend: a measure by any attribute.')).toBeInTheDocument();
  });

  it('offers the measure, source and previous-period comparison for stat', async () => {
    const { onChange } = await setup({ refId: 'A', queryType: 'stat', measure: 'cost' });
    await choose('Measure', 'API error rate');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ measure: 'api_error_rate' }));
    await userEvent.click(screen.getByText('Events'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ source: 'events' }));
    await userEvent.click(screen.getByLabelText('Compare with previous period'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ compare: 'previous_period' }));
    // the output picker only shows once comparing
    expect(screen.queryByLabelText('Output')).not.toBeInTheDocument();
  });

  it('lets a comparing stat return one alertable number', async () => {
    const { onChange } = await setup({ refId: 'A', queryType: 'stat', measure: 'cost', compare: 'previous_period' });
    await choose('Output', 'Change ratio');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ output: 'change_ratio' }));
  });

  it('stores comma-separated filters as lists and runs on blur', async () => {
    const { onChange, onRunQuery } = await setup({ refId: 'A', queryType: 'sessions' });
    const models = screen.getByLabelText('Models filter');
    await userEvent.type(models, 'a');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ models: ['a'] }));
    expect(onRunQuery).not.toHaveBeenCalled();
    await userEvent.tab();
    expect(onRunQuery).toHaveBeenCalled();
  });

  it('shows existing list filters as text', async () => {
    await setup({ refId: 'A', queryType: 'sessions', sessions: ['$session'], users: 'alice', limit: 50 });
    expect(screen.getByLabelText('Sessions filter')).toHaveValue('$session');
    expect(screen.getByLabelText('Users filter')).toHaveValue('alice');
    expect(screen.getByLabelText('Limit')).toHaveValue(50);
  });

  it('asks the session of a timeline', async () => {
    const { onChange } = await setup({ refId: 'A', queryType: 'session_timeline', sessionId: '' });
    await userEvent.type(screen.getByLabelText('Session id'), 'x');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ sessionId: 'x' }));
  });

  it('picks percentiles and the format for API latency', async () => {
    const { onChange } = await setup({ refId: 'A', queryType: 'api_latency', percentiles: [50, 95, 99] });
    expect(screen.getByText('p95')).toBeInTheDocument();
    await userEvent.click(screen.getByText('Table'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ format: 'table' }));
  });

  it('picks latencies and spans as their source for API latency', async () => {
    const { onChange } = await setup({ refId: 'A', queryType: 'api_latency', latencies: ['duration', 'ttft'] });
    expect(screen.getByText('Time to first token')).toBeInTheDocument();
    await userEvent.click(screen.getByText('Spans'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ source: 'spans' }));
    await choose('Latencies', 'Time to first content');
    expect(onChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ latencies: ['duration', 'ttft', 'first_content'] })
    );
  });

  it('offers the Claude Code 2.1.332 query types and keys', async () => {
    const { onChange } = await setup({ refId: 'A', queryType: 'stat', measure: 'cost' });
    await choose('Query type', 'Repositories');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ queryType: 'repositories', limit: 100 }));
    await choose('Measure', 'Subagent cost (USD)');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ measure: 'subagent_cost' }));
  });

  it('edits raw SQL with a format selector that includes logs', async () => {
    const { onChange, onRunQuery } = await setup({ refId: 'A', queryType: 'sql', rawSql: 'SELECT 1', format: 'table' });
    expect(screen.queryByLabelText('Sessions filter')).not.toBeInTheDocument();
    const sql = screen.getByLabelText('SQL');
    await userEvent.clear(sql);
    await userEvent.type(sql, 'SELECT 2');
    await userEvent.tab();
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ rawSql: 'SELECT 2' }));
    expect(onRunQuery).toHaveBeenCalled();
    await userEvent.click(screen.getByText('Logs'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ format: 'logs' }));
  });

  it('switches to trace search with its defaults', async () => {
    const { onChange } = await setup({ refId: 'A', queryType: 'stat', measure: 'cost' });
    await choose('Query type', 'Trace search');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ refId: 'A', queryType: 'traces', limit: 100 }));
  });

  it('edits the trace search filters', async () => {
    const { onChange, onRunQuery } = await setup({ refId: 'A', queryType: 'traces', limit: 100 });
    await userEvent.type(screen.getByLabelText('Minimum duration'), '5');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ minDurationMs: 5 }));
    await userEvent.type(screen.getByLabelText('Tool'), 'B');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ tool: 'B' }));
    await userEvent.click(screen.getByLabelText('Errors only'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ errorsOnly: true }));
    expect(onRunQuery).toHaveBeenCalled();
  });

  it('asks the point of a log context: session and time, or a span, and the side', async () => {
    const { onChange } = await setup({ refId: 'A', queryType: 'log_context', direction: 'around', limit: 50 });
    await userEvent.type(screen.getByLabelText('Session id'), 's');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ sessionId: 's' }));
    await userEvent.type(screen.getByLabelText('Time'), '1');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ time: '1' }));
    await userEvent.type(screen.getByLabelText('Sequence'), '7');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ sequence: 7 }));
    await userEvent.type(screen.getByLabelText('Span id'), 'a');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ spanId: 'a' }));
    await userEvent.click(screen.getByText('Before'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ direction: 'before' }));
  });

  it('switches to a live tail', async () => {
    const { onChange } = await setup({ refId: 'A', queryType: 'stat', measure: 'cost' });
    await choose('Query type', 'Live');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ queryType: 'live' }));
  });

  it('follows one session live, or all when the session is empty', async () => {
    const { onChange } = await setup({ refId: 'A', queryType: 'live' });
    await userEvent.type(screen.getByLabelText('Session id'), 's');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ queryType: 'live', sessionId: 's' }));
  });

  it('filters the logs volume like the logs query', async () => {
    await setup({ refId: 'A', queryType: 'logs_volume', search: 'timeout' });
    expect(screen.getByLabelText('Search')).toHaveValue('timeout');
    expect(screen.queryByLabelText('Limit')).not.toBeInTheDocument();
  });

  it('works without the backend catalog', async () => {
    const datasource = makeDataSource();
    jest.spyOn(datasource, 'getQueryTypes').mockRejectedValue(new Error('offline'));
    render(
      <QueryEditor
        query={{ refId: 'A', queryType: 'tool_costs' }}
        datasource={datasource}
        onChange={jest.fn()}
        onRunQuery={jest.fn()}
      />
    );
    await act(() => Promise.resolve());
    await waitFor(() => expect(screen.getByText(/each call is charged the model call/)).toBeInTheDocument());
  });
});

import React, { ChangeEvent, useEffect, useState } from 'react';
import { QueryEditorProps, SelectableValue } from '@grafana/data';
import {
  CodeEditor,
  InlineField,
  InlineSwitch,
  Input,
  MultiSelect,
  RadioButtonGroup,
  Select,
  Stack,
  Text,
} from '@grafana/ui';

import { DataSource } from '../datasource';
import {
  ANNOTATION_KINDS,
  CONTEXT_DIRECTIONS,
  EVENT_NAMES,
  FORMAT_LABELS,
  GROUP_KEYS,
  LATENCIES,
  LATENCY_SOURCES,
  MEASURES,
  PERCENTILES,
  QUERY_TYPES,
  queryTypeOptions,
  REPORT_PERIODS,
  SOURCES,
  STAT_OUTPUTS,
  switchQueryType,
  VARIABLE_KEYS,
} from '../querySpec';
import {
  AnnotationKind,
  ClaudeCodeOptions,
  ClaudeCodeQuery,
  ContextDirection,
  Format,
  Latency,
  LatencySource,
  QueryType,
  QueryTypeInfo,
  ReportPeriod,
} from '../types';

type Props = QueryEditorProps<DataSource, ClaudeCodeQuery, ClaudeCodeOptions>;

interface TextOptionProps {
  label: string;
  /** The input's accessible name. */
  name: string;
  width: number;
  value?: string | number;
  tooltip?: string;
  labelWidth?: number;
  /** A non-negative number rather than text. */
  numeric?: boolean;
  onChange: (e: ChangeEvent<HTMLInputElement>) => void;
  onBlur: () => void;
}

/** A labelled text (or number) input that stores as typed and runs the query on blur. */
function TextOption({ label, name, width, value, tooltip, labelWidth, numeric, onChange, onBlur }: TextOptionProps) {
  return (
    <InlineField label={label} labelWidth={labelWidth} tooltip={tooltip}>
      <Input
        aria-label={name}
        type={numeric ? 'number' : undefined}
        min={numeric ? 0 : undefined}
        width={width}
        value={value ?? ''}
        onChange={onChange}
        onBlur={onBlur}
      />
    </InlineField>
  );
}

const LABEL_WIDTH = 16;

type ListField = 'sessions' | 'users' | 'models' | 'teams';

/** The filters every typed query accepts, as comma-separated lists. */
const FILTER_FIELDS: Array<{ field: ListField; label: string; tooltip: string; width: number }> = [
  { field: 'sessions', label: 'Sessions', tooltip: 'Ids or variables, comma-separated', width: 24 },
  { field: 'users', label: 'Users', tooltip: 'user.id, user.email or account uuid; comma-separated', width: 20 },
  { field: 'models', label: 'Models', tooltip: 'Model ids or variables, comma-separated', width: 20 },
  { field: 'teams', label: 'Teams', tooltip: 'The team resource attribute', width: 16 },
];

/** A list field shown as comma-separated text: `$session` or `a, b`. */
const listText = (v: string[] | string | undefined) => (Array.isArray(v) ? v.join(', ') : (v ?? ''));
const textList = (s: string) => {
  const items = s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  return items.length > 0 ? items : undefined;
};

/** Keeps typed-in values (variables, custom keys) selectable next to the known ones. */
function withCurrent(options: Array<SelectableValue<string>>, value?: string): Array<SelectableValue<string>> {
  return value && !options.some((o) => o.value === value) ? [...options, { value, label: value }] : options;
}

export function QueryEditor({ query, onChange, onRunQuery, datasource }: Props) {
  const [catalog, setCatalog] = useState<QueryTypeInfo[] | undefined>();
  useEffect(() => {
    let live = true;
    datasource
      .getQueryTypes()
      .then((c) => live && setCatalog(c))
      // the built-in descriptions are used when the catalog cannot be loaded
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [datasource]);

  const queryType: QueryType = query.queryType ?? 'stat';
  const spec = QUERY_TYPES[queryType] ?? QUERY_TYPES.stat;
  const has = (o: (typeof spec.options)[number]) => spec.options.includes(o);

  // selects and switches run at once; text inputs on blur
  const set = (patch: Partial<ClaudeCodeQuery>, run = true) => {
    onChange({ ...query, ...patch });
    if (run) {
      onRunQuery();
    }
  };
  const text = (field: keyof ClaudeCodeQuery) => (e: ChangeEvent<HTMLInputElement>) =>
    set({ [field]: e.currentTarget.value || undefined }, false);
  const number = (field: keyof ClaudeCodeQuery) => (e: ChangeEvent<HTMLInputElement>) => {
    const n = parseInt(e.currentTarget.value, 10);
    set({ [field]: Number.isFinite(n) && n >= 0 ? n : undefined }, false);
  };
  const list = (field: 'sessions' | 'users' | 'models' | 'teams') => (e: ChangeEvent<HTMLInputElement>) =>
    set({ [field]: textList(e.currentTarget.value) }, false);
  const run = () => onRunQuery();

  const formats = spec.formats ?? [];
  const description = catalog?.find((c) => c.queryType === queryType)?.description ?? spec.description;

  return (
    <Stack direction="column" gap={1}>
      <Stack wrap="wrap" gap={1} alignItems="center">
        <InlineField label="Query type" labelWidth={LABEL_WIDTH} htmlFor="cc-query-type">
          <Select
            inputId="cc-query-type"
            width={28}
            options={queryTypeOptions(catalog)}
            value={queryType}
            onChange={(v) => v.value && set(switchQueryType(query, v.value))}
          />
        </InlineField>
        <Text color="secondary" variant="bodySmall">
          {description}
        </Text>
      </Stack>

      <Stack wrap="wrap" gap={1}>
        {has('measure') && (
          <InlineField label="Measure" labelWidth={LABEL_WIDTH} htmlFor="cc-measure">
            <Select
              inputId="cc-measure"
              width={28}
              options={MEASURES}
              value={query.measure}
              onChange={(v) => set({ measure: v.value })}
            />
          </InlineField>
        )}
        {has('source') && (
          <InlineField label="Source" tooltip="Where cost and token numbers come from">
            <RadioButtonGroup
              options={SOURCES}
              value={query.source ?? 'metrics'}
              onChange={(source) => set({ source })}
            />
          </InlineField>
        )}
        {has('compare') && (
          <InlineField label="Compare with previous period" htmlFor="cc-compare">
            <InlineSwitch
              id="cc-compare"
              value={query.compare === 'previous_period'}
              onChange={(e) =>
                set({
                  compare: e.currentTarget.checked ? 'previous_period' : undefined,
                  output: e.currentTarget.checked ? query.output : undefined,
                })
              }
            />
          </InlineField>
        )}
        {has('compare') && query.compare === 'previous_period' && (
          <InlineField label="Output" tooltip="One number makes the query usable in an alert rule" htmlFor="cc-output">
            <Select
              inputId="cc-output"
              width={20}
              options={STAT_OUTPUTS}
              value={query.output ?? 'all'}
              onChange={(v) => set({ output: v.value === 'all' ? undefined : (v.value as ClaudeCodeQuery['output']) })}
            />
          </InlineField>
        )}
        {has('period') && (
          <InlineField label="Period" tooltip="Local days, ISO weeks (from Monday) or months">
            <RadioButtonGroup<ReportPeriod>
              options={REPORT_PERIODS}
              value={query.period ?? 'day'}
              onChange={(period) => set({ period })}
            />
          </InlineField>
        )}
        {has('timezone') && (
          <InlineField
            label="Time zone"
            labelWidth={LABEL_WIDTH}
            tooltip="IANA name, e.g. Europe/Berlin; UTC when empty"
          >
            <Input
              id="cc-timezone"
              aria-label="Time zone"
              width={24}
              value={query.timezone ?? ''}
              placeholder="UTC"
              onChange={text('timezone')}
              onBlur={run}
            />
          </InlineField>
        )}
        {(has('groupBy') || has('optionalGroupBy')) && (
          <InlineField
            label="Group by"
            labelWidth={LABEL_WIDTH}
            tooltip="Any attribute or resource attribute key"
            htmlFor="cc-group-by"
          >
            <Select
              inputId="cc-group-by"
              width={24}
              allowCustomValue
              isClearable={has('optionalGroupBy')}
              options={withCurrent(GROUP_KEYS, query.groupBy)}
              value={query.groupBy ?? null}
              onChange={(v) => set({ groupBy: v?.value || undefined })}
            />
          </InlineField>
        )}
        {has('latencies') && (
          <InlineField label="Latencies" labelWidth={LABEL_WIDTH} htmlFor="cc-latencies">
            <MultiSelect
              inputId="cc-latencies"
              width={40}
              options={LATENCIES}
              value={query.latencies ?? ['duration', 'ttft']}
              onChange={(v) => set({ latencies: v.map((o) => o.value as Latency).filter(Boolean) })}
            />
          </InlineField>
        )}
        {has('latencySource') && (
          <InlineField label="From" tooltip="api_request events, or llm_request spans when traces are on">
            <RadioButtonGroup<LatencySource>
              options={LATENCY_SOURCES}
              value={query.source === 'spans' ? 'spans' : 'events'}
              onChange={(source) => set({ source })}
            />
          </InlineField>
        )}
        {has('percentiles') && (
          <InlineField label="Percentiles" htmlFor="cc-percentiles">
            <MultiSelect
              inputId="cc-percentiles"
              width={30}
              options={PERCENTILES.map((p) => ({ value: p, label: `p${p}` }))}
              value={query.percentiles ?? [50, 95, 99]}
              onChange={(v) =>
                set({
                  percentiles: v
                    .map((o) => o.value!)
                    .filter((p) => p !== undefined)
                    .sort((a, b) => a - b),
                })
              }
            />
          </InlineField>
        )}
        {has('breakdown') && (
          <InlineField label="By model" tooltip="A row per model under each row" htmlFor="cc-breakdown">
            <InlineSwitch
              id="cc-breakdown"
              value={query.breakdown ?? false}
              onChange={(e) => set({ breakdown: e.currentTarget.checked })}
            />
          </InlineField>
        )}
        {has('byStatusCode') && (
          <InlineField label="By status code" htmlFor="cc-by-status">
            <InlineSwitch
              id="cc-by-status"
              value={query.byStatusCode ?? true}
              onChange={(e) => set({ byStatusCode: e.currentTarget.checked })}
            />
          </InlineField>
        )}
        {has('sessionId') && (
          <InlineField label="Session" labelWidth={LABEL_WIDTH} tooltip="A session id or a variable such as $session">
            <Input
              id="cc-session-id"
              aria-label="Session id"
              width={44}
              value={query.sessionId ?? ''}
              placeholder="$session"
              onChange={text('sessionId')}
              onBlur={run}
            />
          </InlineField>
        )}
        {has('eventNames') && (
          <InlineField label="Events" labelWidth={LABEL_WIDTH} tooltip="Empty: every event" htmlFor="cc-event-names">
            <MultiSelect
              inputId="cc-event-names"
              width={50}
              allowCustomValue
              options={EVENT_NAMES}
              value={query.eventNames ?? []}
              onChange={(v) => set({ eventNames: v.map((o) => o.value!).filter(Boolean) })}
            />
          </InlineField>
        )}
        {has('search') && (
          <InlineField label="Search" tooltip="Case-insensitive text in prompt, response, error and tool parameters">
            <Input
              id="cc-search"
              aria-label="Search"
              width={30}
              value={query.search ?? ''}
              onChange={text('search')}
              onBlur={run}
            />
          </InlineField>
        )}
        {has('trace') && (
          <>
            <InlineField label="Prompt id" labelWidth={LABEL_WIDTH}>
              <Input
                id="cc-prompt-id"
                aria-label="Prompt id"
                width={40}
                value={query.promptId ?? ''}
                onChange={text('promptId')}
                onBlur={run}
              />
            </InlineField>
            <InlineField label="or trace id">
              <Input
                id="cc-trace-id"
                aria-label="Trace id"
                width={36}
                value={query.traceId ?? ''}
                onChange={text('traceId')}
                onBlur={run}
              />
            </InlineField>
          </>
        )}
        {has('contextPoint') && (
          <>
            <TextOption
              label="Session"
              labelWidth={LABEL_WIDTH}
              tooltip="A session id or a variable such as $session"
              name="Session id"
              width={40}
              value={query.sessionId}
              onChange={text('sessionId')}
              onBlur={run}
            />
            <TextOption
              label="Time"
              tooltip="Epoch milliseconds of the point in the session"
              name="Time"
              width={18}
              value={query.time}
              onChange={(e) => set({ time: e.currentTarget.value || undefined }, false)}
              onBlur={run}
            />
            <TextOption
              label="Sequence"
              tooltip="The event's event.sequence, when the point is an event"
              name="Sequence"
              numeric
              width={10}
              value={query.sequence}
              onChange={number('sequence')}
              onBlur={run}
            />
            <TextOption
              label="or span id"
              tooltip="The events around a span's start, in its session"
              name="Span id"
              width={22}
              value={query.spanId}
              onChange={text('spanId')}
              onBlur={run}
            />
          </>
        )}
        {has('direction') && (
          <InlineField label="Events">
            <RadioButtonGroup<ContextDirection>
              options={CONTEXT_DIRECTIONS}
              value={query.direction ?? 'around'}
              onChange={(direction) => set({ direction })}
            />
          </InlineField>
        )}
        {has('traceSearch') && (
          <>
            <TextOption
              label="Min duration"
              labelWidth={LABEL_WIDTH}
              tooltip="Milliseconds; empty: any"
              name="Minimum duration"
              numeric
              width={12}
              value={query.minDurationMs}
              onChange={number('minDurationMs')}
              onBlur={run}
            />
            <TextOption
              label="Tool"
              tooltip="Only interactions that called this tool"
              name="Tool"
              width={18}
              value={query.tool}
              onChange={text('tool')}
              onBlur={run}
            />
            <InlineField label="Errors only" htmlFor="cc-errors-only">
              <InlineSwitch
                id="cc-errors-only"
                value={query.errorsOnly ?? false}
                onChange={(e) => set({ errorsOnly: e.currentTarget.checked || undefined })}
              />
            </InlineField>
          </>
        )}
        {has('key') && (
          <InlineField label="Values of" labelWidth={LABEL_WIDTH} htmlFor="cc-key">
            <Select
              inputId="cc-key"
              width={24}
              allowCustomValue
              options={withCurrent(VARIABLE_KEYS, query.key)}
              value={query.key}
              onChange={(v) => set({ key: v.value })}
            />
          </InlineField>
        )}
        {has('kinds') && (
          <InlineField label="Show" labelWidth={LABEL_WIDTH} htmlFor="cc-kinds">
            <MultiSelect
              inputId="cc-kinds"
              width={50}
              options={ANNOTATION_KINDS}
              value={query.kinds ?? ['session_start', 'api_error', 'tool_reject']}
              onChange={(v) => set({ kinds: v.map((o) => o.value as AnnotationKind).filter(Boolean) })}
            />
          </InlineField>
        )}
        {formats.length > 0 && (
          <InlineField label="Format" labelWidth={has('rawSql') ? LABEL_WIDTH : undefined}>
            <RadioButtonGroup<Format>
              options={formats.map((f) => ({ value: f, label: FORMAT_LABELS[f] }))}
              value={query.format ?? formats[0]}
              onChange={(format) => set({ format })}
            />
          </InlineField>
        )}
        {has('limit') && (
          <InlineField
            label={queryType === 'breakdown' ? 'Top' : 'Limit'}
            tooltip={queryType === 'breakdown' ? 'Largest groups kept; the rest is "other"; 0 keeps all' : 'Most rows'}
          >
            <Input
              id="cc-limit"
              aria-label="Limit"
              type="number"
              min={0}
              width={10}
              value={query.limit ?? ''}
              onChange={number('limit')}
              onBlur={run}
            />
          </InlineField>
        )}
      </Stack>

      {has('rawSql') && (
        <Stack direction="column" gap={0.5}>
          <CodeEditor
            language="sql"
            height={160}
            showLineNumbers
            showMiniMap={false}
            value={query.rawSql ?? ''}
            onBlur={(rawSql) => set({ rawSql })}
            onSave={(rawSql) => set({ rawSql })}
          />
          <Text color="secondary" variant="bodySmall">
            Read-only DuckDB SQL over the tables events, metric_points and spans. Macros: $__timeFilter(time),
            $__timeGroupAlias(time, $__interval[, 0]), $__timeFrom(), $__timeTo(), $__interval_ms. Quote multi-value
            variables with {'${var:sqlstring}'}.
          </Text>
        </Stack>
      )}

      {queryType !== 'sql' && queryType !== 'variable' && (
        <Stack wrap="wrap" gap={1}>
          {FILTER_FIELDS.map(({ field, label, tooltip, width }, n) => (
            <InlineField key={field} label={label} labelWidth={n === 0 ? LABEL_WIDTH : undefined} tooltip={tooltip}>
              <Input
                id={`cc-${field}`}
                aria-label={`${label} filter`}
                width={width}
                placeholder="all"
                value={listText(query[field])}
                onChange={list(field)}
                onBlur={run}
              />
            </InlineField>
          ))}
          <InlineField
            label="Value field"
            tooltip="For alert rules on tables: keep only this numeric column (e.g. success_rate, value)"
          >
            <Input
              id="cc-value-field"
              aria-label="Value field"
              width={16}
              placeholder="all columns"
              value={query.valueField ?? ''}
              onChange={text('valueField')}
              onBlur={run}
            />
          </InlineField>
        </Stack>
      )}
    </Stack>
  );
}

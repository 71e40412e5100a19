import React, { ChangeEvent } from 'react';
import { QueryEditorProps, SelectableValue } from '@grafana/data';
import { InlineField, Input, Select, Stack } from '@grafana/ui';

import type { DataSource } from '../datasource';
import { VARIABLE_KEYS } from '../querySpec';
import { ClaudeCodeOptions, ClaudeCodeQuery, VariableQuery } from '../types';

type Props = QueryEditorProps<DataSource, ClaudeCodeQuery, ClaudeCodeOptions, VariableQuery>;

/** A template variable: the distinct values of one key in the dashboard's time range. */
export function VariableQueryEditor({ query, onChange }: Props) {
  const key = query.key ?? '';
  const options: Array<SelectableValue<string>> =
    key && !VARIABLE_KEYS.some((k) => k.value === key) ? [...VARIABLE_KEYS, { value: key, label: key }] : VARIABLE_KEYS;
  const update = (patch: Partial<VariableQuery>) =>
    onChange({ ...query, refId: query.refId || 'variable', key, ...patch });

  return (
    <Stack direction="column" gap={1}>
      <InlineField
        label="Values of"
        labelWidth={16}
        tooltip="session, model, user, team, tool, event_name, or any attribute / resource key"
        htmlFor="cc-variable-key"
      >
        <Select
          inputId="cc-variable-key"
          width={30}
          allowCustomValue
          options={options}
          value={key || null}
          onChange={(v) => update({ key: v.value ?? '' })}
        />
      </InlineField>
      <InlineField label="Limit" labelWidth={16} tooltip="Most values returned">
        <Input
          id="cc-variable-limit"
          aria-label="Limit"
          type="number"
          min={1}
          width={12}
          defaultValue={query.limit ?? ''}
          onBlur={(e: ChangeEvent<HTMLInputElement>) => {
            const n = parseInt(e.currentTarget.value, 10);
            update({ limit: Number.isFinite(n) && n > 0 ? n : undefined });
          }}
        />
      </InlineField>
    </Stack>
  );
}
